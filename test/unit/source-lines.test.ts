/**
 * sourceLines on a gcc-12 object with debug info: the references to two statics of one name
 * (`__done.0`, `__done.1`) come from the two lines that use the macro, innermost first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseElf } from '../../src/elf/elf64.js';
import { readObjectCode } from '../../src/analyze/objdiff.js';
import { sourceLines } from '../../src/kmod/source-lines.js';
import { ROOT } from '../helpers.js';

test('references to same-named statics map to the lines that wrote them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'klpgen-lines-'));
  try {
    const obj = join(dir, 'a.o');
    execFileSync('gcc-12', [
      '-c',
      '-O2',
      '-g',
      '-fno-pic',
      '-mcmodel=kernel',
      '-ffunction-sections',
      '-fdata-sections',
      '-o',
      obj,
      join(ROOT, 'test', 'fixtures', 'source-lines', 'two-onces.c'),
    ]);
    const code = readObjectCode(parseElf(readFileSync(obj), obj));
    const f = code.functions.get('f');
    assert.ok(f, 'no f');
    const refs = f.relocs.filter((r) => /^__done\.\d+$/.test(r.raw));
    assert.ok(refs.length >= 2, f.relocs.map((r) => r.raw).join(' '));
    const lines = await sourceLines(
      obj,
      refs.map((r) => ({ section: f.section, offset: f.offset + r.offset })),
    );
    const byStatic = new Map<string, Set<string>>();
    refs.forEach((r, i) => byStatic.set(r.raw, new Set([...(byStatic.get(r.raw) ?? []), lines[i] as string])));
    assert.equal(byStatic.size, 2);
    // Each static's references come from one line, and the two lines differ: 12 and 14.
    const perStatic = [...byStatic.values()].map((s) => [...s]);
    assert.ok(
      perStatic.every((s) => s.length === 1),
      JSON.stringify(perStatic),
    );
    assert.deepEqual(perStatic.map((s) => s[0]).sort(), ['two-onces.c:12', 'two-onces.c:14']);
    // A place the line table does not cover reads as unknown, not as a guess.
    assert.deepEqual(await sourceLines(obj, [{ section: '.text.nowhere', offset: 0 }]), ['?']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
