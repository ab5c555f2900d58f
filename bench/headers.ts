/**
 * Header fixes: `klpgen analyze` (usage records on demand, then the users compiled both ways)
 * next to what the binary-diff tools pay: compiling every includer of the header both ways,
 * and building the whole configuration both ways (kpatch-build, klp-build). The includer and
 * full-build costs are measured on a sample of TUs in the same run (one `gcc -c` each with
 * its exact command) and scaled by the counts, on this machine's cores. Then the usage
 * index: records made per second, bytes per record, and the whole target at that rate.
 *   npm run build && node dist/bench/headers.js [--abi 6.1.0-54] [--sample N]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AnalysisReport } from '../src/analyze/analyze.js';
import { compileArgv } from '../src/target/compile-command.js';
import { loadTarget } from '../src/target/manifest.js';
import { builtCommands, commandOf } from '../src/usage/commands.js';
import { loadIncludeGraph, includingUnits } from '../src/usage/include-graph.js';
import { UsageIndex } from '../src/usage/index.js';

const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const target = await loadTarget(arg('--abi') ?? '6.1.0-54');
const sampleSize = Number(arg('--sample') ?? 8);
const corpus = join(root, 'corpus', '6.1.0-54');
const cores = cpus().length;

const CASES = [
  'include-linux-can-skb_h.patch',
  'drivers-nvme-target-nvmet_h.patch',
  'include-linux-list_h.patch',
  'include-net-inet_connection_sock_h.patch',
  'include-linux-netfilter_h.patch',
];

const built = await builtCommands(target);
const graph = await loadIncludeGraph(
  target.paths.source,
  target.paths.build,
  join(targetRoot(), 'usage', 'include-graph.json.gz'),
);
function targetRoot(): string {
  return resolve(target.paths.build, '..');
}

/** Seconds of one `gcc -c` of each TU, with its exact flags, into a scratch dir. */
function compileSeconds(files: string[]): number[] {
  const dir = mkdtempSync(join(tmpdir(), 'klpgen-bench-hdr-'));
  try {
    return files.map((f, i) => {
      const cmd = commandOf(target, built, f);
      if (!cmd) throw new Error(`${f}: not built`);
      const argv = compileArgv(cmd, { output: join(dir, `${i}.o`) });
      const t = performance.now();
      const r = spawnSync(argv[0] as string, argv.slice(1), { cwd: cmd.cwd, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${f}: ${r.stderr.split('\n')[0]}`);
      return (performance.now() - t) / 1000;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every k-th of `xs`, `n` of them. */
const spread = <T>(xs: T[], n: number) =>
  Array.from(
    { length: Math.min(n, xs.length) },
    (_, i) => xs[Math.floor((i * xs.length) / Math.min(n, xs.length))] as T,
  );
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const fmt = (s: number) => (s >= 600 ? `${(s / 60).toFixed(0)} min` : `${s.toFixed(0)} s`);

const allFiles = Object.keys(built.commands);
const fullSample = compileSeconds(spread(allFiles, sampleSize * 2));
const fullBothWays = (2 * mean(fullSample) * allFiles.length) / cores;

console.log(
  `header fixes on ${target.abi}, ${cores} cores; includer and full-build costs from ${sampleSize} / ${fullSample.length} sampled compiles`,
);
console.log(
  `full build both ways: ${allFiles.length} TUs x 2 x ${mean(fullSample).toFixed(2)} s / ${cores} = ${fmt(fullBothWays)}`,
);
console.log(
  'fix | includers | users | klpgen analyze | every includer both ways | ratio | full build both ways | ratio',
);
for (const patch of CASES) {
  const file = join(corpus, patch);
  if (!existsSync(file)) continue;
  const dir = mkdtempSync(join(tmpdir(), 'klpgen-bench-hdr-'));
  try {
    const t = performance.now();
    const r = spawnSync(
      process.execPath,
      [join(root, 'bin/klpgen.js'), 'analyze', file, '--abi', target.abi, '--work-dir', join(dir, 'w'), '--json'],
      { encoding: 'utf8', maxBuffer: 256 << 20 },
    );
    const klpgen = (performance.now() - t) / 1000;
    if (r.status !== 0 && r.status !== 2) throw new Error(`${patch}: ${r.stderr.trim().split('\n').at(-1)}`);
    const report = JSON.parse(r.stdout) as AnalysisReport;
    const h = report.headerUsers?.[0];
    if (!h) continue;
    const includers = includingUnits(graph, h.header).filter((f) => built.commands[f] !== undefined);
    const sample = compileSeconds(spread(includers, sampleSize));
    const everyIncluder = (2 * mean(sample) * includers.length) / cores;
    console.log(
      [
        patch.replace(/\.patch$/, ''),
        includers.length,
        `${h.users.length} (${h.made} records made)`,
        `${klpgen.toFixed(1)} s`,
        fmt(everyIncluder),
        `${(klpgen / everyIncluder).toFixed(3)}x`,
        fmt(fullBothWays),
        `${(klpgen / fullBothWays).toFixed(4)}x`,
      ].join(' | '),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The index: records made side by side with the compiles above, on a fresh sample.
const index = await UsageIndex.open(target);
const recordsDir = join(index.dir, 'records');
const sizes: number[] = [];
const walk = (d: string) => {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.rec')) sizes.push(statSync(p).size);
  }
};
if (existsSync(recordsDir)) walk(recordsDir);
const scratch = mkdtempSync(join(tmpdir(), 'klpgen-bench-idx-'));
try {
  const probe = spread(allFiles, sampleSize * 2);
  const t = performance.now();
  for (const f of probe) {
    const cmd = commandOf(target, built, f);
    if (!cmd) continue;
    const argv = compileArgv(cmd, { output: join(scratch, 'x.i'), preprocess: true, extraFlags: ['-dU'] });
    spawnSync(argv[0] as string, argv.slice(1), { cwd: cmd.cwd });
  }
  const perTu = (performance.now() - t) / 1000 / probe.length;
  const meta = index.meta();
  console.log(
    `usage index: ${sizes.length} records on disk, ${(mean(sizes) / 1024).toFixed(0)} KB each; whole target ${allFiles.length} TUs ~ ${((mean(sizes) * allFiles.length) / 2 ** 20).toFixed(0)} MB`,
  );
  console.log(
    `  gcc -E -dU ${perTu.toFixed(2)} s a TU (sampled): the whole target >= ${fmt((perTu * allFiles.length) / cores)} on ${cores} cores plus the scan${meta ? `; measured complete build: ${fmt(meta.seconds)}` : ''}`,
  );
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
