import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readObjectCode } from '../../src/analyze/objdiff.js';
import { loadSymbolIndex, locateSymbol, objectLayout, objectReferences } from '../../src/analyze/symbols.js';
import { parseElf } from '../../src/elf/elf64.js';
import { tempDir } from '../helpers.js';

/** WARN_ONCE-style flags: static locals in .data.once, numbered by the file's own count of statics. */
const tu = (prefix: string, flags: number, before = '') =>
  [
    before,
    ...Array.from(
      { length: flags },
      (_, i) =>
        `int ${prefix}_check${i}(int x) { static int done __attribute__((section(".data.once"))); if (x > ${i} && !done) { done = 1; return 1; } return 0; }`,
    ),
    '',
  ].join('\n');

test('locateSymbol: in a module stripped of STT_FILE symbols, a duplicated static is placed by its neighbours in its section', () => {
  const dir = tempDir('neighbours');
  writeFileSync(join(dir, 'a.c'), tu('alpha', 3));
  // Another static first: b.c's flags are done.1 to done.5, a.c's done.0 to done.2.
  writeFileSync(join(dir, 'b.c'), tu('beta', 5, 'int beta_first(void) { static int counter; return counter++; }'));
  execFileSync('gcc-12', ['-O2', '-c', 'a.c', 'b.c'], { cwd: dir });
  // Like a Debian module: linked from several objects, then strip --strip-debug (no STT_FILE left).
  execFileSync('ld', ['-r', '-o', 'm.ko', 'a.o', 'b.o'], { cwd: dir });
  execFileSync('strip', ['--strip-debug', 'm.ko'], { cwd: dir });
  const index = loadSymbolIndex(join(dir, 'm.ko'), 'm', false);
  assert.equal(index.groups.length, 0, 'the module still has STT_FILE symbols');
  assert.equal(index.byName.get('done.1')?.length, 2, 'both files should have a done.1');

  const layoutOf = (o: string) => {
    const code = readObjectCode(parseElf(readFileSync(join(dir, o)), o));
    return new Map([...code.data.values()].map((d) => [d.name, { section: d.section, offset: d.offset }]));
  };
  const inA = locateSymbol(index, 'done.1', 'drivers/x/a.c', new Set(), layoutOf('a.o'));
  const inB = locateSymbol(index, 'done.1', 'drivers/x/b.c', new Set(), layoutOf('b.o'));
  assert.ok(inA.found && inB.found, [inA, inB].map((x) => (x.found ? x.how : x.why)).join('; '));
  assert.deepEqual([inA.sympos, inB.sympos], [1, 2]);
  // Without our object's layout it is not guessed.
  assert.equal(locateSymbol(index, 'done.1', 'drivers/x/a.c', new Set()).found, false);
});

test('locateSymbol: a static function two files of a stripped module both have is placed by the functions around it in .text', () => {
  const dir = tempDir('neighbours-text');
  // A header's static inline called out of line in each file (f2fs_put_page in compress.c, node.c, ...).
  const helper = 'static __attribute__((noinline)) int put_page(int *p) { return *p += 3; }';
  writeFileSync(
    join(dir, 'a.c'),
    `${helper}\nint a_one(int *p) { return put_page(p) + 1; }\nint a_two(int *p) { return put_page(p) * 2; }\n`,
  );
  writeFileSync(
    join(dir, 'b.c'),
    `int b_first(int x) { return x * 7; }\n${helper}\nint b_one(int *p) { return put_page(p) - 1; }\n`,
  );
  execFileSync('gcc-12', ['-O2', '-c', 'a.c', 'b.c'], { cwd: dir });
  execFileSync('ld', ['-r', '-o', 'm.ko', 'b.o', 'a.o'], { cwd: dir });
  execFileSync('strip', ['--strip-debug', 'm.ko'], { cwd: dir });
  const index = loadSymbolIndex(join(dir, 'm.ko'), 'm', false);
  assert.equal(index.byName.get('put_page')?.length, 2, 'both files should have put_page');
  const layoutOf = (o: string) => objectLayout(readObjectCode(parseElf(readFileSync(join(dir, o)), o)));
  const inA = locateSymbol(index, 'put_page', 'fs/x/a.c', new Set(), layoutOf('a.o'));
  const inB = locateSymbol(index, 'put_page', 'fs/x/b.c', new Set(), layoutOf('b.o'));
  assert.ok(inA.found && inB.found, [inA, inB].map((x) => (x.found ? x.how : x.why)).join('; '));
  // b.o is linked first: its copy is the first of the two.
  assert.deepEqual([inB.sympos, inA.sympos], [1, 2]);
  assert.notEqual(inA.found && inA.symbol.address, inB.found && inB.symbol.address);
});

test('locateSymbol: a static alone in its section is the copy our functions refer to, from the same offsets', () => {
  const dir = tempDir('neighbours-refs');
  // Each file's .data holds only its ratelimit state (btrfs extent_io.c's _rs.6): no neighbours.
  writeFileSync(join(dir, 'a.c'), 'static int state = 1;\nint a_tick(int x) { return state += x; }\n');
  writeFileSync(
    join(dir, 'b.c'),
    'int b_first(int x) { return x * 7; }\nstatic int state = 2;\nint b_tick(int x) { return state ^= x; }\n',
  );
  execFileSync('gcc-12', ['-O2', '-mcmodel=kernel', '-fno-pic', '-c', 'a.c', 'b.c'], { cwd: dir });
  execFileSync('ld', ['-r', '-o', 'm.ko', 'b.o', 'a.o'], { cwd: dir });
  execFileSync('strip', ['--strip-debug', 'm.ko'], { cwd: dir });
  const index = loadSymbolIndex(join(dir, 'm.ko'), 'm', false);
  assert.equal(index.byName.get('state')?.length, 2, 'both files should have state');
  const codeOf = (o: string) => readObjectCode(parseElf(readFileSync(join(dir, o)), o));
  const place = (o: string, file: string) =>
    locateSymbol(index, 'state', file, new Set(), objectLayout(codeOf(o)), objectReferences(codeOf(o)));
  const inA = place('a.o', 'fs/x/a.c');
  const inB = place('b.o', 'fs/x/b.c');
  assert.ok(inA.found && inB.found, [inA, inB].map((x) => (x.found ? x.how : x.why)).join('; '));
  assert.deepEqual([inB.sympos, inA.sympos], [1, 2]);
  // Without our code's references it is not guessed.
  assert.equal(locateSymbol(index, 'state', 'fs/x/a.c', new Set(), objectLayout(codeOf('a.o'))).found, false);
});
