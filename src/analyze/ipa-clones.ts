/**
 * GCC's `-fdump-ipa-clones` dump: which functions were inlined where, which
 * were cloned (`.constprop.N`, `.isra.N`, `.part.N`, ...) and which lost
 * their out-of-line body. A live patch that changes a function must also
 * replace every function that carries a copy of its code; this module
 * answers "which ones, and why".
 *
 * Everything below was established with gcc-12 (Debian 12.2.0) on C
 * fixtures (see test/unit/ipa-clones.test.ts, which re-checks it at test
 * time) and against GCC's cgraphclones.cc / ipa-inline-transform.cc.
 *
 * WHERE THE DUMP LANDS (gcc-12, one input file):
 *   - `gcc -c -o DIR/x.o SRC/foo.c`  → `DIR/x.c.000i.ipa-clones`: the
 *     directory and stem of the `-o` file (its last extension dropped,
 *     whatever it is: `.o`, `.ko`, none) plus the input's suffix (`.c`, or
 *     `.i` for preprocessed input). `-S -o DIR/s.s` likewise gives
 *     `DIR/s.c.000i.ipa-clones`. See `ipaClonesDumpPath`.
 *   - no `-o`: `./foo.c.000i.ipa-clones` in the current directory.
 *   - `-dumpdir D/` puts it in `D/` instead (D must exist, else gcc fails:
 *     "could not open dump file"); `-dumpbase B` names it
 *     `<dir of -o>/B.000i.ipa-clones`.
 *   - `-fdump-ipa-clones=PATH` writes exactly PATH (relative to the cwd);
 *     the most robust choice for a tool.
 *   - `-E`: no dump at all (nothing is compiled).
 *   - `-fsyntax-only`: an EMPTY file `a-foo.c.000i.ipa-clones` in the cwd
 *     (or `DIR/x.o-foo.c.000i.ipa-clones` when `-o DIR/x.o` is given).
 *   - `-O0`: the file is created but empty (no IPA transformations).
 *
 * LINE FORMAT (printf formats in GCC, fields separated by `;`, nothing is
 * escaped):
 *   Callgraph clone;<name>;<order>;<file>;<line>;<col>;<name>;<order>;<file>;<line>;<col>;<reason>
 *   Callgraph removal;<name>;<order>;<file>;<line>;<col>
 * Names are assembler names; a name given with `__asm__("x")` is printed
 * as `*x` (GCC's "no user-label prefix" marker) — we strip the `*` so names
 * match ELF symbols. Clone names contain dots (`foo.constprop.0.isra.0`).
 * File names are printed verbatim, so a `;` in a path splits into extra
 * fields; the parser re-joins them (see `parseCloneFields`). `order` is the
 * callgraph node's creation number in the TU.
 *
 * REASONS seen: `inlining to`; `constprop` (IPA-CP; at -O2 only when ALL
 * callers pass the same constant, since -fipa-cp-clone is -O3-only — and
 * `noinline` does not prevent it); `isra` (IPA-SRA: a pointer parameter
 * replaced by the loaded field, unused parameters dropped); `part` (partial
 * inlining / function splitting: the cold tail becomes `foo.part.N` and the
 * header is inlined into callers); `(null)` (glibc's rendering of a NULL
 * suffix: the temporary "master clone" GCC makes for recursive inlining,
 * same name as the function). GCC also has `simdclone` etc.; any reason
 * other than `inlining to` is treated as a clone. Hot/cold splitting
 * (`foo.cold`) is NOT in the dump: it is part of `foo`'s body.
 *
 * HOW INLINING IS ENCODED. For `inlining to`, the second FnRef is NOT the
 * inline copy: it is the out-of-line function that the copy lives in at
 * that moment (GCC's `inlined_to`, the root of the inline tree, which can
 * itself be a clone like `foo.constprop.0`). The first FnRef is the callee
 * being inlined — either the function itself (its own `order`), or, when a
 * function that already contains inlined code is itself inlined and its
 * inline tree gets duplicated, an inline copy of a nested callee: same
 * name, a larger, fresh `order` (e.g. `c_fn;7` while `c_fn` is `c_fn;0`).
 * Nested inlining therefore shows up in one of two ways:
 *   - early inlining (bodies merged immediately), or IPA inlining where the
 *     containing function's node is reused rather than copied: `c→b` and
 *     `b→a` records only, NO `c→a` record;
 *   - IPA inlining that duplicates `b`'s inline tree: a direct `c→a`
 *     record whose origin is an inline copy of `c`.
 * So the function a piece of code finally lives in is found by following
 * `inlining to` records from target to target until a function is not
 * inlined further; for the closure we simply take every function on the
 * way (each holds a copy), transitively, together with clones (a clone
 * holds a copy of its origin's body, including what was inlined into the
 * origin before cloning). This is conservative: it may include a function
 * that got its copy of `b` before `c` was inlined into `b`; it never
 * misses one the dump knows about.
 *
 * REMOVALS: `Callgraph removal` is printed for nodes that took part in a
 * clone record and were later removed. That includes INLINE COPIES (the
 * `c_fn;7` above), whose removal says nothing about `c_fn`'s out-of-line
 * body. An inline copy always has a larger order than the out-of-line node
 * it was copied from, and the out-of-line node's order is always in the
 * dump before its copies', so: a name's out-of-line body was removed iff
 * a removal record carries the SMALLEST order seen for that name. The
 * converse does not hold: the dump is not complete about removals (an
 * original whose callers were all redirected to a `.constprop`/`.isra`
 * clone, or a static whose last call was inlined late, can vanish without
 * a record) — absence from `removedFunctions` does not prove a symbol
 * exists; check the object's symbol table.
 *
 * NOT IN THE DUMP: identical code folding (-fipa-icf, on at -O2) merging
 * two functions or turning one into a call/alias of another; IPA
 * propagation of properties (pure/const, noreturn, value ranges, modref)
 * into callers. Neither is visible here.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { KlpgenError, errnoCode } from '../util/errors.js';

/** One callgraph node as the dump names it. */
export interface FnRef {
  /** Assembler (symbol) name; a leading `*` from `__asm__` labels is stripped. */
  name: string;
  /** Callgraph node order: creation number within the translation unit. */
  order: number;
  file: string;
  line: number;
  col: number;
}

/** `Callgraph clone;...`: `clone` was made from `origin` for `reason`. */
export interface CloneRecord {
  origin: FnRef;
  /** For `inlining to`: the out-of-line function the code was inlined into. */
  clone: FnRef;
  /** `inlining to`, `constprop`, `isra`, `part`, `(null)`, ... */
  reason: string;
}

/** `Callgraph removal;...`: this node was removed from the callgraph. */
export interface RemovalRecord {
  fn: FnRef;
}

export interface IpaClonesDump {
  /** Where the text came from (for messages). */
  source: string;
  /** In file order, which is the order GCC made the decisions in. */
  clones: CloneRecord[];
  removals: RemovalRecord[];
}

export const INLINING_TO = 'inlining to';

/** One step in the explanation of why a function must be replaced. */
export type Reason =
  /** Code of `from` was inlined into the out-of-line function `into`. */
  | { kind: 'inlined'; from: string; into: string }
  /** `clone` is a copy of `of` made for `suffix` (constprop, isra, part, ...). */
  | { kind: 'clone'; suffix: string; of: string; clone: string };

const CLONE_PREFIX = 'Callgraph clone;';
const REMOVAL_PREFIX = 'Callgraph removal;';
const INT = /^-?\d+$/;

/**
 * Where gcc-12 writes the dump for `gcc -c -o <objectPath> <sourcePath>`
 * (no -dumpdir/-dumpbase, no `=PATH`): see the module comment.
 */
export function ipaClonesDumpPath(objectPath: string, sourcePath: string): string {
  const obj = basename(objectPath);
  const ext = extname(obj);
  const stem = ext ? obj.slice(0, -ext.length) : obj;
  return join(dirname(objectPath), `${stem}${extname(sourcePath)}.000i.ipa-clones`);
}

/** Read and parse a dump file. */
export function readIpaClones(path: string): IpaClonesDump {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') {
      throw new KlpgenError(`${path}: no ipa-clones dump (was the file compiled with -fdump-ipa-clones?)`);
    }
    throw e;
  }
  return parseIpaClones(text, path);
}

export function parseIpaClones(text: string, source: string): IpaClonesDump {
  const dump: IpaClonesDump = { source, clones: [], removals: [] };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').replace(/\r$/, '');
    if (line.trim() === '') continue;
    const where = `${source}:${i + 1}`;
    if (line.startsWith(CLONE_PREFIX)) {
      dump.clones.push(parseCloneFields(line.slice(CLONE_PREFIX.length).split(';'), where, line));
    } else if (line.startsWith(REMOVAL_PREFIX)) {
      dump.removals.push({ fn: parseRemovalFields(line.slice(REMOVAL_PREFIX.length).split(';'), where, line) });
    } else {
      throw malformed(where, line, 'not a "Callgraph clone" or "Callgraph removal" record');
    }
  }
  return dump;
}

function malformed(where: string, line: string, why: string): KlpgenError {
  const shown = line.length > 200 ? `${line.slice(0, 200)}...` : line;
  return new KlpgenError(`${where}: malformed ipa-clones line (${why}): ${shown}`);
}

function fnRef(name: string, order: string, file: string, line: string, col: string): FnRef {
  return {
    name: name.startsWith('*') ? name.slice(1) : name,
    order: Number(order),
    file,
    line: Number(line),
    col: Number(col),
  };
}

function checkName(name: string | undefined, where: string, line: string): string {
  if (name === undefined || name === '' || name === '*') throw malformed(where, line, 'empty function name');
  return name;
}

function checkInt(v: string | undefined, what: string, where: string, line: string): string {
  if (v === undefined || !INT.test(v))
    throw malformed(where, line, `${what} is not an integer: ${JSON.stringify(v ?? '')}`);
  return v;
}

/** `name;order;file...;line;col` — the file may contain `;`. */
function parseRemovalFields(f: string[], where: string, line: string): FnRef {
  if (f.length < 5) throw malformed(where, line, `expected 5 fields, got ${f.length}`);
  const name = checkName(f[0], where, line);
  const order = checkInt(f[1], 'order', where, line);
  const lineNo = checkInt(f[f.length - 2], 'line', where, line);
  const col = checkInt(f[f.length - 1], 'column', where, line);
  return fnRef(name, order, f.slice(2, -2).join(';'), lineNo, col);
}

/**
 * `name1;order1;file1...;line1;col1;name2;order2;file2...;line2;col2;reason`.
 * GCC does not escape `;` in file names, so with more than 11 fields we try
 * every split of the middle part that puts integers where they belong;
 * names and reasons are assumed to be `;`-free (they are identifiers and
 * fixed strings). When several splits fit, the one with equal file names
 * (the usual case: a function and its clone, or a static and its caller in
 * one file) wins; if that still leaves a choice the line is rejected rather
 * than guessed.
 */
function parseCloneFields(f: string[], where: string, line: string): CloneRecord {
  if (f.length < 11) throw malformed(where, line, `expected 11 fields, got ${f.length}`);
  const name1 = checkName(f[0], where, line);
  const order1 = checkInt(f[1], 'origin order', where, line);
  const reason = f[f.length - 1] ?? '';
  if (reason === '') throw malformed(where, line, 'empty reason');
  const col2 = checkInt(f[f.length - 2], 'clone column', where, line);
  const line2 = checkInt(f[f.length - 3], 'clone line', where, line);
  const mid = f.slice(2, -3); // file1..., line1, col1, name2, order2, file2...
  interface Split {
    file1: string;
    line1: string;
    col1: string;
    name2: string;
    order2: string;
    file2: string;
  }
  const fits: Split[] = [];
  for (let k = 1; k + 5 <= mid.length; k++) {
    const [line1, col1, name2, order2] = [mid[k], mid[k + 1], mid[k + 2], mid[k + 3]];
    if (line1 === undefined || col1 === undefined || name2 === undefined || order2 === undefined) continue;
    if (!INT.test(line1) || !INT.test(col1) || !INT.test(order2) || name2 === '' || name2 === '*') continue;
    fits.push({ file1: mid.slice(0, k).join(';'), line1, col1, name2, order2, file2: mid.slice(k + 4).join(';') });
  }
  let chosen: Split | undefined;
  if (fits.length === 1) {
    chosen = fits[0];
  } else if (fits.length > 1) {
    const same = fits.filter((s) => s.file1 === s.file2);
    if (same.length === 1) chosen = same[0];
    else throw malformed(where, line, 'ambiguous: file names containing ";" allow several readings');
  }
  if (!chosen) {
    // Say what is wrong in the plain 11-field case; the generic message otherwise.
    if (f.length === 11) {
      checkInt(f[3], 'origin line', where, line);
      checkInt(f[4], 'origin column', where, line);
      checkName(f[5], where, line);
      checkInt(f[6], 'clone order', where, line);
    }
    throw malformed(where, line, 'fields do not fit name;order;file;line;col twice plus a reason');
  }
  return {
    origin: fnRef(name1, order1, chosen.file1, chosen.line1, chosen.col1),
    clone: fnRef(chosen.name2, chosen.order2, chosen.file2, line2, col2),
    reason,
  };
}

/**
 * Every function that must be replaced when the functions `changed` change:
 * the changed functions themselves (chain `[]`), every function that holds
 * inlined code of one of them, and every clone of one of them — transitively
 * (inlined into something that was inlined elsewhere, clones of clones,
 * clones that were then inlined, ...). Each entry's value is one shortest
 * chain of reasons leading from a changed function to it, in order.
 *
 * Names are symbol names as in the dump (with `__asm__` `*` stripped);
 * entries may name functions that have no out-of-line body any more (see
 * `removedFunctions`). Map order: the changed names first, then breadth-first
 * in dump order, so the result is deterministic.
 */
export function inliningClosure(dump: IpaClonesDump, changed: string[]): Map<string, Reason[]> {
  const edges = new Map<string, { to: string; step: Reason }[]>();
  const seen = new Set<string>();
  for (const r of dump.clones) {
    const from = r.origin.name;
    const to = r.clone.name;
    if (from === to) continue; // recursive inlining into itself, or its "(null)" master clone
    const key = `${from}\0${to}\0${r.reason}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const step: Reason =
      r.reason === INLINING_TO
        ? { kind: 'inlined', from, into: to }
        : { kind: 'clone', suffix: r.reason, of: from, clone: to };
    let list = edges.get(from);
    if (!list) edges.set(from, (list = []));
    list.push({ to, step });
  }
  const result = new Map<string, Reason[]>();
  const queue: string[] = [];
  for (const name of changed) {
    const n = name.startsWith('*') ? name.slice(1) : name;
    if (result.has(n)) continue;
    result.set(n, []);
    queue.push(n);
  }
  for (let qi = 0; qi < queue.length; qi++) {
    const from = queue[qi]!;
    const chain = result.get(from)!;
    for (const { to, step } of edges.get(from) ?? []) {
      if (result.has(to)) continue;
      result.set(to, [...chain, step]);
      queue.push(to);
    }
  }
  return result;
}

/**
 * Functions whose out-of-line body the dump says was removed (fully
 * inlined, or unused after cloning), so they have no symbol of their own.
 * A removal of an inline copy (an order larger than the function's own) is
 * not counted. Not exhaustive: see the module comment.
 */
export function removedFunctions(dump: IpaClonesDump): Set<string> {
  const minOrder = new Map<string, number>();
  const note = (f: FnRef) => {
    const cur = minOrder.get(f.name);
    if (cur === undefined || f.order < cur) minOrder.set(f.name, f.order);
  };
  for (const r of dump.clones) {
    note(r.origin);
    note(r.clone);
  }
  for (const r of dump.removals) note(r.fn);
  const removed = new Set<string>();
  for (const r of dump.removals) {
    if (r.fn.order === minOrder.get(r.fn.name)) removed.add(r.fn.name);
  }
  return removed;
}

/** A one-line explanation, e.g. for `klpgen` messages. */
export function formatReasons(name: string, chain: readonly Reason[]): string {
  if (chain.length === 0) return `${name}: changed`;
  const steps = chain.map((r) =>
    r.kind === 'inlined' ? `${r.from} inlined into ${r.into}` : `${r.clone} is a ${r.suffix} clone of ${r.of}`,
  );
  return `${name}: ${steps.join(', ')}`;
}
