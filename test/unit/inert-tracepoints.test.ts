/**
 * dropModuleTracepoints on a gcc-12 object: the __jump_table and .static_call_sites entries
 * of a module's tracepoint keys are left out, packed, their relocations moved along; the
 * entries of other keys stay whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropModuleTracepoints } from '../../src/kmod/inert-tracepoints.js';
import { ROOT } from '../helpers.js';

function relocs(path: string, section: string): string[] {
  const out = execFileSync('readelf', ['-rW', path], { encoding: 'utf8' });
  const start = out.indexOf(`'.rela${section}'`);
  if (start < 0) return [];
  const lines = out.slice(start).split('\n').slice(2);
  const end = lines.findIndex((l) => l.trim() === '');
  return lines
    .slice(0, end < 0 ? undefined : end)
    .filter((l) => /^[0-9a-f]{16}/.test(l))
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return `${Number.parseInt(f[0] as string, 16)} ${f[2]} ${f[4]}${f[5] ? ` ${f[5]} ${f[6]}` : ''}`;
    });
}

test("a module tracepoint's jump-label and static-call entries are left out; others stay", () => {
  const dir = mkdtempSync(join(tmpdir(), 'klpgen-inert-'));
  try {
    const obj = join(dir, 'a.o');
    execFileSync('gcc-12', [
      '-c',
      '-O2',
      '-fno-pic',
      '-mcmodel=kernel',
      '-o',
      obj,
      join(ROOT, 'test', 'fixtures', 'klp-convert', 'jump-tables.c'),
    ]);
    const { ko, dropped } = dropModuleTracepoints(
      readFileSync(obj),
      new Set(['__tracepoint_foo', '__SCK__tp_func_foo']),
      obj,
    );
    const out = join(dir, 'b.o');
    writeFileSync(out, ko);
    assert.deepEqual([...dropped].sort(), [
      ['__SCK__tp_func_foo', 1],
      ['__tracepoint_foo', 2],
    ]);
    const jt = relocs(out, '__jump_table');
    // One 16-byte entry left, at offset 0: code, target, and other_key at +8.
    assert.equal(jt.length, 3, jt.join('\n'));
    assert.ok(
      jt.some((r) => r.startsWith('8 ') && r.includes('other_key')),
      jt.join('\n'),
    );
    assert.ok(!jt.some((r) => r.includes('__tracepoint_foo')), jt.join('\n'));
    const sc = relocs(out, '.static_call_sites');
    assert.equal(sc.length, 2, sc.join('\n'));
    assert.ok(
      sc.some((r) => r.startsWith('4 ') && r.includes('other_call')),
      sc.join('\n'),
    );
    const size = (name: string) =>
      Number.parseInt(
        /\]\s+(\S+)\s+PROGBITS\s+\S+\s+\S+\s+(\S+)/.exec(
          execFileSync('readelf', ['-SW', out], { encoding: 'utf8' })
            .split('\n')
            .find((l) => l.includes(` ${name} `)) ?? '',
        )?.[2] ?? 'NaN',
        16,
      );
    assert.equal(size('__jump_table'), 16);
    assert.equal(size('.static_call_sites'), 8);
    // No key of a module named: the object is returned as it was.
    assert.equal(dropModuleTracepoints(readFileSync(obj), new Set(), obj).ko.equals(readFileSync(obj)), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
