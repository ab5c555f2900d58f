/**
 * The two builds of one TU: Kbuild's exact command as-is, and with
 * -flive-patching=inline-clone added; both with -fdump-ipa-clones (a dump
 * only, the code is the same) and -ffunction-sections unless Kbuild already
 * passes it (one section per function, so calls between functions of the
 * TU keep their relocations and each function can be compared on its own;
 * the code of a function does not change). Then the target's objtool runs
 * on each copy, as Kbuild runs it after compiling, and its warnings are
 * kept.
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { ipaClonesDumpPath } from '../analyze/ipa-clones.js';
import { compileArgv, type CompileCommand } from '../target/compile-command.js';
import { run } from '../util/exec.js';

export type Variant = 'asIs' | 'livepatch';
export const VARIANTS: readonly Variant[] = ['asIs', 'livepatch'];
export const LIVEPATCH_FLAG = '-flive-patching=inline-clone';

/** Flags added to Kbuild's for a variant, in order. */
export function addedFlags(cmd: CompileCommand, variant: Variant): string[] {
  const flags = ['-fdump-ipa-clones'];
  if (!cmd.argv.includes('-ffunction-sections')) flags.push('-ffunction-sections');
  if (variant === 'livepatch') flags.push(LIVEPATCH_FLAG);
  return flags;
}

export interface VariantFiles {
  object: string;
  dump: string;
}

export function variantFiles(cmd: CompileCommand, variant: Variant, objDir: string): VariantFiles {
  const object = join(objDir, cmd.file.replace(/\.c$/, variant === 'asIs' ? '.asis.o' : '.lp.o'));
  return { object, dump: ipaClonesDumpPath(object, cmd.source) };
}

export type CompileResult = { ok: true; files: VariantFiles } | { ok: false; error: string };

export async function compileVariant(cmd: CompileCommand, variant: Variant, objDir: string): Promise<CompileResult> {
  const files = variantFiles(cmd, variant, objDir);
  await mkdir(dirname(files.object), { recursive: true });
  const argv = compileArgv(cmd, { output: files.object, extraFlags: addedFlags(cmd, variant) });
  const r = await run(argv[0] as string, argv.slice(1), { cwd: cmd.cwd, env: { ...process.env, LC_ALL: 'C' } });
  if (r.code !== 0) {
    const firstError =
      r.stderr.split('\n').find((l) => /\berror\b/.test(l)) ?? r.stderr.trim().split('\n').pop() ?? `exit ${r.code}`;
    return { ok: false, error: firstError.replace(`${cmd.source}:`, `${cmd.file}:`).trim() };
  }
  return { ok: true, files };
}

/**
 * Kbuild's post-compile commands (objtool) on our copy: it rewrites the
 * object in place, which is what the kernel links. Returns its warnings
 * with our path replaced by Kbuild's object name.
 */
export async function runPostCommands(cmd: CompileCommand, objectPath: string): Promise<string[]> {
  const kbuildObject = relative(cmd.cwd, cmd.object);
  const warnings: string[] = [];
  for (const post of cmd.post) {
    const argv = post.map((a) => (a === kbuildObject || a === cmd.object ? objectPath : a));
    if (!argv.includes(objectPath)) continue; // not about the object (none in 6.1, but do not run blind)
    const r = await run(argv[0] as string, argv.slice(1), { cwd: cmd.cwd, env: { ...process.env, LC_ALL: 'C' } });
    for (const line of `${r.stdout}\n${r.stderr}`.split('\n')) {
      const t = line.trim();
      if (t) warnings.push(t.split(objectPath).join(kbuildObject));
    }
    if (r.code !== 0) warnings.push(`${kbuildObject}: ${post[0]} exited with ${r.code}`);
  }
  return warnings;
}

export async function removeVariantFiles(files: VariantFiles): Promise<void> {
  await rm(files.object, { force: true });
  await rm(files.dump, { force: true });
}

/**
 * At most N child processes at a time. Urgent work (finishing a TU whose
 * compiles are done) goes before new compiles, so objects do not pile up
 * on disk and results stream out steadily.
 */
export class Slots {
  private free: number;
  private readonly urgent: (() => void)[] = [];
  private readonly normal: (() => void)[] = [];

  constructor(n: number) {
    this.free = n;
  }

  async run<T>(fn: () => Promise<T>, urgent = false): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => (urgent ? this.urgent : this.normal).push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.urgent.shift() ?? this.normal.shift();
      if (next) next();
      else this.free++;
    }
  }
}
