/**
 * The frontend on the largest TU of the sample (kernel/sched/core.c) next to
 * gcc-12 -fsyntax-only with the same flags on the same TU, in one run.
 *   npm run build && node dist/bench/frontend.js [FILE.c] [--runs N]
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileArgv, compileCommand } from '../src/target/compile-command.js';
import { loadTarget } from '../src/target/manifest.js';

const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 5;
const file = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--runs') ?? 'kernel/sched/core.c';
const here = resolve(fileURLToPath(import.meta.url), '..');
const target = await loadTarget();
const cmd = await compileCommand(target, file);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const gccTimes: number[] = [];
const syntaxArgv = compileArgv(cmd, { output: '/dev/null', extraFlags: ['-fsyntax-only'] });
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  const r = spawnSync(syntaxArgv[0] as string, syntaxArgv.slice(1), { cwd: cmd.cwd });
  if (r.status !== 0) throw new Error(`gcc -fsyntax-only failed: ${r.stderr}`);
  gccTimes.push((performance.now() - t0) / 1000);
}

// gcc -E alone, to a scratch file, for comparison with its time beside the parser.
const ppTimes: number[] = [];
const ppOut = join(tmpdir(), `klpgen-bench-${process.pid}.i`);
const ppArgv = compileArgv(cmd, { output: ppOut, preprocess: true });
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  const r = spawnSync(ppArgv[0] as string, ppArgv.slice(1), { cwd: cmd.cwd });
  if (r.status !== 0) throw new Error(`gcc -E failed: ${r.stderr}`);
  ppTimes.push((performance.now() - t0) / 1000);
}
rmSync(ppOut, { force: true });

interface Run {
  preprocessSeconds: number;
  waitSeconds: number;
  parseSeconds: number;
  totalSeconds: number;
  cpuSeconds: number;
  maxRssMiB: number;
  tokens: number;
  entities: number;
}
const feRuns: Run[] = [];
const processTimes: number[] = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  // The same V8 flag as bin/klpgen.js: a larger young generation, fewer scavenges.
  const r = spawnSync(process.execPath, ['--max-semi-space-size=16', join(here, 'frontend-run.js'), file, target.abi], {
    encoding: 'utf8',
  });
  processTimes.push((performance.now() - t0) / 1000);
  if (r.status !== 0) throw new Error(`frontend run failed: ${r.stderr}`);
  feRuns.push(JSON.parse(r.stdout) as Run);
}
const gcc = median(gccTimes);
const fe = median(feRuns.map((r) => r.totalSeconds));
const feProcess = median(processTimes);
const pp = median(feRuns.map((r) => r.preprocessSeconds));
const wait = median(feRuns.map((r) => r.waitSeconds));
const tail = median(feRuns.map((r) => r.totalSeconds - r.preprocessSeconds));
const cpu = median(feRuns.map((r) => r.cpuSeconds));
const rss = Math.max(...feRuns.map((r) => r.maxRssMiB));
const last = feRuns[feRuns.length - 1] as Run;

console.log(`frontend vs gcc-12 -fsyntax-only on ${file} (median of ${runs} runs, same flags)`);
console.log(`  tokens ${last.tokens}, entities ${last.entities}`);
console.log(`  gcc-12 -fsyntax-only                 ${gcc.toFixed(3)} s`);
console.log(`  gcc-12 -E alone                      ${median(ppTimes).toFixed(3)} s`);
console.log(
  `  frontend: gcc -E (overlapped)        ${pp.toFixed(3)} s   (parser idle, waiting for it: ${wait.toFixed(3)} s)`,
);
console.log(
  `  frontend: after gcc -E ended         ${tail.toFixed(3)} s   (our CPU time, all threads: ${cpu.toFixed(3)} s)`,
);
console.log(
  `  frontend: total (-E || lex, parse, model)  ${fe.toFixed(3)} s   ratio ${(fe / gcc).toFixed(2)} (goal <= 1.0, stretch 0.5)`,
);
console.log(`  frontend: whole process (node start) ${feProcess.toFixed(3)} s   ratio ${(feProcess / gcc).toFixed(2)}`);
console.log(`  frontend: peak RSS                   ${rss.toFixed(0)} MiB (goal <= 1024)`);
