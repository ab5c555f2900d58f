/**
 * `klpgen create` (verification included, and the rebuild with copied helpers
 * it triggers: this fix does not verify at first) for a one-file fix in
 * kernel/sched/core.c next to its floor: compiling that TU twice with the
 * exact flags, plus building the module once. Goal: create <= 1.5x the floor.
 *   npm run build && node dist/bench/create.js
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileArgv, compileCommand } from '../src/target/compile-command.js';
import { loadTarget } from '../src/target/manifest.js';

const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const patch = join(root, 'test/fixtures/patches/sched-normal-prio.patch');
const target = await loadTarget();
const cmd = await compileCommand(target, 'kernel/sched/core.c');
const dir = mkdtempSync(join(tmpdir(), 'klpgen-bench-create-'));
const time = (f: () => void) => { const t = performance.now(); f(); return (performance.now() - t) / 1000; };
try {
  // One create first: its 5-kmod dir is the module the floor builds once.
  const create = time(() => {
    const r = spawnSync(process.execPath, [join(root, 'bin/klpgen.js'), 'create', patch, '--name', 'bench', '-o', join(dir, 'b.ko'), '--work-dir', join(dir, 'work'), '--allow-unverified'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`create failed: ${r.stderr}`);
  });
  const compiles = time(() => {
    for (const n of [1, 2]) {
      const argv = compileArgv(cmd, { output: join(dir, `core${n}.o`) });
      if (spawnSync(argv[0] as string, argv.slice(1), { cwd: cmd.cwd }).status !== 0) throw new Error('compile failed');
    }
  });
  const kmod = join(dir, 'kmod');
  cpSync(join(dir, 'work', '4-source'), kmod, { recursive: true });
  const module = time(() => {
    const r = spawnSync('make', ['-C', target.paths.headers, `M=${kmod}`, 'KBUILD_MODPOST_WARN=1', 'modules'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`module build failed: ${r.stderr}`);
  });
  const floor = compiles + module;
  console.log('klpgen create vs its floor, a fix in kernel/sched/core.c (one run)');
  console.log(`  2 x gcc-12 -c core.c (exact flags)   ${compiles.toFixed(2)} s`);
  console.log(`  module build (make M=)               ${module.toFixed(2)} s`);
  console.log(`  floor                                ${floor.toFixed(2)} s`);
  console.log(`  klpgen create (whole process)        ${create.toFixed(2)} s   ratio ${(create / floor).toFixed(2)} (goal <= 1.5; verification and its rebuild included)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
