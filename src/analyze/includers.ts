import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { run } from '../util/exec.js';

/**
 * The translation units that include a header, directly or through other
 * headers: found by reading #include lines (grep narrows the files to read),
 * resolving `<x.h>` against the include directories Kbuild uses for x86 and
 * `"x.h"` against the includer's directory; one found in neither is taken as
 * any header of that name and path (a Makefile's -I). Conditional includes count as
 * includes (an over-approximation: the TU is then analysed and found
 * unchanged). Stops when the header reaches too many files.
 */
const SEARCH_DIRS = [
  'include',
  'arch/x86',
  'kernel',
  'mm',
  'fs',
  'net',
  'drivers',
  'block',
  'lib',
  'security',
  'crypto',
  'ipc',
  'init',
  'virt',
  'sound',
  'io_uring',
  'certs',
];
const INCLUDE_DIRS = [
  'arch/x86/include',
  'arch/x86/include/generated',
  'include',
  'arch/x86/include/uapi',
  'include/uapi',
];

export interface IncludersResult {
  /** .c files (relative to the tree) that include the header. */
  units: string[];
  /** Set when the search stopped: the header is included too widely. */
  tooMany?: number;
}

export async function includersOf(source: string, header: string, limit: number): Promise<IncludersResult> {
  const units = new Set<string>();
  const seen = new Set<string>([header]);
  const queue = [header];
  let files = 0;
  while (queue.length) {
    const h = queue.shift() as string;
    const base = h.slice(h.lastIndexOf('/') + 1);
    const dirs = SEARCH_DIRS.filter((d) => existsSync(join(source, d)));
    const r = await run('grep', ['-rlF', '--include=*.c', '--include=*.h', base, ...dirs], { cwd: source });
    for (const f of r.stdout.split('\n').filter(Boolean)) {
      if (seen.has(f) || !includes(source, f, h)) continue;
      seen.add(f);
      if (f.endsWith('.c')) units.add(f);
      // A .c can itself be #included (kernel/sched/build_policy.c includes idle.c).
      queue.push(f);
      if (++files > limit * 8 || units.size > limit) return { units: [...units].sort(), tooMany: units.size };
    }
  }
  return { units: [...units].sort() };
}

/** Does `file` have an #include that resolves to `header`? */
function includes(source: string, file: string, header: string): boolean {
  const text = readFileSync(join(source, file), 'latin1');
  for (const m of text.matchAll(/^\s*#\s*include\s*([<"])([^>"]+)[>"]/gm)) {
    const name = m[2] as string;
    if (m[1] === '"') {
      const local = normalize(join(dirname(file), name));
      if (local === header) return true;
      if (existsSync(join(source, local))) continue;
    }
    let resolved = false;
    for (const d of INCLUDE_DIRS) {
      const p = normalize(join(d, name));
      if (p === header) return true;
      if (existsSync(join(source, p))) {
        resolved = true;
        break;
      }
    }
    // Not found where we look: a Makefile's own -I finds it (iwlwifi's mvm/ includes
    // "iwl-trans.h" from its parent). Any header of that name and path is then taken as it.
    if (!resolved && `/${header}`.endsWith(`/${normalize(name).replace(/^(\.\.\/)+/, '')}`)) return true;
  }
  return false;
}

/** For `-I` directories inside the tree that an overlay also has, the overlay's copy comes first. */
export function overlayIncludes(argv: string[], tree: string, overlay: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const dir = a === '-I' ? argv[i + 1] : a.startsWith('-I') ? a.slice(2) : undefined;
    if (dir !== undefined && dir.startsWith(`${tree}/`)) {
      const mirrored = join(overlay, relative(tree, dir));
      if (existsSync(mirrored)) out.push('-I', mirrored);
    }
    out.push(a);
  }
  return out;
}
