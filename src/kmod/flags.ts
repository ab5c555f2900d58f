import { dirname, isAbsolute, join, normalize } from 'node:path';
import type { CompileCommand } from '../target/compile-command.js';

/**
 * The flags a TU's Makefile gives it beyond every kernel object's (ccflags-y,
 * CFLAGS_x.o, subdir-ccflags: its own -I directories, -D settings, -f and -W
 * options) and those it removes (CFLAGS_REMOVE_x.o). The livepatch compiles
 * the TU's new functions with the same additions and removals, so that they
 * build (amdgpu's include directories) and match the patched build.
 */
export interface TuFlags {
  extra: string[];
  removed: string[];
}

/** An ordinary built-in TU: its flags are the kernel's common ones. */
export const REFERENCE_TU = 'fs/proc/version.c';

/** Flags Kbuild sets per object or per build, which the module build sets itself. */
const OWN_TO_EACH_BUILD = /^(-Wp,-M|-DKBUILD_|-D__KBUILD_MODNAME=|-DMODULE$|-fmacro-prefix-map=|-c$)/;

/** The command's flags as units (`-I dir` and `-include file` joined, relative paths made absolute). */
export function flagUnits(cmd: CompileCommand): string[] {
  const out: string[] = [];
  const abs = (p: string) => normalize(isAbsolute(p) ? p : join(cmd.cwd, p));
  const args = cmd.argv;
  for (let i = 1; i < args.length; i++) {
    const a = args[i] as string;
    if (a === cmd.source || OWN_TO_EACH_BUILD.test(a)) continue;
    if (a === '-o') {
      i++;
      continue;
    }
    if (a === '-I' || a === '-include' || a === '-iquote' || a === '-isystem') {
      out.push(`${a === '-I' ? '-I' : `${a} `}${abs(args[++i] ?? '')}`);
      continue;
    }
    if (a.startsWith('-I')) {
      out.push(`-I${abs(a.slice(2))}`);
      continue;
    }
    out.push(a);
  }
  return out;
}

export function tuFlags(tu: CompileCommand, reference: CompileCommand): TuFlags {
  const mine = flagUnits(tu);
  // Every TU gets its own directory (source and object tree): the reference's are not common.
  const ownDirs = new Set([`-I${dirname(reference.source)}`, `-I${dirname(join(reference.cwd, reference.file))}`]);
  const theirs = flagUnits(reference).filter((f) => !ownDirs.has(f));
  const have = new Set(theirs);
  const need = new Set(mine);
  const extra = [...new Set(mine.filter((f) => !have.has(f)))];
  // Only single words can be filtered out of Kbuild's flags; the reference's own -I/-D are not the kernel's.
  const removed = [...new Set(theirs.filter((f) => !need.has(f) && /^-([fWmgO]|pg$)/.test(f)))];
  return { extra, removed };
}

/** A flag unit as words of a Kbuild Makefile line (shell-quoted, `$` escaped for make). */
export function makeWords(unit: string): string[] {
  const pair = /^(-include|-iquote|-isystem) (.*)$/.exec(unit);
  const words = pair ? [pair[1] as string, pair[2] as string] : [unit];
  return words.map((w) =>
    (/^[A-Za-z0-9_\-+=.,/:@%]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`).replace(/\$/g, '$$$$'),
  );
}
