import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AnalysisReport } from '../../src/analyze/analyze.js';
import type { CreateReport } from '../../src/create/create.js';
import type { VmReport } from '../../src/vm/vm-test.js';
import { decodeRecord, encodeRecord } from '../../src/usage/index.js';
import { ROOT, abiArgs, ensureTarget, klpgen, tempDir } from '../helpers.js';

/**
 * Header changes through the translation units that use them: a fix to an
 * inline of include/linux/seq_file.h (read by some 10,000 built TUs) reaches
 * exactly the seven that call it, in vmlinux and in the phonet module; one
 * livepatch carries both objects and is proven in the VM with phonet loaded.
 * A fix to an inline of asm/pkeys.h (86 includers) is checked against an
 * object diff of every includer, then proven in the VM.
 */
const fixture = (name: string) => join(ROOT, 'test/fixtures/patches', name);

const SEQ_USERS = [
  'fs/proc/consoles.c',
  'fs/proc/task_mmu.c',
  'net/ipv4/fib_trie.c',
  'net/ipv4/ping.c',
  'net/ipv4/tcp_ipv4.c',
  'net/ipv4/udp.c',
  'net/phonet/socket.c',
];
const SEQ_REPLACED = [
  'phonet:pn_res_seq_show',
  'phonet:pn_sock_seq_show',
  'vmlinux:fib_route_seq_show',
  'vmlinux:ping_v4_seq_show',
  'vmlinux:show_console_dev',
  'vmlinux:show_vma_header_prefix',
  'vmlinux:tcp4_seq_show',
  'vmlinux:udp4_seq_show',
];

test('header: an inline of seq_file.h reaches its 7 callers of 10,000 includers; one livepatch over vmlinux and phonet, VM-proven', () => {
  ensureTarget();
  const dir = tempDir('header-seq');
  try {
    const ko = join(dir, 'seq.ko');
    const c = klpgen([
      'create',
      fixture('header-seq-setwidth.patch'),
      '--name',
      'klpgen_seq',
      '-o',
      ko,
      '--work-dir',
      join(dir, 'work'),
      '--json',
      ...abiArgs(),
    ]);
    assert.equal(c.code, 0, c.stderr);
    const r = JSON.parse(c.stdout) as CreateReport;
    const users = r.analysis.headerUsers?.[0];
    assert.equal(users?.header, 'include/linux/seq_file.h');
    assert.deepEqual(users?.names, ['seq_setwidth']);
    assert.ok((users?.includers ?? 0) > 5000, `includers ${users?.includers}`);
    assert.deepEqual(users?.users, SEQ_USERS);
    assert.deepEqual(
      r.analysis.mustReplace.map((e) => `${e.object}:${e.symbol}`),
      SEQ_REPLACED,
    );
    assert.equal(r.verification.status, 'passed', JSON.stringify(r.verification));
    assert.ok(
      r.code.every((x) => x.how === 'extracted'),
      JSON.stringify(r.code),
    );

    const v = klpgen([
      'vm-test',
      ko,
      '--load-modules',
      'phonet',
      '--test',
      fixture('header-seq-setwidth-LOADED.test'),
      '--json',
      ...abiArgs(),
    ]);
    const rep = JSON.parse(v.stdout) as VmReport;
    assert.equal(v.code, 0, rep.failures.join('\n'));
    assert.equal(rep.test?.ok, true, JSON.stringify(rep.test));
    const p = rep.patches[0]!;
    assert.ok(p.loaded && p.enabled && p.disabled && p.unloaded, JSON.stringify(p));
    assert.deepEqual(rep.problems, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function analyzeJson(patch: string, dir: string): AnalysisReport {
  const a = klpgen(['analyze', patch, '--work-dir', join(dir, 'work'), '--json', ...abiArgs()]);
  assert.ok(a.code === 0 || a.code === 2, a.stderr);
  return JSON.parse(a.stdout) as AnalysisReport;
}

test('header: a header no built TU reads is nothing to patch, with the reason', () => {
  ensureTarget();
  const dir = tempDir('header-unbuilt');
  try {
    const r = analyzeJson(fixture('header-unbuilt-twl.patch'), dir);
    assert.equal(r.ok, true);
    assert.deepEqual(r.mustReplace, []);
    assert.equal(r.headerUsers?.[0]?.includers, 0);
    assert.ok(
      r.notes.some((n) => /twl\.h: no translation unit of this configuration reads it/.test(n)),
      r.notes.join('\n'),
    );
    const c = klpgen(['create', fixture('header-unbuilt-twl.patch'), '--work-dir', join(dir, 'c'), ...abiArgs()]);
    // Not a failure: nothing to make, exit 0, no module written.
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, /^klpgen: nothing to patch: .*change no running code/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('header: a usage record that is corrupt, of another file or of another build is made again, never used', () => {
  const t = ensureTarget();
  const dir = tempDir('header-records');
  const records = join(t.paths.root as string, 'usage', 'records');
  const rec = (f: string) => join(records, `${f}.rec`);
  try {
    // The seq_setwidth fixture's users have records (made by the test above or now).
    const first = analyzeJson(fixture('header-seq-setwidth.patch'), dir);
    assert.deepEqual(first.headerUsers?.[0]?.users, SEQ_USERS);
    for (const f of SEQ_USERS) assert.ok(existsSync(rec(f)), f);
    const good = readFileSync(rec('fs/proc/consoles.c'));
    const decoded = decodeRecord(good);
    assert.ok(typeof decoded !== 'string');
    // Corrupt bytes; another file's record; a record with another build's key.
    const flipped = Buffer.from(good);
    flipped[40] = (flipped[40] as number) ^ 0xff;
    writeFileSync(rec('fs/proc/consoles.c'), flipped);
    writeFileSync(rec('net/ipv4/ping.c'), readFileSync(rec('net/ipv4/udp.c')));
    writeFileSync(
      rec('net/ipv4/tcp_ipv4.c'),
      encodeRecord({ file: 'net/ipv4/tcp_ipv4.c', key: '00'.repeat(16), headers: [], names: [] }),
    );
    const again = analyzeJson(fixture('header-seq-setwidth.patch'), dir);
    assert.deepEqual(again.headerUsers?.[0]?.users, SEQ_USERS);
    assert.equal(again.headerUsers?.[0]?.made, 3);
    assert.deepEqual(again.mustReplace, first.mustReplace);
    // An index marked complete for another target is not trusted: the answer stays on demand.
    const meta = join(t.paths.root as string, 'usage', 'index.json');
    const saved = existsSync(meta) ? readFileSync(meta) : null;
    try {
      writeFileSync(
        meta,
        JSON.stringify({ schema: 1, abi: '6.1.0-1', configSha256: 'x', commands: 'y', complete: true }),
      );
      const other = analyzeJson(fixture('header-seq-setwidth.patch'), dir);
      assert.equal(other.headerUsers?.[0]?.via, 'on demand');
      assert.deepEqual(other.headerUsers?.[0]?.users, SEQ_USERS);
    } finally {
      if (saved) writeFileSync(meta, saved);
      else rmSync(meta, { force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const SI_USERS = ['arch/x86/kvm/cpuid.c', 'arch/x86/kvm/x86.c', 'fs/proc/base.c', 'kernel/sched/core.c'];

test('header: sched_info_on() of sched/stat.h reaches its 4 users of 70 includers; the kvm static key it reaches is refused', () => {
  ensureTarget();
  const dir = tempDir('header-si');
  try {
    const patch = fixture('header-sched-info-on.patch');
    const users = analyzeJson(patch, join(dir, 'users'));
    assert.equal(users.ok, true, JSON.stringify(users.refusals));
    assert.deepEqual(users.headerUsers?.[0]?.users, SI_USERS);
    assert.ok((users.headerUsers?.[0]?.includers ?? 0) >= 50, `includers ${users.headerUsers?.[0]?.includers}`);
    // The replaced kvm code uses a static key of kvm: its __jump_table entry cannot wait for kvm.
    const c = klpgen(['create', patch, '--work-dir', join(dir, 'c'), '--json', ...abiArgs()]);
    assert.equal(c.code, 2, c.stderr);
    const refused = JSON.parse(c.stdout) as { refused: { kind: string; reason: string }[] };
    assert.ok(
      refused.refused.some((r) => /__jump_table/.test(r.reason) && /kvm/.test(r.reason)),
      JSON.stringify(refused),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const PK_USERS = ['arch/x86/mm/pkeys.c', 'fs/proc/task_mmu.c', 'mm/mprotect.c'];

test('header: arch_pkeys_enabled() of asm/pkeys.h: 3 users of 86 includers, the must-replace set an object diff of every includer gives; VM-proven', () => {
  ensureTarget();
  const dir = tempDir('header-pk');
  try {
    const patch = fixture('header-pkeys-smaps.patch');
    const users = analyzeJson(patch, join(dir, 'users'));
    assert.equal(users.ok, true, JSON.stringify(users.refusals));
    assert.deepEqual(users.headerUsers?.[0]?.users, PK_USERS);
    assert.ok((users.headerUsers?.[0]?.includers ?? 0) >= 50, `includers ${users.headerUsers?.[0]?.includers}`);
    assert.ok(
      users.mustReplace.some((e) => e.symbol === 'show_smap'),
      JSON.stringify(users.mustReplace),
    );

    // The check: every includer compiled both ways and object-diffed.
    const a = klpgen([
      'analyze',
      patch,
      '--all-includers',
      '--work-dir',
      join(dir, 'all', 'work'),
      '--json',
      ...abiArgs(),
    ]);
    assert.equal(a.code, 0, a.stderr);
    const all = JSON.parse(a.stdout) as AnalysisReport;
    assert.ok(all.tus.length >= 50, `${all.tus.length} TUs analysed`);
    assert.deepEqual(
      all.tus
        .filter((t) => t.codeChanged.length > 0)
        .map((t) => t.file)
        .sort(),
      PK_USERS,
    );
    assert.deepEqual(all.mustReplace, users.mustReplace);

    const ko = join(dir, 'pk.ko');
    const c = klpgen([
      'create',
      patch,
      '--name',
      'klpgen_pkeys',
      '-o',
      ko,
      '--work-dir',
      join(dir, 'c'),
      '--json',
      ...abiArgs(),
    ]);
    assert.equal(c.code, 0, c.stderr);
    const r = JSON.parse(c.stdout) as CreateReport;
    assert.equal(r.verification.status, 'passed', JSON.stringify(r.verification));
    assert.deepEqual(
      r.code.map((x) => `${x.file}:${x.how}`),
      PK_USERS.map((f) => `${f}:extracted`),
    );
    const v = klpgen(['vm-test', ko, '--test', fixture('header-pkeys-smaps-LOADED.test'), '--json', ...abiArgs()]);
    const rep = JSON.parse(v.stdout) as VmReport;
    assert.equal(v.code, 0, rep.failures.join('\n'));
    assert.equal(rep.test?.ok, true, JSON.stringify(rep.test));
    assert.equal(rep.test?.before?.exitCode, 1, 'the running kernel shows no ProtectionKey line');
    assert.equal(rep.test?.unloaded?.exitCode, 1, 'unloaded, the line is gone again');
    const p = rep.patches[0]!;
    assert.ok(p.loaded && p.enabled && p.disabled && p.unloaded, JSON.stringify(p));
    assert.deepEqual(rep.problems, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
