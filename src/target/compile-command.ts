import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, isAbsolute, join, normalize, relative } from 'node:path';
import { KlpgenError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { splitShellCommands } from '../util/shell.js';
import type { TargetManifest } from './manifest.js';
import { kbuildArgs, makeEnv } from './setup.js';
import { targetLayout } from './paths.js';

/**
 * The exact command Kbuild uses to compile one .c file of the target, taken
 * from the .cmd file it writes after building that object in our O= tree.
 * Later stages re-run it on copies (original or patched) with extra flags.
 */
export interface CompileCommand {
  /** Source path relative to the kernel tree, e.g. kernel/sched/core.c. */
  file: string;
  /** Kbuild runs compilers from the object tree; relative -I paths depend on it. */
  cwd: string;
  /** The compiler invocation exactly as Kbuild ran it. */
  argv: string[];
  /** What Kbuild ran after the compiler on the object (objtool, ...), as argv lists. */
  post: string[][];
  /** The source argument as Kbuild passed it (absolute with O= builds). */
  source: string;
  /** Object Kbuild built, inside the object tree. */
  object: string;
  /** Headers and other files the object depends on (Kbuild's deps_ list), as Kbuild wrote them. */
  deps: string[];
}

/** KBUILD_MODNAME of the TU, and whether it is built into a module (-DMODULE). */
export function objectOf(cmd: CompileCommand): { modName: string; isModule: boolean } {
  const def = cmd.argv.find((a) => a.startsWith('-DKBUILD_MODNAME='));
  const modName =
    /^-DKBUILD_MODNAME="?([^"]+)"?$/.exec(def ?? '')?.[1] ?? cmd.file.replace(/^.*\//, '').replace(/\.c$/, '');
  return { modName, isModule: cmd.argv.includes('-DMODULE') };
}

export function normaliseSourcePath(target: TargetManifest, file: string): string {
  const src = target.paths.source;
  let rel = isAbsolute(file) ? relative(src, file) : normalize(file);
  if (rel.startsWith('..') || isAbsolute(rel)) {
    throw new KlpgenError(`${file}: not inside the target's source tree (${src})`);
  }
  rel = rel.replace(/^\.\//, '');
  if (!rel.endsWith('.c')) throw new KlpgenError(`${file}: not a .c file`);
  if (!existsSync(join(src, rel))) throw new KlpgenError(`${file}: no such file in the target's source tree`);
  return rel;
}

function cmdFileOf(target: TargetManifest, rel: string): string {
  return join(target.paths.build, rel.replace(/\.c$/, '.o').replace(/([^/]+)$/, '.$1.cmd'));
}

/**
 * Compile commands of many TUs: the objects Kbuild has not built yet are
 * built in one parallel make run, then each .cmd file is read.
 */
export async function compileCommands(
  target: TargetManifest,
  files: string[],
): Promise<Map<string, CompileCommand | KlpgenError>> {
  const out = new Map<string, CompileCommand | KlpgenError>();
  const rels: string[] = [];
  for (const f of files) {
    try {
      rels.push(normaliseSourcePath(target, f));
    } catch (e) {
      if (e instanceof KlpgenError) out.set(f, e);
      else throw e;
    }
  }
  const missing = rels.filter((r) => !existsSync(cmdFileOf(target, r)) && !configuredOff(target, r));
  if (missing.length > 1) {
    const layout = targetLayout(target.abi);
    await run(
      'make',
      [...kbuildArgs(layout, target.abi), '-k', `-j${cpus().length}`, ...missing.map((r) => r.replace(/\.c$/, '.o'))],
      {
        env: makeEnv(),
        heartbeat: `compiling ${missing.length} objects`,
      },
    );
  }
  for (const r of rels) {
    try {
      out.set(r, await compileCommand(target, r));
    } catch (e) {
      if (e instanceof KlpgenError) out.set(r, e);
      else throw e;
    }
  }
  return out;
}

/**
 * Why the directory's Makefile leaves `rel`'s object out of this configuration, if it does:
 * every line that names the object adds it under a CONFIG_ option the .config does not set
 * (`nvmet-$(CONFIG_NVME_TARGET_AUTH) += fabrics-cmd-auth.o`). Kbuild would still compile
 * such a file when asked for it alone, and fail or, worse, succeed.
 */
export function configuredOff(target: TargetManifest, rel: string): string | null {
  const dir = rel.slice(0, rel.lastIndexOf('/'));
  const obj = rel.slice(rel.lastIndexOf('/') + 1).replace(/\.c$/, '.o');
  const makefile = ['Kbuild', 'Makefile'].map((n) => join(target.paths.source, dir, n)).find((f) => existsSync(f));
  const config = join(target.paths.build, '.config');
  if (!makefile || !existsSync(config)) return null;
  const lines = readFileSync(makefile, 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l));
  const naming = lines.filter((l) => new RegExp(`(^|[\\s=])${obj.replace(/[.+]/g, '\\$&')}(\\s|$)`).test(l));
  if (naming.length === 0) return null;
  const set = new Set([...readFileSync(config, 'utf8').matchAll(/^(CONFIG_\w+)=[ym]$/gm)].map((m) => m[1] as string));
  const guards: string[] = [];
  for (const l of naming) {
    const lhs = l.split(/[:+]?=/)[0] ?? '';
    const g = /\$\((CONFIG_\w+)\)/.exec(lhs)?.[1];
    if (!g || set.has(g)) return null;
    guards.push(g);
  }
  const names = [...new Set(guards)];
  return `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} not set`;
}

export async function compileCommand(target: TargetManifest, file: string): Promise<CompileCommand> {
  const rel = normaliseSourcePath(target, file);
  const obj = rel.replace(/\.c$/, '.o');
  const cmdFile = cmdFileOf(target, rel);
  if (!existsSync(cmdFile)) {
    const off = configuredOff(target, rel);
    if (off) throw new KlpgenError(`${rel}: it is not built in this configuration (${off})`);
    // Building the single object makes Kbuild write its .cmd, in our object tree only.
    const layout = targetLayout(target.abi);
    const r = await run('make', [...kbuildArgs(layout, target.abi), obj], { env: makeEnv() });
    if (r.code !== 0 || !existsSync(cmdFile)) {
      const why = /No rule to make target/.test(r.stderr)
        ? 'it is not built in this configuration'
        : r.stderr.trim().split('\n').slice(-5).join('\n');
      throw new KlpgenError(`${rel}: Kbuild could not compile it: ${why}`);
    }
  }
  return parseCmdFile(await readFile(cmdFile, 'utf8'), rel, target.paths.build);
}

export function parseCmdFile(text: string, rel: string, build: string): CompileCommand {
  const obj = rel.replace(/\.c$/, '.o');
  const m = new RegExp(`^(?:saved)?cmd_${escapeRe(obj)} := (.*)$`, 'm').exec(text);
  if (!m?.[1]) throw new KlpgenError(`${rel}: no compile command in Kbuild's .cmd file`);
  const commands = splitShellCommands(m[1]);
  const [argv, ...post] = commands;
  if (!argv) throw new KlpgenError(`${rel}: empty compile command in Kbuild's .cmd file`);
  const depsBlock = new RegExp(`^deps_${escapeRe(obj)} := \\\\\\n([\\s\\S]*?)\\n\\n`, 'm').exec(text)?.[1] ?? '';
  const deps = depsBlock
    .split('\n')
    .map((l) => l.replace(/\\$/, '').trim())
    .filter((l) => l && !l.startsWith('$(wildcard'));
  const source = argv.find((a) => (!a.startsWith('-') && a.endsWith(`/${rel}`)) || a === rel);
  if (!source) throw new KlpgenError(`${rel}: compile command in Kbuild's .cmd file does not name the source`);
  return { file: rel, cwd: build, argv, post, source, object: join(build, obj), deps };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface CompileVariant {
  /** The .c file to compile instead of the tree's (a copy in a work dir). */
  source?: string;
  /**
   * Root of the tree the copy lives in, mirroring the kernel's layout: it is
   * mapped away in __FILE__ as Kbuild maps the source tree, so strings match.
   */
  sourceRoot?: string;
  /** Where the output goes (must be outside the target's trees). */
  output: string;
  /** Flags added after Kbuild's, e.g. -fdump-ipa-clones. */
  extraFlags?: string[];
  /** -E instead of -c: preprocess only, keeping line markers. */
  preprocess?: boolean;
}

/**
 * Kbuild's argv re-targeted: our source and output, no dependency file
 * written into the object tree, extra flags last so they win.
 */
export function compileArgv(cmd: CompileCommand, v: CompileVariant): string[] {
  const out: string[] = [];
  const args = cmd.argv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a.startsWith('-Wp,-MMD,') || a.startsWith('-Wp,-MD,') || a === '-c' || a === cmd.source) continue;
    if (a === '-o') {
      i++;
      continue;
    }
    out.push(a);
  }
  if (v.source !== undefined) {
    // The copy's own directory is searched first for "..." includes (patched
    // headers beside it), then the original's, where the rest of them live.
    out.push('-iquote', dirname(cmd.source));
    if (v.sourceRoot !== undefined) out.push(`-fmacro-prefix-map=${v.sourceRoot.replace(/\/$/, '')}/=`);
  }
  out.push(...(v.extraFlags ?? []));
  out.push(v.preprocess ? '-E' : '-c', '-o', v.output, v.source ?? cmd.source);
  return out;
}
