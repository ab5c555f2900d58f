import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readObjectCode } from '../../src/analyze/objdiff.js';
import { parseElf } from '../../src/elf/elf64.js';
import { tempDir } from '../helpers.js';

test('readObjectCode: a loop bound one past an array in a shared section is named by the array', () => {
  const dir = tempDir('one-past-end');
  // As erofs' pcluster_pool (__read_mostly): the section holds it, the bound is section+size.
  writeFileSync(
    join(dir, 't.c'),
    [
      'struct s { long a, b; };',
      'static struct s pool[4] __attribute__((section(".data..read_mostly"))) = {{1,2},{3,4},{5,6},{7,8}};',
      'void set(long v) { pool[1].a = v; }',
      'long sum(void) { long t = 0; for (struct s *p = pool; p < pool + 4; p++) t += p->a; return t; }',
      '',
    ].join('\n'),
  );
  execFileSync('gcc-12', ['-O2', '-mcmodel=kernel', '-fno-pic', '-c', 't.c'], { cwd: dir });
  const code = readObjectCode(parseElf(readFileSync(join(dir, 't.o')), 't.o'));
  const relocs = code.functions.get('sum')?.relocs.filter((r) => r.type === 'R_X86_64_32S') ?? [];
  assert.deepEqual(relocs.map((r) => `${r.target}+${r.addend}`).sort(), ['pool+0', 'pool+64']);
  // Inside the array it is still the array, at its offset.
  assert.deepEqual(
    code.functions.get('set')?.relocs.map((r) => r.target),
    ['pool'],
  );
});
