/**
 * Which translation units a set of PATHs means, and Kbuild's exact command
 * for each, without compiling anything.
 *
 * Getting commands from `.cmd` files (compileCommands) needs each object
 * built once by make: for kernel/ that is a whole extra compile of every
 * TU. Instead Kbuild is asked for a dry run (`make -n`) in a scratch
 * object tree that has the target's configuration and generated headers
 * (symlinked) but no objects, so Kbuild prints the command of every object
 * it would build for the goal, and only those: a directory's objects are
 * exactly what the configuration selects. The command of an object is read
 * from the `fixdep ... 'CMD' > .x.o.cmd` step of the printed recipe, which
 * is the text Kbuild saves in the `.cmd` file, so parseCmdFile reads it
 * unchanged (checked against real `.cmd` files in the tests).
 *
 * make runs with the scratch tree as its working directory and no O=, as
 * Kbuild's own O= sub-make does, so `-o tools/objtool` reaches the make that
 * would otherwise rebuild objtool there (the tools sub-make resets
 * MAKEFLAGS and would really build, not dry-run).
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { isAbsolute, join, normalize, relative } from 'node:path';
import { parseCmdFile, type CompileCommand } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import { makeEnv } from '../target/setup.js';
import { ARCH, CC, kernelRelease } from '../target/paths.js';
import { KlpgenError } from '../util/errors.js';
import { lastLines } from '../util/exec.js';
import { splitShellCommands } from '../util/shell.js';

export interface RequestedPath {
  /** Relative to the source tree; directories end with `/`; the whole tree is `.`. */
  rel: string;
  kind: 'file' | 'dir';
}

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface TuPlan {
  tus: CompileCommand[];
  skipped: SkippedFile[];
}

/** Top-level directories that hold no kernel code Kbuild compiles (tools/ has its own build system). */
const NOT_KBUILD = ['tools/', 'Documentation/', 'LICENSES/'];

export function normalisePaths(target: TargetManifest, paths: string[]): RequestedPath[] {
  const src = target.paths.source;
  const out = new Map<string, RequestedPath>();
  for (const p of paths) {
    let rel = isAbsolute(p) ? relative(src, p) : normalize(p);
    if (rel === '' || rel === './' || rel === '.') rel = '.';
    rel = rel.replace(/^\.\//, '');
    if (rel.startsWith('..') || isAbsolute(rel))
      throw new KlpgenError(`${p}: not inside the target's source tree (${src})`);
    const abs = join(src, rel);
    if (!existsSync(abs)) throw new KlpgenError(`${p}: no such file or directory in the target's source tree`);
    if (statSync(abs).isDirectory()) {
      const dir = rel === '.' ? '.' : `${rel.replace(/\/+$/, '')}/`;
      if (NOT_KBUILD.some((d) => dir.startsWith(d))) throw new KlpgenError(`${p}: not kernel code built by Kbuild`);
      out.set(dir, { rel: dir, kind: 'dir' });
    } else {
      if (!rel.endsWith('.c')) throw new KlpgenError(`${p}: not a .c file or a directory`);
      if (NOT_KBUILD.some((d) => rel.startsWith(d))) throw new KlpgenError(`${p}: not kernel code built by Kbuild`);
      out.set(rel, { rel, kind: 'file' });
    }
  }
  return [...out.values()].sort((a, b) => a.rel.localeCompare(b.rel));
}

function covers(req: RequestedPath, file: string): boolean {
  if (req.kind === 'file') return file === req.rel;
  return req.rel === '.' || file.startsWith(req.rel);
}

/** Every .c file under the requested paths, relative to the source tree, sorted. */
async function sourceFiles(src: string, reqs: RequestedPath[]): Promise<string[]> {
  const files = new Set<string>();
  for (const r of reqs) {
    if (r.kind === 'file') {
      files.add(r.rel);
      continue;
    }
    const base = r.rel === '.' ? src : join(src, r.rel);
    const entries = await readdir(base, { recursive: true, withFileTypes: true });
    for (const e of entries) {
      if (!e.isFile() || !e.name.endsWith('.c')) continue;
      const rel = relative(src, join(e.parentPath, e.name));
      if (NOT_KBUILD.some((d) => rel.startsWith(d))) continue;
      files.add(rel);
    }
  }
  return [...files].sort();
}

/** A scratch object tree: configuration and generated headers of the target, no objects. */
async function dryRunTree(target: TargetManifest, dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'arch', ARCH), { recursive: true });
  const build = target.paths.build;
  // Symlinks keep mtimes, so Kbuild sees the configuration as up to date and never re-runs syncconfig.
  await symlink(join(build, '.config'), join(dir, '.config'));
  await symlink(join(build, 'include'), join(dir, 'include'));
  await symlink(join(build, 'arch', ARCH, 'include'), join(dir, 'arch', ARCH, 'include'));
}

const FIXDEP = /scripts\/basic\/fixdep (\S+) (\S+) '((?:[^']|'\\'')*)' > (\S+)/;

/**
 * Kbuild's dry run for the goals, streamed (the whole tree prints hundreds
 * of MB): object path → the `.cmd` text Kbuild would save for it.
 */
async function dryRun(
  target: TargetManifest,
  tree: string,
  goals: string[],
): Promise<{ commands: Map<string, string>; stderr: string; code: number }> {
  const args = [
    '-n',
    '-k',
    '-C',
    tree,
    '-f',
    join(target.paths.source, 'Makefile'),
    `ARCH=${ARCH}`,
    `CC=${CC}`,
    `KERNELRELEASE=${kernelRelease(target.abi)}`,
    '-o',
    'tools/objtool',
    '-o',
    'tools/bpf/resolve_btfids',
    ...goals,
  ];
  const child = spawn('make', args, { env: makeEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const commands = new Map<string, string>();
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString('utf8')).slice(-20000);
  });
  const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
  const done = new Promise<number>((resolve, reject) => {
    child.on('error', (e) => reject(e));
    child.on('close', (code) => resolve(code ?? -1));
  });
  for await (const line of lines) {
    if (!line.includes('scripts/basic/fixdep ')) continue;
    const m = FIXDEP.exec(line);
    if (!m) continue;
    const obj = m[2] as string;
    if (!obj.endsWith('.o')) continue;
    commands.set(obj, `cmd_${obj} := ${(m[3] as string).replaceAll("'\\''", "'")}\n\n`);
  }
  return { commands, stderr, code: await done };
}

/**
 * The TUs the paths mean for this target's configuration, with Kbuild's
 * command for each; every other .c file under the paths is listed as
 * skipped, with why.
 */
export async function planTus(target: TargetManifest, reqs: RequestedPath[], scratch: string): Promise<TuPlan> {
  await dryRunTree(target, scratch);
  const goals = reqs.some((r) => r.rel === '.')
    ? []
    : reqs.map((r) => (r.kind === 'dir' ? r.rel : r.rel.replace(/\.c$/, '.o')));
  const { commands, stderr, code } = await dryRun(target, scratch, goals);
  if (commands.size === 0 && code !== 0 && !/No rule to make target/.test(stderr)) {
    throw new KlpgenError(
      `Kbuild dry run (make -n ${goals.join(' ')}) failed (exit ${code}):\n${lastLines(stderr.trim(), 15)}`,
    );
  }
  const src = target.paths.source;
  const tus: CompileCommand[] = [];
  const skipped: SkippedFile[] = [];
  for (const file of await sourceFiles(src, reqs)) {
    const obj = file.replace(/\.c$/, '.o');
    const text = commands.get(obj);
    if (text === undefined) {
      const explicit = reqs.some((r) => r.kind === 'file' && r.rel === file);
      skipped.push({
        file,
        reason:
          explicit && new RegExp(`No rule to make target '${escapeRe(obj)}'`).test(stderr)
            ? 'Kbuild has no rule to build it in this configuration'
            : 'not compiled on its own in this configuration (not selected, or #included by another .c file)',
      });
      continue;
    }
    let cmd: CompileCommand;
    try {
      cmd = parseCmdFile(text, file, target.paths.build);
    } catch (e) {
      if (!(e instanceof KlpgenError)) throw e;
      skipped.push({ file, reason: e.message.replace(`${file}: `, '') });
      continue;
    }
    if (!cmd.argv.includes('-D__KERNEL__')) {
      skipped.push({ file, reason: 'host program, not kernel code' });
      continue;
    }
    if (cmd.source !== join(src, file)) {
      skipped.push({ file, reason: 'compiled from a generated copy, not the source tree' });
      continue;
    }
    if (!reqs.some((r) => covers(r, file))) continue;
    tus.push(cmd);
  }
  // Objects of the requested directories built from a .c elsewhere (kernel/bpf/relo_core.o is tools/lib/bpf/relo_core.c).
  const found = new Set(tus.map((t) => t.file));
  for (const [obj, text] of commands) {
    const rel = obj.replace(/\.o$/, '.c');
    if (found.has(rel) || existsSync(join(src, rel)) || !reqs.some((r) => r.kind === 'dir' && covers(r, obj))) continue;
    const cmd = commandBuiltElsewhere(text, obj, target);
    if (cmd && cmd.argv.includes('-D__KERNEL__') && !found.has(cmd.file)) {
      tus.push(cmd);
      found.add(cmd.file);
    }
  }
  tus.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return { tus, skipped };
}

/** The command of an object whose source is a .c of the source tree at another path; undefined otherwise. */
function commandBuiltElsewhere(text: string, obj: string, target: TargetManifest): CompileCommand | undefined {
  const src = `${target.paths.source}/`;
  const line = /^cmd_\S+ := (.*)$/m.exec(text)?.[1] ?? '';
  const [argv, ...post] = splitShellCommands(line);
  const source = argv?.find((a) => a.startsWith(src) && a.endsWith('.c'));
  if (!argv || !source || !argv.includes('-c')) return undefined;
  return {
    file: source.slice(src.length),
    cwd: target.paths.build,
    argv,
    post,
    source,
    object: join(target.paths.build, obj),
    deps: [],
  };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
