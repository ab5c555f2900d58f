/**
 * Layouts read from real DWARF (gcc-12 -g, then pahole), and the comparison that
 * decides whether a changed type keeps the running kernel's data valid.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareLayouts, parsePahole, readLayouts, splitDecl } from '../../src/analyze/layout.js';
import { tempDir } from '../helpers.js';

const SOURCE = `
typedef struct { int a; char b; } anon_t;
union cap { unsigned long long caps; struct { unsigned long long x:1, old:1, y:3; }; };
struct outer { int a; unsigned long ts; union cap c; anon_t in; char name[8]; void (*fn)(int); };
int use(struct outer *o, anon_t *t) { return o->a + t->b; }
`;

async function layoutsOf(source: string) {
  const dir = tempDir('layout');
  writeFileSync(join(dir, 'x.c'), source);
  execFileSync('gcc-12', ['-g', '-O2', '-c', '-o', join(dir, 'x.o'), join(dir, 'x.c')]);
  const l = await readLayouts(join(dir, 'x.o'));
  assert.ok(l, 'pahole read the object');
  return l;
}

test('pahole layouts: structs, unions, typedefs of anonymous structs, nested members and bit fields', async () => {
  const l = await layoutsOf(SOURCE);
  assert.deepEqual([...l.keys()].sort(), ['struct outer', 'typedef anon_t', 'union cap']);
  const outer = l.get('struct outer')!;
  assert.equal(outer.size, 48);
  assert.deepEqual(
    outer.members.map((m) => `${m.depth} ${m.at} ${splitDecl(m.decl).name}`),
    ['1 0 4 a', '1 8 8 ts', '1 16 8 c', '1 24 8 in', '1 32 8 name', '1 40 8 fn'],
  );
  assert.equal(l.get('union cap')?.size, 8);
  const cap = l.get('union cap')!;
  assert.deepEqual(
    cap.members.map((m) => `${m.depth} ${m.at}`),
    ['1 0 8', '2 0:0 8', '2 0:1 8', '2 0:2 8', '1 0 8'],
  );
  assert.equal(l.get('typedef anon_t')?.size, 8);
});

test('splitDecl: scalars, arrays, bit fields, function pointers', () => {
  assert.deepEqual(splitDecl('long unsigned int ts'), { type: 'long unsigned int', name: 'ts' });
  assert.deepEqual(splitDecl('char name[8]'), { type: 'char[8]', name: 'name' });
  assert.deepEqual(splitDecl('long long unsigned int old:1'), { type: 'long long unsigned int :', name: 'old' });
  assert.deepEqual(splitDecl('void (*fn)(int)'), { type: 'void (*)(int)', name: 'fn' });
  assert.deepEqual(splitDecl('const struct counter * next'), { type: 'const struct counter *', name: 'next' });
});

test('compareLayouts: renames and same-size integers keep the layout; moves, resizes, new members and retyped pointers do not', async () => {
  const before = await layoutsOf(SOURCE);
  const renamed = await layoutsOf(
    SOURCE.replace('old:1', 'reserved:1').replace('int a; unsigned', 'unsigned int a; unsigned'),
  );
  const v = compareLayouts(before.get('union cap')!, renamed.get('union cap')!);
  assert.deepEqual(v, { same: true, renamed: ['old -> reserved'], retyped: [] });
  const o = compareLayouts(before.get('struct outer')!, renamed.get('struct outer')!);
  assert.deepEqual(o, { same: true, renamed: [], retyped: ['a: int -> unsigned int'] });

  const grown = await layoutsOf(SOURCE.replace('char name[8]', 'char name[16]'));
  assert.deepEqual(compareLayouts(before.get('struct outer')!, grown.get('struct outer')!), {
    same: false,
    why: 'its size changes from 48 to 56 bytes',
  });
  // A member added into a hole: the size stays, the member list does not.
  const filled = await layoutsOf(SOURCE.replace('int a; unsigned long ts;', 'int a; int fill; unsigned long ts;'));
  const f = compareLayouts(before.get('struct outer')!, filled.get('struct outer')!);
  assert.equal(f.same, false);
  assert.match(
    (f as { why: string }).why,
    /^member ts \(now fill\) moves from offset 8 \(8 bytes\) to offset 4 \(4 bytes\)$/,
  );
  const bits = await layoutsOf(SOURCE.replace('old:1, y:3', 'old:2, y:3'));
  assert.match(
    (compareLayouts(before.get('union cap')!, bits.get('union cap')!) as { why: string }).why,
    /^member y moves from offset 0 bit 2/,
  );
  const ptr = await layoutsOf(SOURCE.replace('void (*fn)(int)', 'void (*fn)(long)'));
  assert.deepEqual(compareLayouts(before.get('struct outer')!, ptr.get('struct outer')!), {
    same: false,
    retype: true,
    why: "member fn changes type from void (*)(int) to void (*)(long int): the running kernel's data would be read as another type",
  });
});

test('parsePahole: an object without debug info has no layouts; a missing pahole is null', async () => {
  assert.equal(parsePahole('').size, 0);
  const dir = tempDir('layout-nodebug');
  writeFileSync(join(dir, 'x.c'), SOURCE);
  execFileSync('gcc-12', ['-O2', '-c', '-o', join(dir, 'x.o'), join(dir, 'x.c')]);
  assert.equal((await readLayouts(join(dir, 'x.o')))?.size ?? 0, 0);
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    assert.equal(await readLayouts(join(dir, 'x.o')), null);
  } finally {
    process.env.PATH = path;
  }
});
