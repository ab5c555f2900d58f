import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CreateReport } from '../../src/create/create.js';
import { verify } from '../../src/verify/verify.js';
import type { VmReport } from '../../src/vm/vm-test.js';
import { ROOT, ensureTarget, klpgen, tempDir } from '../helpers.js';

/** `fromSource`: the tests of the C path's mechanisms (externalized helpers, knowledge copies) build the emitted C. */
function create(
  abi: string,
  patch: string,
  name: string,
  allowUnverified = false,
  fromSource = false,
): { report: CreateReport; ko: string } {
  const dir = tempDir('create');
  const ko = join(dir, `${name}.ko`);
  const r = klpgen([
    'create',
    patch,
    '--name',
    name,
    '-o',
    ko,
    '--work-dir',
    join(dir, 'work'),
    '--abi',
    abi,
    '--json',
    ...(allowUnverified ? ['--allow-unverified'] : []),
    ...(fromSource ? ['--from-source'] : []),
  ]);
  assert.equal(r.code, 0, r.stderr);
  return { report: JSON.parse(r.stdout) as CreateReport, ko };
}

function vmTest(abi: string, ko: string, testScript?: string, extra: string[] = []): VmReport {
  const r = klpgen(['vm-test', ko, ...(testScript ? ['--test', testScript] : []), ...extra, '--abi', abi, '--json']);
  const rep = JSON.parse(r.stdout) as VmReport;
  assert.equal(r.code, 0, rep.failures.join('\n'));
  return rep;
}

test('create: the bundled example becomes a livepatch whose LOADED test passes in the VM', () => {
  const t = ensureTarget();
  const { report, ko } = create(t.abi, join(ROOT, 'examples/proc-version/proc-version.patch'), 'proc_version');
  assert.deepEqual(
    report.analysis.mustReplace.map((e) => e.symbol),
    ['version_proc_show'],
  );
  // linux_proc_banner is not exported: it must have become a KLP relocation.
  assert.deepEqual(
    report.symbols.filter((s) => s.resolution === 'klp').map((s) => `${s.object}:${s.name},${s.sympos}`),
    ['vmlinux:linux_proc_banner,0'],
  );
  // seq_printf is exported: an ordinary undefined symbol, left to the module loader.
  assert.ok(
    report.symbols.some((s) => s.name === 'seq_printf' && s.resolution === 'exported'),
    JSON.stringify(report.symbols),
  );
  const source = readFileSync(report.source, 'utf8');
  assert.match(source, /^int livepatch_version_proc_show\(struct seq_file \*m, void \*v\)$/m);
  assert.match(source, /seq_puts\(m, "livepatched by klpgen\\n"\);/);
  // Its code is the patched build's, byte for byte (relocations by name).
  assert.equal(report.verification.status, 'passed');
  assert.deepEqual(
    report.verification.functions.map((f) => `${f.name}=${f.of}:${f.equal}`),
    ['livepatch_version_proc_show=version_proc_show:true'],
  );
  // Its extracted code carries the patched build's ORC: the transition completes while a
  // workload runs, and the patch unloads cleanly.
  assert.equal(report.code[0]?.how, 'extracted');
  assert.ok((report.code[0]?.specialEntries?.['.orc_unwind_ip'] ?? 0) > 0, JSON.stringify(report.code));
  const rep = vmTest(t.abi, ko, join(ROOT, 'examples/proc-version/proc-version-LOADED.test'), [
    '--workload',
    'proc,fs',
  ]);
  assert.equal(rep.test?.ok, true);
  assert.ok((rep.patches[0]?.transitionSeconds ?? 99) < 10);
  assert.deepEqual(
    rep.workloads.map((w) => [w.kind, w.exitCode]),
    [
      ['proc', 0],
      ['fs', 0],
    ],
  );
  assert.equal(rep.patches[0]?.unloaded, true);
});

test('create: a fix in two files is one livepatch; static functions, static and unexported variables via KLP relocations, exported symbols plain', () => {
  const t = ensureTarget();
  const { report, ko } = create(
    t.abi,
    join(ROOT, 'test/fixtures/patches/two-files-proc.patch'),
    'two_files',
    false,
    true,
  );
  assert.deepEqual(
    report.analysis.mustReplace.map((e) => `${e.file}:${e.symbol}`),
    ['fs/filesystems.c:filesystems_proc_show', 'fs/proc/stat.c:show_stat'],
  );
  assert.deepEqual(
    report.sources.map((s) => s.replace(/^.*\//, '')),
    ['two-files-filesystems.c', 'two-files-stat.c'],
  );
  const how = new Map(
    report.symbols.map((s) => [s.name, s.resolution === 'klp' ? `klp:${s.object},${s.sympos}` : s.resolution]),
  );
  assert.equal(how.get('get_iowait_time'), 'klp:vmlinux,0', 'a static function of stat.c is externalized');
  // A static variable is declared static in the module as the patched build saw it, a stand-in
  // whose references are moved to the kernel's variable (klpgen_addr_file_systems).
  assert.equal(how.get('klpgen_addr_file_systems'), 'klp:vmlinux,0', 'a static variable of filesystems.c');
  assert.ok(!how.has('file_systems'), 'the stand-in itself is not resolved');
  assert.match(
    readFileSync(report.sources[0] as string, 'utf8'),
    /^static [^;]*\bfile_systems __attribute__\(\(__used__\)\);$/m,
  );
  assert.equal(how.get('total_forks'), 'klp:vmlinux,0', 'a global the kernel does not export');
  assert.equal(how.get('seq_puts'), 'exported', 'an exported function stays an ordinary symbol');
  // stat.c's #ifndef arch_irq_stat_cpu fallback keeps its condition: x86 defines its own.
  assert.match(
    readFileSync(report.sources[1] as string, 'utf8'),
    /#ifndef arch_irq_stat_cpu\n#define arch_irq_stat_cpu\(cpu\) 0\n#endif/,
  );
  assert.equal(report.verification.status, 'passed', JSON.stringify(report.verification));
  const scaffolding = readFileSync(join(report.sources[0] as string, '..', 'two-files-klp.c'), 'utf8');
  assert.match(scaffolding, /\.new_func = livepatch_filesystems_proc_show,[\s\S]*\.new_func = livepatch_show_stat,/);
  // With file I/O and /proc reads running on the new code while it is enabled.
  const rep = vmTest(t.abi, ko, join(ROOT, 'test/fixtures/patches/two-files-proc-LOADED.test'), [
    '--workload',
    'proc,fs',
  ]);
  assert.equal(rep.test?.ok, true);
  assert.deepEqual(
    rep.workloads.map((w) => `${w.kind}:${w.exitCode}`),
    ['proc:0', 'fs:0'],
  );
  assert.deepEqual(rep.problems, []);
});

test('create: the same inputs give byte-identical source and .ko', () => {
  const t = ensureTarget();
  const patch = join(ROOT, 'examples/proc-version/proc-version.patch');
  const a = create(t.abi, patch, 'proc_version');
  const b = create(t.abi, patch, 'proc_version');
  assert.equal(readFileSync(a.report.source, 'utf8'), readFileSync(b.report.source, 'utf8'));
  assert.ok(readFileSync(a.ko).equals(readFileSync(b.ko)), '.ko files differ');
});

test('create: an inlined helper in kernel/sched/core.c: its two callers replaced, helpers copied for what GCC knew of them, statics reached by KLP relocations', () => {
  const t = ensureTarget();
  // Not yet byte-equal to the patched build: there GCC kept a header's inline function
  // (_raw_spin_rq_lock_irqsave) out of line for its many callers, which a module cannot force.
  // verify says so, and --allow-unverified is needed to write the module.
  const strict = klpgen([
    'create',
    join(ROOT, 'test/fixtures/patches/sched-normal-prio.patch'),
    '--name',
    'sched_prio',
    '-o',
    join(tempDir('strict'), 'x.ko'),
    '--abi',
    t.abi,
  ]);
  if (strict.code !== 0) {
    assert.equal(strict.code, 3, strict.stderr);
    assert.match(strict.stderr, /the livepatch does not verify .*not written to the output/);
  }
  const { report, ko } = create(
    t.abi,
    join(ROOT, 'test/fixtures/patches/sched-normal-prio.patch'),
    'sched_prio',
    true,
    true,
  );
  assert.deepEqual(
    report.analysis.mustReplace.map((e) => e.symbol),
    ['__sched_setscheduler', 'set_user_nice'],
  );
  // set_user_nice matches once task_rq_lock's body is known (modref: it does not keep `rf`).
  const check = (n: string) => report.verification.functions.find((f) => f.name === n);
  assert.equal(check('livepatch_set_user_nice')?.equal, true, JSON.stringify(report.verification.functions));
  for (const n of ['task_rq_lock', 'update_rq_clock']) {
    assert.match(
      report.emitted.copied.find((c) => c.name === n)?.why ?? '',
      /knew its body/,
      `${n} not copied for knowledge`,
    );
    assert.equal(check(n)?.equal, true, `the copy of ${n} differs from the original`);
  }
  const klp = report.symbols.filter((s) => s.resolution === 'klp').map((s) => s.name);
  for (const n of ['fair_sched_class', 'balance_push_callback'])
    assert.ok(klp.includes(n), `${n} not KLP-relocated: ${klp.join(' ')}`);
  // __normal_prio has no symbol in the running kernel: it is copied, not referenced.
  assert.match(
    readFileSync(report.source, 'utf8'),
    /static inline int __normal_prio\(int policy, int rt_prio, int nice\)/,
  );
  const rep = vmTest(t.abi, ko);
  assert.deepEqual(rep.problems, []);
  assert.ok((rep.patches[0]?.transitionSeconds ?? 99) < 10);
});

test('create: a refused fix exits 2 with the reason and line', () => {
  const t = ensureTarget();
  const dir = tempDir('refused');
  const patch = join(dir, 'data.patch');
  writeFileSync(
    patch,
    [
      '--- a/kernel/sched/core.c',
      '+++ b/kernel/sched/core.c',
      '@@ -146,3 +146,3 @@',
      '  */',
      '-const_debug unsigned int sysctl_sched_nr_migrate = SCHED_NR_MIGRATE_BREAK;',
      '+const_debug unsigned int sysctl_sched_nr_migrate = SCHED_NR_MIGRATE_BREAK / 2;',
      ' ',
      '',
    ].join('\n'),
  );
  const r = klpgen(['create', patch, '--work-dir', join(dir, 'work'), '--abi', t.abi]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /kernel\/sched\/core\.c:147: data change: .*sysctl_sched_nr_migrate/);
});

test("create: a static local new in the fix starts fresh; one the original has is the running kernel's", () => {
  const t = ensureTarget();
  const dir = tempDir('static-local');
  const patch = join(dir, 'static-local.patch');
  writeFileSync(
    patch,
    [
      '--- a/fs/proc/version.c',
      '+++ b/fs/proc/version.c',
      '@@ -9,6 +9,9 @@',
      ' ',
      ' static int version_proc_show(struct seq_file *m, void *v)',
      ' {',
      '+\tstatic unsigned long shown;',
      '+',
      '+\tshown++;',
      ' \tseq_printf(m, linux_proc_banner,',
      ' \t\tutsname()->sysname,',
      ' \t\tutsname()->release,',
      '',
    ].join('\n'),
  );
  const fresh = klpgen([
    'create',
    patch,
    '--work-dir',
    join(dir, 'work'),
    '-o',
    join(dir, 'a.ko'),
    '--abi',
    t.abi,
    '--json',
  ]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.deepEqual((JSON.parse(fresh.stdout) as CreateReport).staticLocals, [
    'static local shown of livepatch_version_proc_show: new in the fix, a fresh instance'.replace('livepatch_', ''),
  ]);

  // audit_serial() keeps its counter in `static atomic_t serial`: the new code must count on.
  const { report, ko } = create(
    t.abi,
    join(ROOT, 'test/fixtures/patches/audit-serial-static-local.patch'),
    'audit_serial',
    true,
  );
  assert.ok(
    report.staticLocals.some((n) => /^static local serial of .*: the running kernel's serial\.\d+$/.test(n)),
    report.staticLocals.join('\n'),
  );
  const klp = report.symbols.filter((x) => x.resolution === 'klp');
  assert.ok(
    klp.some((x) => /^serial\.\d+$/.test(x.name)),
    'serial.N is not a KLP symbol',
  );
  // lock.N (audit_log_start's ratelimit lock) has namesakes in vmlinux: sympos >= 1.
  assert.ok(
    klp.some((x) => /^lock\.\d+$/.test(x.name) && (x.sympos ?? 0) >= 1),
    JSON.stringify(klp),
  );
  const rep = vmTest(t.abi, ko);
  assert.deepEqual(rep.problems, []);
});

test('verify catches a broken generator: an unpatched body, a function dropped from the set', () => {
  const t = ensureTarget();
  const dir = tempDir('verify-faults');
  const r = klpgen([
    'create',
    join(ROOT, 'examples/proc-version/proc-version.patch'),
    '--name',
    'proc_version',
    '-o',
    join(dir, 'v.ko'),
    '--work-dir',
    join(dir, 'work'),
    '--abi',
    t.abi,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const objects = join(dir, 'work', '2-objects', 'fs_proc_version');
  const base = {
    moduleObject: join(dir, 'work', '5-kmod', 'proc-version.o'),
    patchedObject: join(objects, 'patched', 'version.o'),
    functions: new Map([['livepatch_version_proc_show', 'version_proc_show']]),
    codeChanged: ['version_proc_show'],
    replaced: new Set(['version_proc_show']),
    coveredByCallers: new Set<string>(),
  };
  assert.equal(verify(base).status, 'passed');
  // The generator copied the unpatched body: compare the module with the original build instead.
  const swapped = verify({ ...base, patchedObject: join(objects, 'original', 'version.o') });
  assert.equal(swapped.status, 'failed');
  assert.match(swapped.functions[0]?.reason ?? '', /code differs|relocation/);
  // The generator dropped the changed function from the replaced set.
  const dropped = verify({ ...base, replaced: new Set<string>() });
  assert.equal(dropped.status, 'failed');
  assert.deepEqual(dropped.uncovered, ['version_proc_show']);
});
