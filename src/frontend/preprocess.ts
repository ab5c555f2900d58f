import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KlpgenError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { compileArgv, compileCommand, type CompileCommand } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';

export interface Preprocessed {
  command: CompileCommand;
  /** The .i file written in the work dir. */
  path: string;
  text: string;
  seconds: number;
}

/**
 * Run the TU's exact Kbuild command with -E (line markers kept) into a work
 * dir; `copy` compiles a patched copy instead of the tree's file.
 */
export async function preprocess(
  target: TargetManifest,
  file: string,
  outDir: string,
  copy?: { source: string; root: string },
): Promise<Preprocessed> {
  const command = await compileCommand(target, file);
  const path = join(outDir, command.file.replace(/\.c$/, '.i'));
  await mkdir(dirname(path), { recursive: true });
  const argv = compileArgv(command, {
    output: path,
    preprocess: true,
    ...(copy ? { source: copy.source, sourceRoot: copy.root } : {}),
  });
  const t0 = performance.now();
  const r = await run(argv[0] as string, argv.slice(1), { cwd: command.cwd });
  const seconds = (performance.now() - t0) / 1000;
  if (r.code !== 0) {
    const first = r.stderr.split('\n').find((l) => /error/.test(l)) ?? r.stderr.trim().split('\n')[0] ?? '';
    throw new KlpgenError(`preprocessing ${command.file} failed: ${first.trim()}`);
  }
  return { command, path, text: await readFile(path, 'utf8'), seconds };
}
