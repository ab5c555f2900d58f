import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Scoreboard } from '../../src/corpus/scoreboard.js';
import { ROOT, klpgen, tempDir } from '../helpers.js';

test('scoreboard: counts a loaded fix and a refused one, with the refusal reason', () => {
  assert.equal(klpgen(['target', 'setup', '--abi', '6.1.0-54']).code, 0);
  const r = klpgen([
    'scoreboard',
    join(ROOT, 'corpus/6.1.0-54'),
    '--match',
    'kernel-trace-fgraph',
    '--abi',
    '6.1.0-54',
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const refused = JSON.parse(r.stdout) as Scoreboard;
  assert.equal(refused.total, 1);
  assert.equal(refused.byOutcome.refused, 1);
  assert.deepEqual(refused.refusedBy, { untraceable: 1 });
  assert.deepEqual(refused.patches[0]?.refusals, ['untraceable']);

  const ok = JSON.parse(
    klpgen([
      'scoreboard',
      join(ROOT, 'corpus/6.1.0-54'),
      '--match',
      'arch-x86-events-amd-lbr',
      '--abi',
      '6.1.0-54',
      '--json',
    ]).stdout,
  ) as Scoreboard;
  assert.equal(ok.total, 1);
  assert.equal(ok.byOutcome.loaded, 1, JSON.stringify(ok.patches));
  assert.equal(ok.livepatchableRate, 1);
  // arch/x86/events runs the proc workload while the patch is enabled.
  assert.match(ok.patches[0]?.detail ?? '', /^transition [\d.]+ s; workloads proc ok$/);
});

test('scoreboard: an X-FAIL patch is as expected when refused, with the reviewed reason beside it', () => {
  const r = klpgen([
    'scoreboard',
    join(ROOT, 'corpus/6.1.0-54'),
    '--match',
    'io_uring-cancel_c-FAIL',
    '--no-vm',
    '--abi',
    '6.1.0-54',
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as Scoreboard;
  assert.equal(s.total, 1);
  assert.equal(s.patches[0]?.outcome, 'refused');
  assert.equal(s.patches[0]?.asExpected, true);
  assert.match(s.patches[0]?.expectedReason ?? '', /struct io_cancel_data/);
  assert.match(s.patches[0]?.detail ?? '', /struct io_cancel_data changed/);
});

test('scoreboard: a patch whose file does not compile against the target is an incomplete fix, outside the rate', () => {
  const dir = tempDir('incomplete');
  writeFileSync(
    join(dir, 'needs-a-header.patch'),
    [
      '--- a/fs/proc/version.c',
      '+++ b/fs/proc/version.c',
      '@@ -13,6 +13,7 @@',
      ' \t\tutsname()->sysname,',
      ' \t\tutsname()->release,',
      ' \t\tutsname()->version);',
      '+\tseq_puts(m, KLPGEN_NEW_BANNER);',
      ' \treturn 0;',
      ' }',
      ' ',
      '',
    ].join('\n'),
  );
  const r = klpgen(['scoreboard', dir, '--no-vm', '--abi', '6.1.0-54', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as Scoreboard;
  assert.equal(s.byOutcome['incomplete-fix'], 1, JSON.stringify(s.patches));
  assert.match(s.patches[0]?.detail ?? '', /KLPGEN_NEW_BANNER/);
  assert.equal(s.livepatchableRate, 0);
});

test('scoreboard: refusals are counted by their kind, each kind as create typed it', () => {
  const r = klpgen([
    'scoreboard',
    join(ROOT, 'corpus/6.1.0-54'),
    '--match',
    'io_uring-cancel_c-FAIL',
    '--no-vm',
    '--abi',
    '6.1.0-54',
    '--json',
  ]);
  const s = JSON.parse(r.stdout) as Scoreboard;
  assert.deepEqual(s.refusedBy, { 'struct-layout': 1 });
  // create --json's refusal is typed too: kind, file and line.
  const dir = tempDir('refusal-kind');
  const c = klpgen([
    'create',
    join(ROOT, 'corpus/6.1.0-54/io_uring-cancel_c-FAIL.patch'),
    '--work-dir',
    join(dir, 'w'),
    '-o',
    join(dir, 'x.ko'),
    '--abi',
    '6.1.0-54',
    '--json',
  ]);
  assert.equal(c.code, 2);
  const refusal = JSON.parse(c.stdout) as { refused: { kind: string; file: string; line: number }[] };
  assert.equal(refusal.refused[0]?.kind, 'struct-layout');
  assert.match(refusal.refused[0]?.file ?? '', /^io_uring\//);
  assert.ok((refusal.refused[0]?.line ?? 0) > 0);
});

test('scoreboard: --journal keeps each score and a re-run skips it; --shard K/N splits the corpus; --redo runs an outcome again', () => {
  const dir = tempDir('journal');
  const journal = join(dir, 'scores.jsonl');
  const run = (...extra: string[]) => {
    const r = klpgen([
      'scoreboard',
      join(ROOT, 'corpus/6.1.0-54'),
      '--match',
      'kernel-trace-fgraph',
      '--no-vm',
      '--abi',
      '6.1.0-54',
      '--journal',
      journal,
      '--json',
      ...extra,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return { board: JSON.parse(r.stdout) as Scoreboard, stderr: r.stderr };
  };
  const first = run();
  assert.equal(first.board.byOutcome.refused, 1);
  const lines = readFileSync(journal, 'utf8').trim().split('\n');
  assert.equal(lines.length, 1);
  assert.equal((JSON.parse(lines[0] as string) as { outcome: string }).outcome, 'refused');
  // Read back, not run again: no analysis this time, and the same score.
  const second = run();
  assert.doesNotMatch(second.stderr, /analysing/);
  assert.deepEqual(second.board.patches, first.board.patches);
  // One patch matched: shard 1/2 has it, shard 2/2 has nothing.
  assert.equal(run('--shard', '2/2').board.total, 0);
  assert.equal(run('--shard', '1/2').board.total, 1);
  // --redo refused: analysed again, one more line in the journal.
  assert.match(run('--redo', 'refused').stderr, /analysing/);
  assert.equal(readFileSync(journal, 'utf8').trim().split('\n').length, 2);
  const bad = klpgen(['scoreboard', join(ROOT, 'corpus/6.1.0-54'), '--shard', '3/2', '--abi', '6.1.0-54']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^klpgen: error: --shard: expected K\/N with 1 <= K <= N: 3\/2$/m);
});

test('scoreboard: a reader that stops early (| head) ends the command quietly, without a stack trace', () => {
  const dir = tempDir('epipe');
  // The committed whole-corpus journal: printing it needs no run, and is longer than a pipe holds.
  const cmd =
    `${JSON.stringify(process.execPath)} ${JSON.stringify(join(ROOT, 'bin/klpgen.js'))} scoreboard ${JSON.stringify(join(ROOT, 'corpus/6.1.0-54'))} ` +
    `--abi 6.1.0-54 --journal ${JSON.stringify(join(ROOT, 'corpus/6.1.0-54/scoreboard-full.jsonl'))} 2>${JSON.stringify(join(dir, 'err'))} | head -1; echo "status \${PIPESTATUS[0]}"`;
  const out = execFileSync('bash', ['-c', cmd]).toString();
  assert.match(out, /^scoreboard for 6\.1\.0-54/);
  assert.match(out, /status 0\n$/);
  assert.equal(readFileSync(join(dir, 'err'), 'utf8'), '');
});
