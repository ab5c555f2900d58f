import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../util/exec.js';
import { blankComments, directivesOf, type Directive } from './header-change.js';
import { SEARCH_DIRS, type IncludeGraph } from './include-graph.js';
import { emittedByItself, scanUnits, type Unit } from './units.js';

/**
 * The cheap first cut of "who can use what a header change touches", for
 * when no complete usage index exists: read as text, not preprocessed.
 * A TU's code can only use a touched name if its own .c text names it, or
 * names something in a header that (transitively) names it: a macro whose
 * body mentions it, an inline function that calls it. So the touched names
 * are closed over the headers of the tree first (grep finds the files, the
 * unit scanner the enclosing definitions), and a TU is a candidate when one
 * of its .c files mentions a name of that closure. Definitions in headers
 * that GCC emits on their own (non-static functions, initialized data) make
 * every includer of their header a candidate.
 *
 * Token pasting can build a name no file spells (`seq_ ## setwidth`): a
 * macro that pastes onto a fragment of a touched name adds the macro to the
 * closure. The candidates are then preprocessed (usage records), which
 * gives the exact answer.
 */
export interface MentionClosure {
  names: Set<string>;
  /** Headers with a definition GCC emits by itself that mentions a closure name. */
  rootHeaders: Set<string>;
  rounds: number;
}

/** Files under `root` (restricted to `include`) that mention any of `names` as a word. */
async function grepWords(root: string, names: string[], include: string[]): Promise<string[]> {
  if (!names.length) return [];
  const dir = await mkdtemp(join(tmpdir(), 'klpgen-grep-'));
  try {
    const patterns = join(dir, 'names');
    await writeFile(patterns, `${names.join('\n')}\n`);
    const dirs = SEARCH_DIRS.filter((d) => existsSync(join(root, d)));
    const r = await run('grep', ['-rlwF', '-f', patterns, ...include.map((i) => `--include=${i}`), ...dirs], {
      cwd: root,
    });
    return r.stdout.split('\n').filter(Boolean).sort();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Past these, the closure is no narrower than "every includer": null. */
const MAX_ROUNDS = 12;
const MAX_NAMES = 4000;

export async function mentionClosure(source: string, touched: string[]): Promise<MentionClosure | null> {
  const names = new Set(touched);
  const rootHeaders = new Set<string>();
  let frontier = [...touched];
  let rounds = 0;
  const seenUnits = new Set<string>();
  const scanned = new Map<string, { defines: Directive[]; units: Unit[] } | null>();
  const scan = (f: string) => {
    let s = scanned.get(f);
    if (s === undefined) {
      try {
        const text = readFileSync(join(source, f), 'latin1');
        s = {
          defines: directivesOf(blankComments(text).split('\n')).filter((d) => d.kind === 'define' && d.idents[0]),
          units: scanUnits(text, { preprocessed: false, file: f }).units,
        };
      } catch {
        s = null;
      }
      scanned.set(f, s);
    }
    return s;
  };
  while (frontier.length) {
    if (++rounds > MAX_ROUNDS || names.size > MAX_NAMES) return null;
    const fresh = new Set(frontier);
    const next: string[] = [];
    const add = (n: string) => {
      if (!names.has(n)) {
        names.add(n);
        next.push(n);
      }
    };
    for (const f of await grepWords(source, frontier, ['*.h'])) {
      const s = scan(f);
      if (!s) continue;
      // Macros whose body names a touched name (or pastes onto a piece of one).
      for (const d of s.defines) {
        const body = d.body;
        const words = body.match(/[A-Za-z_]\w*/g) ?? [];
        const pasted = [...body.matchAll(/(\w+)\s*##|##\s*(\w+)/g)].map((m) => (m[1] ?? m[2]) as string);
        if (
          words.some((w) => fresh.has(w)) ||
          pasted.some((p) => p.length >= 3 && [...fresh].some((n) => n !== p && (n.startsWith(p) || n.endsWith(p))))
        )
          add(d.idents[0] as string);
      }
      for (const u of s.units) {
        if (!u.idents.some((x) => fresh.has(x))) continue;
        const key = `${f}:${u.line}`;
        if (seenUnits.has(key)) continue; // its names are in already
        seenUnits.add(key);
        for (const n of u.names) add(n);
        if (emittedByItself(u)) rootHeaders.add(f);
      }
    }
    frontier = next;
  }
  return { names, rootHeaders, rounds };
}

/** The .c files a TU compiles: itself and the .c files it #includes, transitively. */
function cFilesOf(graph: IncludeGraph, tu: string): string[] {
  const out = [tu];
  const seen = new Set(out);
  for (let i = 0; i < out.length; i++) {
    for (const f of graph.includes[out[i] as string] ?? []) {
      if (f.endsWith('.c') && !seen.has(f)) {
        seen.add(f);
        out.push(f);
      }
    }
  }
  return out;
}

/** Of `includers` (built TUs that include the header), those whose code may name something in the closure. */
export async function mentioningTus(
  source: string,
  graph: IncludeGraph,
  includers: string[],
  closure: MentionClosure,
  includersOf: (header: string) => string[],
): Promise<string[]> {
  const mentioning = new Set(await grepWords(source, [...closure.names], ['*.c']));
  const out = new Set<string>();
  for (const tu of includers) if (cFilesOf(graph, tu).some((f) => mentioning.has(f))) out.add(tu);
  const all = new Set(includers);
  for (const h of closure.rootHeaders) for (const tu of includersOf(h)) if (all.has(tu)) out.add(tu);
  return [...out].sort();
}
