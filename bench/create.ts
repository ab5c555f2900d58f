/**
 * `klpgen create` next to its floor, for one-TU fixes: compiling that TU twice with its exact
 * flags, plus linking the module once (Kbuild on the module dir create made, its extracted
 * objects kept, everything it built removed). Measured side by side in one run. Goal: create
 * (analysis, extraction, verification included) <= 1.5x the floor.
 *   npm run build && node dist/bench/create.js
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileArgv, compileCommand } from '../src/target/compile-command.js';
import { loadTarget } from '../src/target/manifest.js';

const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const target = await loadTarget();
const time = (f: () => void) => {
  const t = performance.now();
  f();
  return (performance.now() - t) / 1000;
};

const cases = [
  {
    title: 'the bundled example (fs/proc/version.c)',
    patch: 'examples/proc-version/proc-version.patch',
    tu: 'fs/proc/version.c',
  },
  {
    title: 'an inlined helper in kernel/sched/core.c',
    patch: 'test/fixtures/patches/sched-normal-prio.patch',
    tu: 'kernel/sched/core.c',
  },
];

console.log('klpgen create vs its floor (2 compiles of the TU + the module link), one run each');
for (const c of cases) {
  const dir = mkdtempSync(join(tmpdir(), 'klpgen-bench-create-'));
  try {
    const cmd = await compileCommand(target, c.tu);
    const create = time(() => {
      const r = spawnSync(
        process.execPath,
        [
          join(root, 'bin/klpgen.js'),
          'create',
          join(root, c.patch),
          '--name',
          'bench',
          '-o',
          join(dir, 'b.ko'),
          '--work-dir',
          join(dir, 'work'),
        ],
        { encoding: 'utf8' },
      );
      if (r.status !== 0) throw new Error(`create failed: ${r.stderr}`);
    });
    const compiles = time(() => {
      for (const n of [1, 2]) {
        const argv = compileArgv(cmd, { output: join(dir, `tu${n}.o`) });
        if (spawnSync(argv[0] as string, argv.slice(1), { cwd: cmd.cwd }).status !== 0)
          throw new Error('compile failed');
      }
    });
    // The link create made, again: its extracted objects stay, what Kbuild built goes.
    const kmod = join(dir, 'kmod');
    cpSync(join(dir, 'work', '5-kmod'), kmod, { recursive: true });
    for (const f of readdirSync(kmod))
      if (/\.(ko|mod|mod\.c|mod\.o)$|^modules\.order$|^Module\.symvers$|^livepatch-.*\.o$|-klp\.o$/.test(f))
        rmSync(join(kmod, f));
    const link = time(() => {
      const r = spawnSync('make', ['-C', target.paths.headers, `M=${kmod}`, 'KBUILD_MODPOST_WARN=1', 'modules'], {
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(`module link failed: ${r.stderr}`);
    });
    const floor = compiles + link;
    console.log(`  ${c.title}`);
    console.log(`    2 x gcc-12 -c (exact flags)    ${compiles.toFixed(2)} s`);
    console.log(`    module link (make M=)          ${link.toFixed(2)} s`);
    console.log(`    floor                          ${floor.toFixed(2)} s`);
    console.log(
      `    klpgen create (whole process)  ${create.toFixed(2)} s   ratio ${(create / floor).toFixed(2)} (goal <= 1.5)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
