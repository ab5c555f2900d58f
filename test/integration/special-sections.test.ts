import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CreateReport } from '../../src/create/create.js';
import type { VmReport } from '../../src/vm/vm-test.js';
import { ROOT, abiArgs, ensureTarget, klpgen, tempDir } from '../helpers.js';

/**
 * One fix per special section: each new function has an entry in one of the kernel's code-place
 * tables, is taken from the patched build's object, verified, and proven in the VM by a LOADED
 * test that runs the path the entry is for (the jump label follows its key both ways, the static
 * call is passed, the exception-table entry fixes a fault up, the alternative answers as the CPU
 * flags do, the WARN fires with its new text, the indirect call's result is printed).
 */
interface Fixture {
  name: string;
  /** The section the fix is about. */
  section: string;
  file: string;
  fn: string;
  /** vm-test --expect-warn texts. */
  expectWarn?: string[];
}

const FIXTURES: Fixture[] = [
  { name: 'static-key', section: '__jump_table', file: 'fs/proc/loadavg.c', fn: 'loadavg_proc_show' },
  { name: 'static-call', section: '.static_call_sites', file: 'fs/proc/cmdline.c', fn: 'cmdline_proc_show' },
  { name: 'ex-table', section: '__ex_table', file: 'fs/proc/version.c', fn: 'version_proc_show' },
  { name: 'alternative', section: '.altinstructions', file: 'kernel/exec_domain.c', fn: 'execdomains_proc_show' },
  {
    name: 'warn',
    section: '__bug_table',
    file: 'kernel/ksysfs.c',
    fn: 'rcu_expedited_store',
    expectWarn: ['klpgen: rcu_expedited=2 is out of range'],
  },
  { name: 'retpoline', section: '.retpoline_sites', file: 'fs/proc/consoles.c', fn: 'show_console_dev' },
];

for (const f of FIXTURES) {
  test(`special sections: ${f.name} (${f.section}) is extracted, verified and works in the VM`, () => {
    ensureTarget();
    const dir = tempDir(`special-${f.name}`);
    try {
      const patch = join(ROOT, 'test/fixtures/patches', `special-${f.name}.patch`);
      const loaded = join(ROOT, 'test/fixtures/patches', `special-${f.name}-LOADED.test`);
      const name = f.name.replace(/-/g, '_');
      const ko = join(dir, `${name}.ko`);
      const c = klpgen([
        'create',
        patch,
        '--name',
        name,
        '-o',
        ko,
        '--work-dir',
        join(dir, 'work'),
        '--json',
        ...abiArgs(),
      ]);
      assert.equal(c.code, 0, c.stderr);
      const r = JSON.parse(c.stdout) as CreateReport;
      assert.equal(r.verification.status, 'passed', JSON.stringify(r.verification));
      assert.equal(r.code.length, 1, JSON.stringify(r.code));
      assert.equal(r.code[0]?.file, f.file);
      assert.equal(r.code[0]?.how, 'extracted', JSON.stringify(r.code));
      const entries = r.code[0]?.specialEntries ?? {};
      assert.ok((entries[f.section] ?? 0) > 0, `${f.section} not carried: ${JSON.stringify(entries)}`);
      // The function (and any .cold part GCC split off it) is the patched build's code.
      const copied = r.emitted.copied.map((x) => [x.name, x.made]);
      assert.ok(
        copied.some(([n]) => n === f.fn),
        JSON.stringify(copied),
      );
      assert.ok(
        copied.every(([n, made]) => (n === f.fn || n === `${f.fn}.cold`) && made === 'extracted'),
        JSON.stringify(copied),
      );

      const warnArgs = (f.expectWarn ?? []).flatMap((t) => ['--expect-warn', t]);
      const v = klpgen(['vm-test', ko, '--test', loaded, ...warnArgs, '--json', ...abiArgs()]);
      const rep = JSON.parse(v.stdout) as VmReport;
      assert.equal(v.code, 0, rep.failures.join('\n'));
      assert.equal(rep.ok, true);
      assert.equal(rep.test?.ok, true, JSON.stringify(rep.test));
      const p = rep.patches[0]!;
      assert.equal(p.name, `livepatch_${name}`);
      assert.ok(p.loaded && p.enabled && p.disabled && p.unloaded, JSON.stringify(p));
      assert.ok(p.transitionSeconds !== null && p.transitionSeconds <= 10, `transition ${p.transitionSeconds}`);
      assert.deepEqual(rep.problems, []);
      // An expected WARN fired (and nothing else was excused).
      assert.deepEqual(
        rep.expectedWarnings.map((e) => e.text),
        f.expectWarn ?? [],
      );
      for (const e of rep.expectedWarnings) {
        assert.ok(e.seen > 0, `${e.text}: not seen`);
        assert.match(e.warnings[0] ?? '', new RegExp(`WARNING: .* at ${f.file}:\\d+ livepatch_${f.fn}\\+`));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
