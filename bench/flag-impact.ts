/**
 * `klpgen flag-impact kernel/` next to what it stands on: `make -j2 kernel/`
 * in a scratch copy of the target's object tree with every kernel/ object
 * removed (one compile per TU, plus objtool; flag-impact compiles each TU
 * twice). Goal: ratio <= 1.2.
 *
 * Both runs are cold: flag-impact with --no-cache (it never reuses Kbuild's
 * objects: its commands come from a dry run), make in a tree without
 * kernel/ objects. The scratch tree gets an untimed `make prepare` first:
 * copying the tree changes the paths objtool was built with, and
 * rebuilding it is not part of building kernel/. flag-impact runs first,
 * so make, not klpgen, gets any page-cache advantage. Then a warm
 * flag-impact run (its per-TU cache) is timed too. Wall time depends on
 * whatever else runs on the machine, so CPU time (user + sys of the whole
 * process tree, from /usr/bin/time) is reported next to it: on a busy
 * machine its ratio is the better estimate of the idle wall-time ratio.
 *   npm run build && node dist/bench/flag-impact.js [ABI]
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlagImpactReport } from '../src/flagimpact/report.js';
import { loadTarget } from '../src/target/manifest.js';
import { ARCH, CC, kernelRelease } from '../src/target/paths.js';
import { makeEnv } from '../src/target/setup.js';

const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const target = await loadTarget(process.argv[2]);
const jobs = process.env.BENCH_JOBS ?? '2';
const scratch = mkdtempSync(join(tmpdir(), 'klpgen-bench-flag-impact-'));

interface Timed {
  wall: number;
  cpu: number;
  stdout: string;
}

/** Run under /usr/bin/time: wall seconds and CPU seconds (user + sys) of the whole process tree. */
function timedRun(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Timed {
  const out = join(scratch, 'time.txt');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S', '-o', out, cmd, ...args], {
    env: env ?? process.env,
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} failed:\n${r.stderr.slice(-3000)}`);
  const [wall, user, sys] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number) as [
    number,
    number,
    number,
  ];
  return { wall, cpu: user + sys, stdout: r.stdout };
}

function klpgen(args: string[]): Timed & { report: FlagImpactReport } {
  const t = timedRun(process.execPath, [
    join(root, 'bin/klpgen.js'),
    'flag-impact',
    'kernel/',
    '--abi',
    target.abi,
    '-j',
    jobs,
    '--json',
    ...args,
  ]);
  return { ...t, report: JSON.parse(t.stdout) as FlagImpactReport };
}

/** Everything Kbuild built under kernel/ goes, except kernel/bounds.s: `prepare` made it, not `make kernel/`. */
function removeKernelObjects(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) removeKernelObjects(p);
    else if (!/(^|\/)kernel\/(bounds\.s|\.bounds\.s\.cmd)$/.test(p)) rmSync(p, { force: true });
  }
}

function make(objTree: string, goals: string[]): Timed {
  return timedRun(
    'make',
    [
      '-C',
      target.paths.source,
      `O=${objTree}`,
      `ARCH=${ARCH}`,
      `CC=${CC}`,
      `KERNELRELEASE=${kernelRelease(target.abi)}`,
      `-j${jobs}`,
      ...goals,
    ],
    makeEnv(),
  );
}

try {
  const build = join(scratch, 'build');
  cpSync(target.paths.build, build, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  removeKernelObjects(join(build, 'kernel'));
  make(build, ['prepare']);
  const loadBefore = loadavg()[0] ?? 0;

  const cold = klpgen(['--no-cache']);
  const makeCold = make(build, ['kernel/']);
  const warm = klpgen([]);
  if (JSON.stringify(cold.report) !== JSON.stringify(warm.report))
    throw new Error('the warm run reported something else than the cold run');

  const loadAfter = loadavg()[1] ?? 0;
  const s = cold.report.summary;
  console.log(`flag-impact kernel/ vs make -j${jobs} kernel/ (target ${target.abi}, ${jobs} jobs each)`);
  console.log(
    `  load average: ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} over the last 5 minutes after (other work on the machine skews both runs)`,
  );
  console.log(`  TUs compiled: ${s.tus} (twice each); .c files skipped: ${s.skipped}`);
  console.log(
    `  functions: ${s.functions.asIs} as-is; ${s.changed} changed, ${s.added} added, ${s.removed} removed; ${s.callersChanged} callers changed by caller-side causes`,
  );
  console.log(
    `  by cause: ${Object.entries(s.byCause)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  console.log(`  size ${s.sizeDelta} bytes, ${s.instructionDelta} instructions`);
  console.log(
    `  inlining: ${s.inlining.lost} lost, ${s.inlining.gained} gained, ${s.inlining.callDeletedAsIs} only because the as-is build deleted the calls`,
  );
  console.log(
    `  clones: ${s.clones.disappeared} disappeared, ${s.clones.appeared} appeared; objtool warnings: ${s.objtool.appeared} appeared, ${s.objtool.disappeared} disappeared`,
  );
  const row = (what: string, t: Timed, note = '') =>
    console.log(
      `  ${what.padEnd(36)} wall ${t.wall.toFixed(1).padStart(6)} s  cpu ${t.cpu.toFixed(1).padStart(6)} s${t === makeCold ? '' : `   ratio wall ${(t.wall / makeCold.wall).toFixed(2)}, cpu ${(t.cpu / makeCold.cpu).toFixed(2)}`}${note}`,
    );
  row(`make -j${jobs} kernel/ (cold)`, makeCold);
  row('klpgen flag-impact kernel/ (cold)', cold, ' (goal <= 1.2)');
  row('klpgen flag-impact kernel/ (warm)', warm, ' (per-TU cache)');
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
