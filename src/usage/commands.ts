import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { basename, dirname, join } from 'node:path';
import { parseCmdFile, type CompileCommand } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import { kbuildArgs, makeEnv } from '../target/setup.js';
import { targetLayout } from '../target/paths.js';
import { KlpgenError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { sha256, writeFileAtomic } from '../util/fsutil.js';
import { timed } from '../util/progress.js';

/**
 * Every C translation unit the target's configuration builds, with the exact
 * command Kbuild would run for it, without compiling anything: `make -n`
 * prints each object's recipe, and its fixdep call carries the command
 * string that Kbuild would save in the object's .cmd file. About 50 s for
 * the whole Debian configuration (13,600 objects); cached per target, keyed
 * by the .config's hash.
 */
export interface BuiltCommands {
  schema: 2;
  abi: string;
  configSha256: string;
  /** Command strings as a .cmd file holds them (cmd_<obj> := ...), by source path. */
  commands: Record<string, string>;
}

// 2: objects already up to date in the build dir are listed too (from their .cmd files).
const SCHEMA = 2;

export function commandsPath(abi: string): string {
  return join(targetLayout(abi).root, 'usage', 'commands.json.gz');
}

/** The command compiles `obj` from its own .c (not an assembler file, a host program, a generated .c elsewhere). */
function compilesOwnC(obj: string, cmd: string): boolean {
  const src = obj.replace(/\.o$/, '.c');
  return new RegExp(
    `\\s-c\\s+-o\\s+${obj.replace(/[.+]/g, '\\$&')}\\s+\\S*${src.replace(/[.+]/g, '\\$&')}(\\s|;|$)`,
  ).test(cmd);
}

/**
 * fixdep DEPFILE TARGET 'COMMAND': the quoted command, unescaped from '\''. An object
 * that is already up to date in the build dir (a TU compiled there before) gets no
 * command, only its rule's `trap 'rm -f X.o...` line: its command is the one its
 * .cmd file saved, when `cmdFile` can read it.
 */
export function fixdepCommands(makeOutput: string, cmdFile?: (obj: string) => string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const re = /scripts\/basic\/fixdep (\S+) (\S+\.o) '((?:[^']|'\\'')*)'/g;
  for (const m of makeOutput.matchAll(re)) {
    const obj = m[2] as string;
    const cmd = (m[3] as string).replaceAll("'\\''", "'");
    if (compilesOwnC(obj, cmd)) out.set(obj.replace(/\.o$/, '.c').replace(/^\.\//, ''), cmd);
  }
  if (!cmdFile) return out;
  for (const m of makeOutput.matchAll(/trap 'rm -f (\S+\.o); trap - HUP;/g)) {
    const obj = (m[1] as string).replace(/^\.\//, '');
    const src = obj.replace(/\.o$/, '.c');
    if (out.has(src)) continue;
    const saved = cmdFile(obj);
    if (saved !== undefined && compilesOwnC(obj, saved)) out.set(src, saved);
  }
  return out;
}

/** The command line a .cmd file saved for `obj` (`cmd_OBJ := ...`), if there is one. */
export function savedCommand(build: string, obj: string): string | undefined {
  const path = join(build, dirname(obj), `.${basename(obj)}.cmd`);
  if (!existsSync(path)) return undefined;
  const first = readFileSync(path, 'utf8').split('\n', 1)[0] ?? '';
  const prefix = `cmd_${obj} := `;
  return first.startsWith(prefix) ? first.slice(prefix.length) : undefined;
}

async function readCached(path: string, target: TargetManifest): Promise<BuiltCommands | null> {
  if (!existsSync(path)) return null;
  try {
    const data = JSON.parse(gunzipSync(await readFile(path)).toString('utf8')) as BuiltCommands;
    if (data.schema !== SCHEMA || data.abi !== target.abi || data.configSha256 !== target.configSha256) return null;
    if (typeof data.commands !== 'object' || data.commands === null) return null;
    return data;
  } catch {
    return null; // corrupt: made again
  }
}

/** The built TUs and their command strings (made once per target). */
export async function builtCommands(target: TargetManifest): Promise<BuiltCommands> {
  const path = commandsPath(target.abi);
  const cached = await readCached(path, target);
  if (cached) return cached;
  const layout = targetLayout(target.abi);
  const r = await timed('list every built translation unit (make -n)', () =>
    run('make', [...kbuildArgs(layout, target.abi), '-n', '-k', 'vmlinux', 'modules'], {
      env: makeEnv(),
      heartbeat: 'make -n',
    }),
  );
  const commands = fixdepCommands(r.stdout, (obj) => savedCommand(layout.build, obj));
  if (commands.size === 0)
    throw new KlpgenError(
      `make -n listed no compile commands for ${target.abi}: ${r.stderr.trim().split('\n').at(-1)}`,
    );
  const data: BuiltCommands = {
    schema: SCHEMA,
    abi: target.abi,
    configSha256: target.configSha256,
    commands: Object.fromEntries([...commands].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
  await writeFileAtomic(path, gzipSync(JSON.stringify(data)));
  return data;
}

/** One built TU's command, as compileCommand() would read it from a .cmd file. */
export function commandOf(target: TargetManifest, built: BuiltCommands, file: string): CompileCommand | null {
  const line = built.commands[file];
  if (line === undefined) return null;
  const obj = file.replace(/\.c$/, '.o');
  return { ...parseCmdFile(`cmd_${obj} := ${line}\n`, file, target.paths.build), deps: [] };
}

export function commandsHash(built: BuiltCommands): string {
  return sha256(JSON.stringify(built.commands)).slice(0, 16);
}
