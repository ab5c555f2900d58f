import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AnalysisReport } from '../../src/analyze/analyze.js';
import { ROOT, klpgen, tempDir } from '../helpers.js';

/**
 * Real stable fixes from corpus/<abi>/, analysed against the real target
 * kernel, compared with must-replace sets established BY HAND (objdump of the
 * original and patched objects, the ipa-clones dump, nm of vmlinux / the
 * module): test/corpus/expected/<patch>.json. Each file says why every entry
 * is there (checkedByHand). A case whose expected answer klpgen does not give
 * yet carries `todo`: it still runs, and reports, without failing the suite.
 */
interface Expected {
  patch: string;
  abi: string;
  /** "object:symbol,sympos", sorted. */
  mustReplace: string[];
  refused: boolean;
  /** A known klpgen error: the expected answer is the correct one, not klpgen's. */
  todo?: string;
  /** For refused cases: a text that some refusal reason must contain. */
  refusalMentions?: string;
  checkedByHand: string;
}

const EXPECTED_DIR = join(ROOT, 'test', 'corpus', 'expected');
const cases = readdirSync(EXPECTED_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({
    name: f.replace(/\.json$/, ''),
    exp: JSON.parse(readFileSync(join(EXPECTED_DIR, f), 'utf8')) as Expected,
  }));

const setUp = new Map<string, string>();

/** `target setup` once per ABI (a no-op when it is set up); a failure fails every case. */
function ensureAbi(abi: string): void {
  let err = setUp.get(abi);
  if (err === undefined) {
    const r = klpgen(['target', 'setup', '--abi', abi], { timeoutMs: 60 * 60 * 1000 });
    err =
      r.code === 0
        ? ''
        : `klpgen target setup --abi ${abi} failed (exit ${r.code}):\n${r.stderr.trim().split('\n').slice(-15).join('\n')}`;
    setUp.set(abi, err);
  }
  if (err) assert.fail(err);
}

const entry = (e: AnalysisReport['mustReplace'][number]) => `${e.object}:${e.symbol},${e.sympos}`;

test('analyze corpus: the expected files are well formed', () => {
  assert.ok(cases.length >= 6, `only ${cases.length} expected files in ${EXPECTED_DIR}`);
  for (const { name, exp } of cases) {
    assert.equal(exp.patch, `corpus/${exp.abi}/${name}.patch`, name);
    assert.deepEqual(exp.mustReplace, [...exp.mustReplace].sort(), `${name}: mustReplace is not sorted`);
    for (const e of exp.mustReplace) assert.match(e, /^[\w-]+:[\w.$]+,\d+$/, `${name}: ${e}`);
    // An empty set that is not refused must say so in the hand check (a fix with no code effect).
    assert.ok(
      exp.refused || exp.mustReplace.length > 0 || /nothing must be replaced/.test(exp.checkedByHand),
      `${name}: neither refused nor anything to replace`,
    );
    assert.ok(exp.checkedByHand.length > 40, `${name}: checkedByHand is missing`);
  }
});

for (const { name, exp } of cases) {
  test(`analyze corpus: ${name}`, exp.todo ? { todo: exp.todo } : {}, () => {
    ensureAbi(exp.abi);
    const work = tempDir('corpus');
    try {
      check(name, exp, work);
    } finally {
      // KLPGEN_KEEP_WORK=1 keeps the work dirs (sources, objects, ipa-clones dumps) to look at.
      if (!process.env.KLPGEN_KEEP_WORK) rmSync(work, { recursive: true, force: true });
    }
  });
}

function check(name: string, exp: Expected, work: string): void {
  const r = klpgen(['analyze', join(ROOT, exp.patch), '--abi', exp.abi, '--work-dir', work, '--json'], {
    timeoutMs: 5 * 60 * 1000,
  });
  const where = `(work dir ${work}${process.env.KLPGEN_KEEP_WORK ? '' : ', removed; KLPGEN_KEEP_WORK=1 keeps it'})\n${r.stderr.trim().split('\n').slice(-10).join('\n')}`;
  let report: AnalysisReport;
  try {
    report = JSON.parse(r.stdout) as AnalysisReport;
  } catch {
    assert.fail(`analyze ${name}: exit ${r.code}, no JSON report ${where}`);
  }
  const refusals = report.refusals.map((f) => `${f.file}:${f.line}: ${f.reason}`);
  assert.equal(
    r.code,
    exp.refused ? 2 : 0,
    `analyze ${name}: exit ${r.code}; refusals: ${JSON.stringify(refusals)} ${where}`,
  );
  assert.equal(report.ok, !exp.refused);
  assert.deepEqual(report.mustReplace.map(entry).sort(), exp.mustReplace, `${name}: must-replace set ${where}`);
  for (const e of report.mustReplace) {
    assert.ok(e.reasons.length > 0, `${name}: ${entry(e)} has no reason`);
    for (const why of e.reasons)
      assert.ok(
        why.kind && why.detail && why.evidence,
        `${name}: ${entry(e)}: incomplete reason ${JSON.stringify(why)}`,
      );
  }
  if (exp.refused) {
    assert.ok(refusals.length > 0, `${name}: refused without a refusal`);
    if (exp.refusalMentions) {
      assert.ok(
        refusals.some((f) => f.includes(exp.refusalMentions as string)),
        `${name}: no refusal mentions ${exp.refusalMentions}: ${JSON.stringify(refusals)}`,
      );
    }
  } else {
    assert.deepEqual(refusals, [], name);
  }
}
