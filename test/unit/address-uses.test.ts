/**
 * redirectAddressUses on a gcc-12 object: references that take a copied helper's address
 * (an argument, a store, a table entry) move to `klpgen_addr_<name>`; calls stay on the copy;
 * the kernel's tables about the code (__mcount_loc) are not touched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redirectAddressUses, redirectStandIns } from '../../src/kmod/address-uses.js';
import { ROOT } from '../helpers.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'address-uses', 'pointer-and-call.c');

/** `section offset type symbol` for each relocation readelf lists. */
function relocations(path: string): string[] {
  const out = execFileSync('readelf', ['-rW', path], { encoding: 'utf8' });
  let section = '';
  const rows: string[] = [];
  for (const line of out.split('\n')) {
    const head = /^Relocation section '([^']+)'/.exec(line);
    if (head) {
      section = head[1] as string;
      continue;
    }
    const m = /^([0-9a-f]{16})\s+[0-9a-f]+\s+(R_X86_64_\w+)\s+[0-9a-f]+\s+(\S+)/.exec(line);
    if (m) rows.push(`${section} ${m[2]} ${m[3]}`);
  }
  return rows;
}

test('address uses of a copied helper move to the kernel symbol; calls and __mcount_loc stay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'klpgen-addr-'));
  try {
    const obj = join(dir, 'a.o');
    execFileSync('gcc-12', [
      '-c',
      '-O2',
      '-fno-pic',
      '-mcmodel=kernel',
      '-ffunction-sections',
      '-fdata-sections',
      '-pg',
      '-mrecord-mcount',
      '-mfentry',
      '-o',
      obj,
      FIXTURE,
    ]);
    const before = relocations(obj);
    const { ko, redirects } = redirectAddressUses(readFileSync(obj), ['helper', 'absent'], 'klpgen_addr_', obj);
    const outPath = join(dir, 'b.o');
    writeFileSync(outPath, ko);
    const after = relocations(outPath);
    assert.deepEqual(
      redirects.map((r) => r.name),
      ['helper'],
    );
    const moved = after.filter((r) => r.endsWith(' klpgen_addr_helper'));
    // register_action's argument, the store to `saved`, and the table entry.
    assert.ok(
      moved.some((r) => r.startsWith('.rela.text.user ')),
      after.join('\n'),
    );
    assert.ok(
      moved.some((r) => r.startsWith('.rela.data.rel.ro.table ') || r.startsWith('.rela.rodata')),
      after.join('\n'),
    );
    assert.equal(moved.length, redirects[0]!.moved.length);
    // The failure path's call still reaches the copy.
    assert.ok(
      after.some((r) => r.startsWith('.rela.text.user ') && /R_X86_64_(PLT32|PC32) (helper|\.text\.helper)$/.test(r)),
      after.join('\n'),
    );
    // __mcount_loc names the copy's first byte as a place: unchanged.
    assert.deepEqual(
      after.filter((r) => r.startsWith('.rela__mcount_loc')),
      before.filter((r) => r.startsWith('.rela__mcount_loc')),
    );
    assert.ok(
      before.some((r) => r.startsWith('.rela__mcount_loc')),
      'fixture has no __mcount_loc',
    );
    // Nothing named: the object is returned as it was.
    assert.equal(redirectAddressUses(readFileSync(obj), [], 'klpgen_addr_').ko.equals(readFileSync(obj)), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every reference to a stand-in, from code or data, moves to the kernel variable; others stay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'klpgen-standin-'));
  try {
    const obj = join(dir, 'a.o');
    execFileSync('gcc-12', [
      '-c',
      '-O2',
      '-fno-pic',
      '-mcmodel=kernel',
      '-ffunction-sections',
      '-fdata-sections',
      '-o',
      obj,
      join(ROOT, 'test', 'fixtures', 'address-uses', 'stand-ins.c'),
    ]);
    const { ko, moved } = redirectStandIns(readFileSync(obj), ['counter', 'pair'], 'klpgen_addr_', obj);
    const outPath = join(dir, 'b.o');
    writeFileSync(outPath, ko);
    const after = relocations(outPath);
    assert.deepEqual([...moved.keys()].sort(), ['counter', 'pair']);
    // Code: counter read and written, &pair.b, pair.a; data: where[] names both.
    assert.ok(
      after.some((r) => r.startsWith('.rela.text.user ') && r.endsWith(' klpgen_addr_counter')),
      after.join('\n'),
    );
    assert.ok(
      after.some((r) => r.startsWith('.rela.text.user ') && r.endsWith(' klpgen_addr_pair')),
      after.join('\n'),
    );
    assert.ok(
      after.some((r) => /^\.rela\.(data\.rel\.ro|data|rodata)\.where /.test(r) && r.endsWith(' klpgen_addr_counter')),
      after.join('\n'),
    );
    assert.ok(
      after.some((r) => /^\.rela\.(data\.rel\.ro|data|rodata)\.where /.test(r) && r.endsWith(' klpgen_addr_pair')),
      after.join('\n'),
    );
    // Nothing left on the stand-ins' own sections; the other static is untouched.
    assert.deepEqual(
      after.filter((r) => /\s\.bss\.(counter|pair)$|\s(counter|pair)$/.test(r)),
      [],
    );
    assert.ok(
      after.some((r) => / \.bss\.untouched$| untouched$/.test(r)),
      after.join('\n'),
    );
    // A stand-in the object does not define is an error, not a silent stand-in.
    assert.throws(
      () => redirectStandIns(readFileSync(obj), ['nowhere'], 'klpgen_addr_', obj),
      /stand-in nowhere is missing/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
