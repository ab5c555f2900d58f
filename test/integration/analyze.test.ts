import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AnalysisReport } from '../../src/analyze/analyze.js';
import { ROOT, ensureTarget, klpgen, tempDir } from '../helpers.js';

function analyze(abi: string, patches: string[]): { code: number; report: AnalysisReport; stderr: string } {
  const work = tempDir('analyze');
  const r = klpgen(['analyze', ...patches, '--abi', abi, '--work-dir', work, '--json']);
  return { code: r.code, report: JSON.parse(r.stdout) as AnalysisReport, stderr: r.stderr };
}

const set = (r: AnalysisReport) => r.mustReplace.map((e) => `${e.object}:${e.symbol},${e.sympos}`).sort();

test('analyze: a one-function fix in fs/proc/version.c replaces exactly that function', () => {
  const t = ensureTarget();
  const { code, report } = analyze(t.abi, [join(ROOT, 'examples/proc-version/proc-version.patch')]);
  assert.equal(code, 0);
  assert.deepEqual(set(report), ['vmlinux:version_proc_show,0']);
  const e = report.mustReplace[0]!;
  assert.equal(e.file, 'fs/proc/version.c');
  assert.equal(e.line, 10);
  assert.deepEqual(e.reasons.map((r) => r.kind).sort(), ['code', 'source']);
  assert.deepEqual(report.refusals, []);
});

test('analyze: an inlined helper in kernel/sched/core.c brings in exactly the callers GCC inlined it into', () => {
  const t = ensureTarget();
  const { code, report } = analyze(t.abi, [join(ROOT, 'test/fixtures/patches/sched-normal-prio.patch')]);
  assert.equal(code, 0, JSON.stringify(report.refusals));
  // __normal_prio is static inline: no symbol of its own; its code lives in these two.
  assert.deepEqual(set(report), ['vmlinux:__sched_setscheduler,0', 'vmlinux:set_user_nice,0']);
  const tu = report.tus[0]!;
  assert.deepEqual(tu.sourceChanged, ['__normal_prio']);
  assert.deepEqual(tu.noSymbol, ['__normal_prio']);
  const nice = report.mustReplace.find((e) => e.symbol === 'set_user_nice')!;
  assert.ok(
    nice.reasons.some((r) => r.evidence === 'ipa-clones' && /effective_prio inlined into set_user_nice/.test(r.detail)),
    JSON.stringify(nice.reasons),
  );
  assert.ok(nice.reasons.some((r) => r.evidence === 'object diff'));
});

test('analyze: a patch that does not apply names the hunk; a data change is refused with its line', () => {
  const t = ensureTarget();
  const dir = tempDir('badpatch');
  const bad = join(dir, 'bad.patch');
  writeFileSync(
    bad,
    '--- a/fs/proc/version.c\n+++ b/fs/proc/version.c\n@@ -12,2 +12,2 @@\n-this line is not there\n+replacement\n context\n',
  );
  const r = klpgen(['analyze', bad, '--abi', t.abi, '--work-dir', tempDir('w')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^klpgen: error: bad\.patch:3: hunk #1 of fs\/proc\/version\.c does not apply/m);
  assert.doesNotMatch(r.stderr, /\n\s+at /);

  const data = join(dir, 'data.patch');
  writeFileSync(
    data,
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
  const refused = analyze(t.abi, [data]);
  assert.equal(refused.code, 2);
  assert.equal(refused.report.ok, false);
  assert.deepEqual(
    refused.report.refusals.map((f) => `${f.file}:${f.line}`),
    ['kernel/sched/core.c:147'],
  );
  assert.match(refused.report.refusals[0]!.reason, /data change: .*sysctl_sched_nr_migrate/);
});
