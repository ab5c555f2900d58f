import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { writeFileAtomic } from '../util/fsutil.js';
import { timed } from '../util/progress.js';

/**
 * Who #includes whom in the kernel tree, read from the #include lines of
 * every .c and .h file once (a few seconds) and cached per target: the
 * candidates for "which TUs read this header" before anything is
 * preprocessed. `<x.h>` resolves against the include directories Kbuild
 * uses for x86, `"x.h"` against the includer's directory first; a name found
 * in neither is taken as every file whose path ends with it (a Makefile's own
 * -I). Conditional includes count: the usage records (line markers) then say
 * which TUs really read it.
 */
export const SEARCH_DIRS = [
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
  'samples',
  'usr',
];
const INCLUDE_DIRS = [
  'arch/x86/include',
  'arch/x86/include/generated',
  'include',
  'arch/x86/include/uapi',
  'include/uapi',
];

export interface IncludeGraph {
  schema: 1;
  /** File -> the files it includes (resolved as above). */
  includes: Record<string, string[]>;
}

function listSources(source: string): string[] {
  const out: string[] = [];
  for (const d of SEARCH_DIRS) {
    if (!existsSync(join(source, d))) continue;
    for (const e of readdirSync(join(source, d), { recursive: true, encoding: 'utf8' })) {
      if (e.endsWith('.c') || e.endsWith('.h')) out.push(join(d, e));
    }
  }
  return out.sort();
}

/** Kbuild's generated include dirs, named as if they were in the tree (`asm/x.h` wrappers of asm-generic). */
const GENERATED = ['arch/x86/include/generated', 'include/generated'];

export function buildIncludeGraph(source: string, build?: string): IncludeGraph {
  const generated: string[] = [];
  for (const d of GENERATED) {
    if (build === undefined || !existsSync(join(build, d))) continue;
    for (const e of readdirSync(join(build, d), { recursive: true, encoding: 'utf8' }))
      if (e.endsWith('.h')) generated.push(join(d, e));
  }
  const files = [...listSources(source), ...generated].sort();
  const root = (f: string) => (build !== undefined && GENERATED.some((d) => f.startsWith(`${d}/`)) ? build : source);
  const known = new Set(files);
  const byTail = new Map<string, string[]>();
  for (const f of files) {
    const base = f.slice(f.lastIndexOf('/') + 1);
    const list = byTail.get(base);
    if (list) list.push(f);
    else byTail.set(base, [f]);
  }
  const includes: Record<string, string[]> = {};
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(join(root(f), f), 'latin1');
    } catch {
      continue;
    }
    if (!text.includes('include')) continue;
    const out = new Set<string>();
    for (const m of text.matchAll(/^\s*#\s*include(?:_next)?\s*([<"])([^>"]+)[>"]/gm)) {
      const name = normalize(m[2] as string);
      if (m[1] === '"') {
        const local = normalize(join(dirname(f), name));
        if (known.has(local)) {
          out.add(local);
          continue;
        }
      }
      const found = INCLUDE_DIRS.map((d) => normalize(join(d, name))).find((p) => known.has(p));
      if (found) {
        out.add(found);
        continue;
      }
      // Found through a Makefile's -I: any file whose path ends with the name.
      const tail = name.replace(/^(\.\.\/)+/, '');
      const base = tail.slice(tail.lastIndexOf('/') + 1);
      for (const c of byTail.get(base) ?? []) if (`/${c}`.endsWith(`/${tail}`)) out.add(c);
    }
    if (out.size) includes[f] = [...out].sort();
  }
  return { schema: 1, includes };
}

export async function loadIncludeGraph(source: string, build: string, cacheFile: string): Promise<IncludeGraph> {
  if (existsSync(cacheFile)) {
    try {
      const g = JSON.parse(gunzipSync(await readFile(cacheFile)).toString('utf8')) as IncludeGraph;
      if (g.schema === 1 && typeof g.includes === 'object') return g;
    } catch {
      // corrupt: made again
    }
  }
  const g = await timed('read the #include lines of the tree', async () => buildIncludeGraph(source, build));
  await writeFileAtomic(cacheFile, gzipSync(JSON.stringify(g)));
  return g;
}

/** The .c files that include `header`, directly or through other files. */
export function includingUnits(g: IncludeGraph, header: string): string[] {
  const reverse = new Map<string, string[]>();
  for (const [f, incs] of Object.entries(g.includes)) {
    for (const i of incs) {
      const list = reverse.get(i);
      if (list) list.push(f);
      else reverse.set(i, [f]);
    }
  }
  const seen = new Set<string>([header]);
  const queue = [header];
  const units: string[] = [];
  while (queue.length) {
    const h = queue.pop() as string;
    for (const f of reverse.get(h) ?? []) {
      if (seen.has(f)) continue;
      seen.add(f);
      if (f.endsWith('.c')) units.push(f);
      queue.push(f); // a .c can itself be #included (kernel/sched/build_policy.c includes idle.c)
    }
  }
  return units.sort();
}
