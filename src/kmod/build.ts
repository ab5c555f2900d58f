import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KlpgenError } from '../util/errors.js';
import { run } from '../util/exec.js';
import type { TargetManifest } from '../target/manifest.js';
import { makeEnv } from '../target/setup.js';

export interface ModuleBuild {
  dir: string;
  modules: string[];
  /** Everything make printed, for the report. */
  output: string;
}

/**
 * Build an out-of-tree module against the target's headers package, as a
 * distribution's users would (`make -C <headers> M=<dir> modules`).
 */
export async function buildModule(target: TargetManifest, dir: string): Promise<ModuleBuild> {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new KlpgenError(`${dir}: no such directory`);
  if (!existsSync(join(abs, 'Kbuild')) && !existsSync(join(abs, 'Makefile'))) {
    throw new KlpgenError(`${dir}: no Kbuild or Makefile to build`);
  }
  const r = await run('make', ['-C', target.paths.headers, `M=${abs}`, 'modules'], { env: makeEnv() });
  const output = `${r.stdout}${r.stderr}`;
  if (r.code !== 0) {
    throw new KlpgenError(`module build in ${dir} failed:\n${compilerDiagnostics(output)}`);
  }
  const modules = readdirSync(abs)
    .filter((f) => f.endsWith('.ko'))
    .sort()
    .map((f) => join(abs, f));
  if (modules.length === 0) throw new KlpgenError(`module build in ${dir} produced no .ko file`);
  return { dir: abs, modules, output };
}

/** The compiler's own diagnostics first (what the user must fix), else make's last lines. */
export function compilerDiagnostics(output: string): string {
  const lines = output.split('\n');
  // Start at the first error (with its "In function" line), else the first warning, else make's tail.
  let first = lines.findIndex((l) => /: (fatal )?error: /.test(l));
  if (first > 0 && /In function /.test(lines[first - 1] ?? '')) first--;
  if (first < 0) first = lines.findIndex((l) => /: warning: |In function /.test(l));
  const start = first >= 0 ? first : Math.max(0, lines.length - 20);
  return lines
    .slice(start, start + 40)
    .join('\n')
    .trimEnd();
}
