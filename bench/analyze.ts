/**
 * `klpgen analyze` on a one-function fix in kernel/sched/core.c next to the
 * floor it stands on: compiling that TU twice with the exact Kbuild flags
 * (sequentially, as two builds would). Goal: analyze <= 1.5x the floor.
 *   npm run build && node dist/bench/analyze.js
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileArgv, compileCommand } from '../src/target/compile-command.js';
import { loadTarget } from '../src/target/manifest.js';

const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const patch = join(root, 'test/fixtures/patches/sched-normal-prio.patch');
const target = await loadTarget();
const cmd = await compileCommand(target, 'kernel/sched/core.c');
const dir = mkdtempSync(join(tmpdir(), 'klpgen-bench-analyze-'));
try {
  const t0 = performance.now();
  for (const n of [1, 2]) {
    const argv = compileArgv(cmd, { output: join(dir, `core${n}.o`) });
    const r = spawnSync(argv[0] as string, argv.slice(1), { cwd: cmd.cwd });
    if (r.status !== 0) throw new Error(`compile failed: ${r.stderr}`);
  }
  const floor = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const r = spawnSync(
    process.execPath,
    [join(root, 'bin/klpgen.js'), 'analyze', patch, '--work-dir', join(dir, 'work'), '--json'],
    { encoding: 'utf8' },
  );
  const analyze = (performance.now() - t1) / 1000;
  if (r.status !== 0) throw new Error(`analyze failed: ${r.stderr}`);
  const report = JSON.parse(r.stdout) as { mustReplace: { symbol: string }[] };
  console.log('analyze vs compiling kernel/sched/core.c twice (exact flags)');
  console.log(`  floor: 2 x gcc-12 -c core.c      ${floor.toFixed(2)} s`);
  console.log(
    `  klpgen analyze (whole process)   ${analyze.toFixed(2)} s   ratio ${(analyze / floor).toFixed(2)} (goal <= 1.5)`,
  );
  console.log(`  must replace: ${report.mustReplace.map((e) => e.symbol).join(', ')}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
