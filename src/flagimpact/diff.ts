/**
 * What -flive-patching=inline-clone changed in one TU, function by
 * function, and why where the code shows it.
 *
 * The flag turns off the IPA passes whose results a live patch could
 * silently invalidate (GCC: ipa-ra, ipa-pure-const — which also finds
 * noreturn —, ipa-stack-alignment, ipa-vrp/ipa-bit-cp, ipa-icf,
 * ipa-modref, ipa-reference); inlining and cloning stay. Its effects:
 *  - a function's own code changes: inlining decisions differ (the dumps
 *    say so), it calls other clones, ICF no longer folds it, or value
 *    ranges of its parameters from its callers (vrp) are no longer used;
 *  - a caller's code changes although its callee's did not: it no longer
 *    uses what GCC inferred about the callee (what memory it reads and
 *    writes: modref; that it is pure/const; that it never returns; which
 *    registers it clobbers: ipa-ra; the stack alignment it needs).
 * Inlining comes from the dumps; the IPA-pass causes are inferred from the
 * two disassemblies by heuristics tried in the order below, the first that
 * fits wins, "code changed" when none does; --attribute replaces them by
 * measurement (attribute.ts). Measured on this target, modref and
 * pure-const dominate; ipa-ra applies only to TUs built without -pg
 * (kernel/trace/). See docs/flag-impact.md.
 */
import { aliasesIn, compareCode, foldNumbers, type FunctionCode, type ObjectCode } from '../analyze/objdiff.js';
import { INLINING_TO, type IpaClonesDump } from '../analyze/ipa-clones.js';
import { functionInstructions, type Instruction, type SectionInstructions } from './disasm.js';
import { baseFunction, isCompilerLocal } from '../gcc/names.js';

export type Cause =
  | 'inlining'
  | 'clone'
  | 'icf'
  | 'vrp'
  | 'ipa-ra'
  | 'pure-const'
  | 'noreturn'
  | 'stack-alignment'
  | 'modref'
  | 'ipa-reference'
  | 'code changed';

/**
 * What the cause rests on: `dump` (the ipa-clones dumps), `code` (symbols
 * and call targets in the objects), `heuristic` (a rule on the
 * disassembly, see docs), `measured` (--attribute: builds with one IPA
 * pass disabled each), `none`.
 */
export type Evidence = 'dump' | 'code' | 'heuristic' | 'measured' | 'none';

/** Causes where the function changed only because of what it knew about a callee. */
export const CALLER_CAUSES: readonly Cause[] = [
  'ipa-ra',
  'pure-const',
  'noreturn',
  'stack-alignment',
  'modref',
  'ipa-reference',
];

export interface Delta {
  asIs: number | null;
  livepatch: number | null;
  delta: number;
}

export interface FunctionImpact {
  file: string;
  name: string;
  status: 'changed' | 'added' | 'removed';
  /** `caller`: its code changed although the callees named in `related` did not. */
  kind: 'self' | 'caller';
  cause: Cause;
  /** Inlined callees whose decision changed, clones, ICF partners, or the callees of a caller change. */
  related: string[];
  evidence: Evidence;
  /** With --attribute: the IPA passes whose single disabling changes this function (null otherwise). */
  passes: string[] | null;
  bind: 'local' | 'global' | 'weak';
  size: Delta;
  instructions: Delta;
  /** First difference (compareCode), for `changed`. */
  firstDifference: string | null;
  /** Functions of the TU that call or jump to it in either build (for the hotness of callers). */
  callers: string[];
}

export interface InliningChange {
  file: string;
  into: string;
  callee: string;
  /** lost: inlined in the as-is build, not with the flag; gained: the reverse. */
  change: 'lost' | 'gained';
  /**
   * Gained only because the as-is build deleted the calls instead (the callee,
   * found const/pure, appears nowhere in its dump and has no body there):
   * a pure/const effect, not an inlining decision.
   */
  callDeletedAsIs: boolean;
}

export interface CloneChange {
  file: string;
  clone: string;
  origin: string;
  reason: string;
  change: 'disappeared' | 'appeared';
}

export interface ObjtoolChange {
  file: string;
  warning: string;
  change: 'appeared' | 'disappeared';
}

export interface TuDiff {
  file: string;
  functions: { asIs: number; livepatch: number };
  impacts: FunctionImpact[];
  inlining: InliningChange[];
  clones: CloneChange[];
  objtool: ObjtoolChange[];
}

export interface BuildOutput {
  code: ObjectCode;
  sections: SectionInstructions;
  dump: IpaClonesDump;
  objtool: string[];
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function diffTu(file: string, asIs: BuildOutput, lp: BuildOutput): TuDiff {
  const a = asIs.code.functions;
  const l = lp.code.functions;
  const lFolded = foldedIndex(l);
  const aFolded = foldedIndex(a);
  const pairs = new Map<string, string>(); // as-is name → livepatch name
  for (const name of a.keys()) {
    const m = l.has(name) ? name : unique(lFolded, name);
    if (m !== undefined) pairs.set(name, m);
  }
  const paired = new Set(pairs.values());

  const insnCache = new Map<FunctionCode, Instruction[]>();
  const insns = (side: BuildOutput, f: FunctionCode) => {
    let v = insnCache.get(f);
    if (!v) insnCache.set(f, (v = functionInstructions(side.sections, f)));
    return v;
  };
  const unchanged = new Set<string>();
  const changed: { name: string; fa: FunctionCode; fl: FunctionCode; why: string }[] = [];
  for (const [name, lname] of pairs) {
    const fa = a.get(name) as FunctionCode;
    const fl = l.get(lname) as FunctionCode;
    const d = compareCode(fa, fl);
    if (d) changed.push({ name, fa, fl, why: d.reason });
    else unchanged.add(foldNumbers(name));
  }

  const inlinedA = inliningPairs(asIs.dump);
  const inlinedL = inliningPairs(lp.dump);
  const knownAsIs = new Set<string>(aFolded.keys());
  for (const c of asIs.dump.clones) {
    knownAsIs.add(foldNumbers(c.origin.name));
    knownAsIs.add(foldNumbers(c.clone.name));
  }
  for (const r of asIs.dump.removals) knownAsIs.add(foldNumbers(r.fn.name));
  const callers = callerIndex([asIs.code, lp.code]);
  const ctx: Context = { asIs, lp, insns, unchanged, aFolded, inlinedA, inlinedL, knownAsIs };

  const impacts: FunctionImpact[] = [];
  for (const { name, fa, fl, why } of changed) {
    const ia = insns(asIs, fa);
    const il = insns(lp, fl);
    const { cause, related, evidence } = classifyChange(ctx, name, fa, fl, ia, il);
    impacts.push({
      file,
      name,
      status: 'changed',
      kind: CALLER_CAUSES.includes(cause) ? 'caller' : 'self',
      cause,
      related,
      evidence,
      passes: null,
      bind: fa.bind,
      size: delta(fa.size, fl.size),
      instructions: delta(ia.length, il.length),
      firstDifference: why,
      callers: callersOf(callers, name, fl.name),
    });
  }
  for (const [name, fa] of a) {
    if (pairs.has(name)) continue;
    impacts.push(appearedOrGone(file, name, fa, insns(asIs, fa).length, 'removed', lp.dump, callers));
  }
  for (const [name, fl] of l) {
    if (paired.has(name) || a.has(name) || unique(aFolded, name) !== undefined) continue;
    impacts.push(appearedOrGone(file, name, fl, insns(lp, fl).length, 'added', asIs.dump, callers));
  }
  impacts.sort((x, y) => byName(x.name, y.name));

  return {
    file,
    functions: { asIs: a.size, livepatch: l.size },
    impacts,
    inlining: diffInlining(file, inlinedA, inlinedL, knownAsIs),
    clones: diffClones(file, asIs.dump, lp.dump),
    objtool: diffObjtool(file, asIs.objtool, lp.objtool),
  };
}

function delta(x: number | null, y: number | null): Delta {
  return { asIs: x, livepatch: y, delta: (y ?? 0) - (x ?? 0) };
}

interface Context {
  asIs: BuildOutput;
  lp: BuildOutput;
  insns: (side: BuildOutput, f: FunctionCode) => Instruction[];
  /** Folded names of functions whose code is the same in both builds. */
  unchanged: Set<string>;
  aFolded: Map<string, FunctionCode[]>;
  /** folded into-function → folded callees inlined into it. */
  inlinedA: Map<string, Map<string, string>>;
  inlinedL: Map<string, Map<string, string>>;
  /** Folded names the as-is build knows at all (symbols, dump records). */
  knownAsIs: Set<string>;
}

function classifyChange(
  ctx: Context,
  name: string,
  fa: FunctionCode,
  fl: FunctionCode,
  ia: Instruction[],
  il: Instruction[],
): { cause: Cause; related: string[]; evidence: Evidence } {
  const key = foldNumbers(name);
  // Inlining decisions into this function differ.
  const ina = ctx.inlinedA.get(key) ?? new Map<string, string>();
  const inl = ctx.inlinedL.get(key) ?? new Map<string, string>();
  const lost = [...ina.keys()].filter((c) => !inl.has(c));
  const gained = [...inl.keys()].filter((c) => !ina.has(c));
  const deleted = gained.filter((c) => !ctx.knownAsIs.has(c));
  const decisions = lost
    .map((c) => ina.get(c) as string)
    .concat(gained.filter((c) => ctx.knownAsIs.has(c)).map((c) => inl.get(c) as string));
  if (decisions.length) return { cause: 'inlining', related: uniqSorted(decisions), evidence: 'dump' };
  // Only calls the as-is build deleted differ here: often empty stubs, so the code change may come from elsewhere.
  if (deleted.length)
    return {
      cause: 'pure-const',
      related: uniqSorted(deleted.map((c) => inl.get(c) as string)),
      evidence: 'heuristic',
    };

  // It calls a different clone (or the original instead of a clone) of some function.
  const ta = callTargets(ia);
  const tl = callTargets(il);
  const onlyA = [...ta.keys()].filter((t) => !tl.has(t));
  const onlyL = [...tl.keys()].filter((t) => !ta.has(t));
  const origin = baseFunction;
  const cloneSwaps = onlyA.filter(
    (t) => onlyL.some((u) => origin(u) === origin(t)) && (isCompilerLocal(t) || onlyL.some((u) => isCompilerLocal(u))),
  );
  if (cloneSwaps.length) {
    return {
      cause: 'clone',
      related: uniqSorted(cloneSwaps.concat(onlyL.filter((u) => cloneSwaps.some((t) => origin(t) === origin(u))))),
      evidence: 'code',
    };
  }

  // ICF: folded into another function (alias) or made a thunk in one build only.
  const aliasA = aliasesIn(ctx.asIs.code, fa).map((g) => g.name);
  const aliasL = aliasesIn(ctx.lp.code, fl).map((g) => g.name);
  if (aliasA.length !== aliasL.length)
    return { cause: 'icf', related: uniqSorted(aliasA.concat(aliasL)), evidence: 'code' };
  const thunkA = thunkTarget(ia);
  const thunkL = thunkTarget(il);
  if ((thunkA ?? '') !== (thunkL ?? ''))
    return { cause: 'icf', related: uniqSorted([thunkA, thunkL].filter((x): x is string => !!x)), evidence: 'code' };

  // Caller-side: what it knew about a callee of this TU (whose body GCC saw).
  const localCallees = [...new Set([...ta.keys(), ...tl.keys()])].filter(
    (t) => ctx.aFolded.has(t) && t !== key && origin(t) !== origin(key),
  );
  const sameCallees = localCallees.filter((t) => ctx.unchanged.has(t));
  // pure/const: calls the as-is build could merge or delete (calls to the same callee, or callees called only now).
  const moreCalls = [...tl.keys()].filter((t) => (tl.get(t) ?? 0) > (ta.get(t) ?? 0) && ctx.aFolded.has(t));
  if (moreCalls.length) return { cause: 'pure-const', related: displayNames(ctx, moreCalls), evidence: 'heuristic' };
  const noReturn = localCallees.filter((t) => !returns(ctx, t));
  if (noReturn.length) return { cause: 'noreturn', related: displayNames(ctx, noReturn), evidence: 'heuristic' };
  // modref: what a callee reads and writes let the as-is build keep values in registers across the call.
  if (localCallees.length && memoryAccesses(il) > memoryAccesses(ia))
    return { cause: 'modref', related: displayNames(ctx, localCallees), evidence: 'heuristic' };
  // Its own parameters: ranges/known bits propagated from its callers let GCC drop checks.
  if ((fa.bind === 'local' || isCompilerLocal(name)) && checks(ia) < checks(il))
    return { cause: 'vrp', related: [], evidence: 'heuristic' };
  if (onlyStackDiffers(ia, il))
    return { cause: 'stack-alignment', related: displayNames(ctx, sameCallees), evidence: 'heuristic' };
  if (sameCallees.length && calleeSavedPushes(il) > calleeSavedPushes(ia) && sameModuloMoves(ia, il)) {
    return { cause: 'ipa-ra', related: displayNames(ctx, sameCallees), evidence: 'heuristic' };
  }
  if (localCallees.length) return { cause: 'modref', related: displayNames(ctx, localCallees), evidence: 'heuristic' };
  return { cause: 'code changed', related: [], evidence: 'none' };
}

function uniqSorted(xs: string[]): string[] {
  return [...new Set(xs)].sort(byName);
}

function displayNames(ctx: Context, folded: string[]): string[] {
  return uniqSorted(folded.map((t) => ctx.aFolded.get(t)?.[0]?.name ?? t));
}

/** Call and jump targets named by relocations (folded names), with how often each is called. */
function callTargets(insns: Instruction[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const i of insns) {
    if (!i.mnemonic.startsWith('call') && !/^j/.test(i.mnemonic)) continue;
    for (const r of i.relocs) {
      if (r.type !== 'R_X86_64_PLT32' && r.type !== 'R_X86_64_PC32') continue;
      if (r.target === '__fentry__' || r.target.startsWith('__x86_')) continue;
      out.set(r.target, (out.get(r.target) ?? 0) + (i.mnemonic.startsWith('call') ? 1 : 0));
    }
  }
  return out;
}

/** A body that is one jump to another function (after endbr/fentry): an ICF thunk. */
function thunkTarget(insns: Instruction[]): string | undefined {
  const real = insns.filter(
    (i) =>
      !i.mnemonic.startsWith('endbr') &&
      !i.mnemonic.startsWith('nop') &&
      !i.relocs.some((r) => r.target === '__fentry__') &&
      i.mnemonic !== 'int3',
  );
  if (real.length !== 1) return undefined;
  const only = real[0] as Instruction;
  return only.mnemonic.startsWith('jmp') ? only.relocs[0]?.target : undefined;
}

/** Does the function (or its .cold part) ever return: ret, the return thunk, or a tail call? */
function returns(ctx: Context, folded: string): boolean {
  const parts = [...(ctx.aFolded.get(folded) ?? []), ...(ctx.aFolded.get(`${folded}.cold`) ?? [])];
  if (parts.length === 0) return true;
  const self = new Set([folded, `${folded}.cold`]);
  for (const f of parts) {
    for (const i of ctx.insns(ctx.asIs, f)) {
      if (i.mnemonic.startsWith('ret')) return true;
      if (!i.mnemonic.startsWith('jmp')) continue;
      if (i.operands.startsWith('*')) return true;
      if (i.relocs.some((r) => !self.has(r.target))) return true;
    }
  }
  return false;
}

const CALLEE_SAVED = /^%(rbx|rbp|r12|r13|r14|r15)$/;

function calleeSavedPushes(insns: Instruction[]): number {
  return insns.filter((i) => i.mnemonic === 'push' && CALLEE_SAVED.test(i.operands)).length;
}

const MOVES = /^(mov|movl|movq|movabs|push|pop|xchg|lea|nop|nopl|nopw|xor)/;

/** Same instructions apart from moves, saves and restores: a register allocation difference. */
function sameModuloMoves(ia: Instruction[], il: Instruction[]): boolean {
  const core = (xs: Instruction[]) =>
    xs
      .filter((i) => !MOVES.test(i.mnemonic))
      .map((i) => i.mnemonic)
      .join(' ');
  return core(ia) === core(il);
}

/** Only instructions that adjust or align %rsp differ. */
function onlyStackDiffers(ia: Instruction[], il: Instruction[]): boolean {
  if (ia.length !== il.length) return false;
  let diffs = 0;
  for (let k = 0; k < ia.length; k++) {
    const x = ia[k] as Instruction;
    const y = il[k] as Instruction;
    if (x.mnemonic === y.mnemonic && x.operands === y.operands) continue;
    // Jump operands hold addresses that move with any size change; they are not the difference.
    if (x.mnemonic === y.mnemonic && /^j/.test(x.mnemonic)) continue;
    if (x.mnemonic !== y.mnemonic || !/%rsp$/.test(x.operands) || !/^(sub|add|and|lea)/.test(x.mnemonic)) return false;
    diffs++;
  }
  return diffs > 0;
}

/** Instructions with a memory operand outside the stack frame. */
function memoryAccesses(insns: Instruction[]): number {
  return insns.filter(
    (i) =>
      /\((?!%rsp\)|%rbp\))[^)]*\)/.test(i.operands) && !i.mnemonic.startsWith('lea') && !i.mnemonic.startsWith('nop'),
  ).length;
}

function checks(insns: Instruction[]): number {
  return insns.filter((i) => /^(cmp|test|j(?!mp))/.test(i.mnemonic)).length;
}

function foldedIndex(m: Map<string, FunctionCode>): Map<string, FunctionCode[]> {
  const idx = new Map<string, FunctionCode[]>();
  for (const f of m.values()) {
    const k = foldNumbers(f.name);
    const list = idx.get(k);
    if (list) list.push(f);
    else idx.set(k, [f]);
  }
  for (const list of idx.values()) list.sort((x, y) => byName(x.name, y.name));
  return idx;
}

function unique(idx: Map<string, FunctionCode[]>, name: string): string | undefined {
  const list = idx.get(foldNumbers(name));
  return list && list.length === 1 ? list[0]?.name : undefined;
}

/** folded target → names of the functions (both builds) whose relocations name it. */
function callerIndex(codes: ObjectCode[]): Map<string, Set<string>> {
  const idx = new Map<string, Set<string>>();
  for (const code of codes) {
    for (const f of code.functions.values()) {
      for (const r of f.relocs) {
        if (r.type !== 'R_X86_64_PLT32' && r.type !== 'R_X86_64_PC32') continue;
        let s = idx.get(r.target);
        if (!s) idx.set(r.target, (s = new Set()));
        s.add(f.name);
      }
    }
  }
  return idx;
}

function callersOf(idx: Map<string, Set<string>>, ...names: string[]): string[] {
  const out = new Set<string>();
  for (const n of names) {
    for (const key of [n, foldNumbers(n)]) for (const c of idx.get(key) ?? []) out.add(c);
  }
  for (const n of names) out.delete(n);
  return [...out].sort(byName);
}

function appearedOrGone(
  file: string,
  name: string,
  f: FunctionCode,
  insnCount: number,
  status: 'added' | 'removed',
  otherDump: IpaClonesDump,
  callers: Map<string, Set<string>>,
): FunctionImpact {
  // Gone with the flag because it is now inlined everywhere (or the reverse), if the other build's dump shows inlining of it.
  const key = foldNumbers(name);
  const inlinedInOther = otherDump.clones.some((c) => c.reason === INLINING_TO && foldNumbers(c.origin.name) === key);
  const cause: Cause =
    isCompilerLocal(key) && !key.endsWith('.cold') ? 'clone' : inlinedInOther ? 'inlining' : 'code changed';
  return {
    file,
    name,
    status,
    kind: 'self',
    cause,
    related: [],
    evidence: cause === 'clone' ? 'code' : cause === 'inlining' ? 'dump' : 'none',
    passes: null,
    bind: f.bind,
    size: status === 'removed' ? delta(f.size, null) : delta(null, f.size),
    instructions: status === 'removed' ? delta(insnCount, null) : delta(null, insnCount),
    firstDifference: null,
    callers: callersOf(callers, name),
  };
}

/** folded into → (folded callee → callee as the dump names it), from `inlining to` records. */
export function inliningPairs(dump: IpaClonesDump): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const c of dump.clones) {
    if (c.reason !== INLINING_TO) continue;
    const from = foldNumbers(c.origin.name);
    const into = foldNumbers(c.clone.name);
    if (from === into) continue;
    let m = out.get(into);
    if (!m) out.set(into, (m = new Map()));
    if (!m.has(from)) m.set(from, c.origin.name);
  }
  return out;
}

export function diffInlining(
  file: string,
  a: Map<string, Map<string, string>>,
  l: Map<string, Map<string, string>>,
  knownAsIs: Set<string>,
): InliningChange[] {
  const out: InliningChange[] = [];
  const intos = [...new Set([...a.keys(), ...l.keys()])].sort(byName);
  for (const into of intos) {
    const ma = a.get(into) ?? new Map<string, string>();
    const ml = l.get(into) ?? new Map<string, string>();
    for (const [k, callee] of ma)
      if (!ml.has(k)) out.push({ file, into, callee, change: 'lost', callDeletedAsIs: false });
    for (const [k, callee] of ml)
      if (!ma.has(k)) out.push({ file, into, callee, change: 'gained', callDeletedAsIs: !knownAsIs.has(k) });
  }
  return out.sort((x, y) => byName(x.into, y.into) || byName(x.callee, y.callee) || byName(x.change, y.change));
}

/** Clone decisions (constprop, isra, part, ...) present in one dump only. */
export function diffClones(file: string, a: IpaClonesDump, l: IpaClonesDump): CloneChange[] {
  const clones = (d: IpaClonesDump) => {
    const m = new Map<string, { clone: string; origin: string; reason: string }>();
    for (const c of d.clones) {
      if (c.reason === INLINING_TO || c.reason === '(null)' || c.origin.name === c.clone.name) continue;
      const k = `${foldNumbers(c.origin.name)}\0${foldNumbers(c.clone.name)}\0${c.reason}`;
      if (!m.has(k)) m.set(k, { clone: c.clone.name, origin: c.origin.name, reason: c.reason });
    }
    return m;
  };
  const ca = clones(a);
  const cl = clones(l);
  const out: CloneChange[] = [];
  for (const [k, c] of ca) if (!cl.has(k)) out.push({ file, ...c, change: 'disappeared' });
  for (const [k, c] of cl) if (!ca.has(k)) out.push({ file, ...c, change: 'appeared' });
  return out.sort((x, y) => byName(x.clone, y.clone) || byName(x.change, y.change));
}

/** Warnings as multisets, compared without instruction offsets (they move with any code change). */
export function diffObjtool(file: string, a: string[], l: string[]): ObjtoolChange[] {
  const key = (w: string) => foldNumbers(w.replace(/\+0x[0-9a-f]+/g, '+*'));
  const count = (ws: string[]) => {
    const m = new Map<string, string[]>();
    for (const w of ws) {
      const k = key(w);
      const list = m.get(k);
      if (list) list.push(w);
      else m.set(k, [w]);
    }
    return m;
  };
  const ma = count(a);
  const ml = count(l);
  const out: ObjtoolChange[] = [];
  for (const [k, ws] of ma)
    for (const w of ws.slice(ml.get(k)?.length ?? 0)) out.push({ file, warning: w, change: 'disappeared' });
  for (const [k, ws] of ml)
    for (const w of ws.slice(ma.get(k)?.length ?? 0)) out.push({ file, warning: w, change: 'appeared' });
  return out.sort((x, y) => byName(x.warning, y.warning) || byName(x.change, y.change));
}
