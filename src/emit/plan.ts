import type { AnalysisReport, ReplaceEntry } from '../analyze/analyze.js';
import type { TuEntity, TuModel } from '../frontend/model.js';
import { baseFunction, isCloneOf, type CloneKind } from '../gcc/names.js';
import { KlpgenError } from '../util/errors.js';
import { externDeclaration, PREFIX, type SourceText } from './text.js';

/** What emitting one TU's new functions reads: the analysis, the patched .c and both builds' facts. */
export interface EmitInput {
  report: AnalysisReport;
  /** KBUILD_MODNAME of the original TU. */
  modName: string;
  /** The TU is built into a module (-DMODULE): MODULE stays defined, THIS_MODULE is that module. */
  isModule?: boolean;
  /** Sizes of the original object's variables (arrays sized by their initializer need them). */
  dataSizes?: ReadonlyMap<string, number>;
  /** Functions the original object has (the running kernel has them too). */
  originalFunctions: Set<string>;
  /**
   * Names the patched build's replaced functions call or take the address of. A function of
   * the .c they do not reference was inlined (or cloned) there: it is copied, so the module's
   * compiler can make the same decision and the new code matches the patched build.
   */
  patchedReferences: Set<string>;
  /** What their `.cold` parts reference (a header's static the cold path calls out of line). */
  patchedPieceReferences?: Set<string>;
  /** The patched .c text and its model (from the analysis' patched build). */
  file: string;
  patchedText: string;
  model: TuModel;
  /** The patched build's preprocessed text (declarations made by macros are read from it). */
  preprocessed: string;
  name: string;
  /** Prefix of the new functions' names (`livepatch_`; TU-specific when two TUs replace the same name). */
  prefix?: string;
  /**
   * Functions of the .c the new code calls that are copied although the running kernel has them
   * (a second attempt, when verification showed the patched build relied on what it knew of them).
   */
  copyForKnowledge?: Set<string>;
  /**
   * How static functions and variables of the .c are declared, so the module's compiler knows
   * what the patched build's knew:
   * - 'callers' (the default): static where the module has all the callers the patched build
   *   had (the same facts from them); replaced ones are made global for the scaffolding in the
   *   assembler, behind the compiler's back; static variables are static stand-ins;
   * - 'static': knowledge copies static even with fewer callers (safe: only the module calls
   *   them; they match when those callers taught the compiler nothing more);
   * - 'global': functions global, variables extern (the compiler knows none of their users).
   */
  linkage?: 'callers' | 'static' | 'global';
  /**
   * Functions the patched build inlined into the replaced ones (its ipa-clones dump). One whose
   * address the new code also takes is copied for the calls, and its address stays the running
   * kernel's (`klpgen_addr_NAME`, a KLP relocation to NAME).
   */
  patchedInlined?: ReadonlySet<string>;
  /**
   * The original object's read-only static tables that hold only values (in `.rodata`, no
   * relocations). One the patched build's new code no longer references was folded there
   * (`tbl[CONST].field` read at compile time): it is copied, so the module's compiler folds it too.
   */
  valueTables?: ReadonlySet<string>;
  /** Constants whose contents the fix changes: always the module's own copy, never the kernel's. */
  changedData?: ReadonlySet<string>;
  /** Sections of the original object's variables (`.bss.x`, `.rodata.y`, `.data..percpu`). */
  dataSections?: ReadonlyMap<string, string>;
  /** The patched object's functions and the names their code references (`.cold` parts and clones included). */
  patchedFunctionRefs?: ReadonlyMap<string, ReadonlySet<string>>;
  /** Further local definitions (`struct:name`) the new code needs: its build said so. */
  alsoNeed?: readonly string[];
  /** This file's name in the module build (diagnostics after a copied function point back to it). */
  cName?: string;
  /** File name of the scaffolding, for the header comment. */
  scaffoldingFile: string;
}

/**
 * What the module's C file of one TU is made of, decided before any text is written: which
 * functions are copied and why, what stays the running kernel's, which data is copied, which
 * copies must stay out of line. `describePlan` is its reviewable form (`plan.json`).
 */
export interface CopyPlan {
  /** The replaced functions (must-replace entries with a definition in the fix). */
  entries: ReplaceEntry[];
  replaced: Set<string>;
  /** Functions whose source the fix changed. */
  changed: Set<string>;
  /** Functions copied into the module (replaced ones and helpers), with why, in the order found. */
  copy: Map<string, string>;
  /** Reference keys (`struct:x`, `macro:Y`, `function:z`) of the .c's definitions the new code needs. */
  need: Set<string>;
  /** Definitions of the .c the new code references that stay in the running kernel. */
  externs: Map<string, TuEntity>;
  /** Static variables copied (folded away by the compiler, or value tables the patched build folded). */
  foldedData: Set<string>;
  /** Copies that are there for what the compiler learns from their bodies, not to run new code. */
  knowledge: Set<string>;
  /** Copies for inlining whose address the new code also takes: that address is the kernel's. */
  addressTwins: Set<string>;
  /** Copies the patched build calls out of line, with the attributes that keep them so. */
  outOfLine: Map<string, string>;
  /** Static functions of headers the patched build calls out of line, with the attributes that keep them so. */
  headerOutOfLine: Map<string, string>;
  /** The .c's own definitions by reference key, its macros, and the headers' static functions. */
  defs: Map<string, TuEntity>;
  macros: Map<string, TuModel['macros'][number]>;
  headerStatics: Map<string, TuEntity>;
}

/** The plan of one TU's new functions. */
export function planFunctions(input: EmitInput, src: SourceText): CopyPlan {
  const { model, file } = input;
  const own = (e: TuEntity) => e.span.file === file;
  // A function the fix deletes has nothing to be replaced by: its callers changed and are
  // replaced, so the running kernel's copy is no longer called.
  const definedInFix = (name: string) =>
    model.entities.some((e) => e.kind === 'function' && e.definition && e.name === name);
  const entries = input.report.mustReplace.filter((e) => e.file === file && definedInFix(e.symbol));
  if (entries.length === 0) throw new KlpgenError(`${file}: nothing to replace`);
  for (const e of entries) {
    if (e.object !== 'vmlinux' && e.object !== entries[0]?.object)
      throw new KlpgenError(`${file}: functions in several objects`);
  }

  // Definitions of the .c by reference key (`function:foo`, `struct:bar`, `macro:BAZ`).
  const defs = new Map<string, TuEntity>();
  for (const e of model.entities) {
    if (!own(e)) continue;
    const key = `${e.kind}:${e.name}`;
    const prev = defs.get(key);
    if (!prev || (e.definition && !prev.definition)) defs.set(key, e);
  }
  const macros = new Map(model.macros.map((m) => [`macro:${m.name}`, m]));
  // Inline functions of headers: not copied (the headers are #included), but what they call
  // from the .c is needed just as if the new code called it directly.
  const headerInlines = new Map<string, TuEntity>();
  for (const e of model.entities) {
    if (e.kind === 'function' && e.definition && !own(e) && e.inline) headerInlines.set(`function:${e.name}`, e);
  }
  const headerStatics = new Map<string, TuEntity>();
  for (const e of model.entities) {
    if (
      e.kind === 'function' &&
      e.definition &&
      !own(e) &&
      e.linkage === 'internal' &&
      !e.flags.noinline &&
      !e.flags.alwaysInline
    )
      headerStatics.set(`function:${e.name}`, e);
  }
  /** A function's name without the pieces GCC split or cloned off it (`f.part.0`, `f.cold`, `f.isra.0`). */
  const baseName = baseFunction;
  /** The patched build calls it, or a clone of it (`f.constprop.0`), out of line. */
  const calledAsClone = (name: string, kinds?: CloneKind[], refs: ReadonlySet<string> = input.patchedReferences) =>
    [...refs].some((n) => isCloneOf(n, name, kinds));
  /**
   * What a copy kept out of line references in the patched build, its pieces (.part, .cold, clones)
   * included: a helper it calls there is not inlined into it here either. (Replaced functions keep
   * the narrower test: a callee only their `.cold` piece calls, which GCC knew to be cold, stays
   * copied, or the new code's layout differs: nilfs_copy_dirty_pages.)
   */
  const outOfLineRefs = (name: string): ReadonlySet<string> => {
    const refs = new Set(input.patchedReferences);
    for (const [fn, names] of input.patchedFunctionRefs ?? []) {
      if (baseName(fn) === name) for (const n of names) refs.add(n);
    }
    return refs;
  };
  /**
   * Static functions of headers the replaced functions call out of line in the patched build,
   * where the .c has other callers; the module may have only one, which GCC would inline.
   */
  const headerOutOfLine = new Map<string, string>();
  const replaced = new Set(entries.map((e) => e.symbol));

  // Which functions are copied: the replaced ones, and every function of the .c they
  // reach that the running kernel does not have (inlined everywhere) or that changed.
  const copy = new Map<string, string>(); // name -> why
  for (const e of entries) copy.set(e.symbol, e.reasons.map((r) => r.detail).join('; '));
  const changed = new Set(input.report.tus.filter((t) => t.file === file).flatMap((t) => t.sourceChanged));
  const need = new Set<string>();
  const externs = new Map<string, TuEntity>();
  /** Static variables the original object does not have: copied. */
  const foldedData = new Set<string>();
  /** Value tables the new code reads: copied unless the patched build's code still references them. */
  const tableReads = new Map<string, TuEntity>();
  /** Copies that are there for what the compiler learns from their bodies, not to run new code. */
  const knowledge = new Set<string>();
  /** Copies for inlining whose address the new code also takes: that address is the kernel's. */
  const addressTwins = new Set<string>();
  /** Copies the patched build calls out of line, with the attributes that keep them so. */
  const outOfLine = new Map<string, string>();
  const visit = (key: string) => {
    if (need.has(key)) return;
    need.add(key);
    const e = defs.get(key) ?? headerInlines.get(key);
    if (e) {
      // A function a macro invocation makes is copied as the whole invocation (SYSCALL_DEFINE's
      // wrappers and __do_sys_x body): what its other definitions use is needed too.
      const siblings =
        e.kind === 'function' && own(e)
          ? model.entities.filter(
              (f) => f !== e && f.kind === 'function' && own(f) && f.definition && f.span.line === e.span.line,
            )
          : [];
      const keptApart =
        e.kind === 'function' &&
        own(e) &&
        !replaced.has(e.name) &&
        (!!input.copyForKnowledge?.has(e.name) || outOfLine.has(e.name));
      const refsThere = keptApart ? outOfLineRefs(e.name) : input.patchedReferences;
      for (const r of [...new Set([...e.refs, ...siblings.flatMap((f) => f.refs)])]) {
        const d = defs.get(r);
        const h = d ? undefined : headerStatics.get(r);
        if (
          h &&
          (input.patchedReferences.has(h.name) || !!input.patchedPieceReferences?.has(h.name) || calledAsClone(h.name))
        )
          headerOutOfLine.set(h.name, calledAsClone(h.name) ? 'noinline' : 'noinline, noclone');
        if (!d && headerInlines.has(r)) {
          visit(r);
          continue;
        }
        if (!d && !macros.has(r)) continue;
        if (d?.kind === 'function') {
          const absent = !input.originalFunctions.has(d.name);
          const asClone = calledAsClone(d.name, undefined, refsThere);
          const inlinedThere = !refsThere.has(d.name) && !asClone;
          const forKnowledge = !!input.copyForKnowledge?.has(d.name) && !replaced.has(d.name);
          // Inlined into the new code and also referenced by it (its address taken), through a
          // direct call: the text names the address apart from the call (klpgen_addr_f).
          const twin =
            !absent &&
            !inlinedThere &&
            !changed.has(d.name) &&
            !replaced.has(d.name) &&
            !!input.patchedInlined?.has(d.name) &&
            e.kind === 'function' &&
            e.span.file === file &&
            new RegExp(`(?<![\\w.>])${d.name}\\s*\\(`).test(src.take(e.span.line, e.span.endLine));
          // Inlined through a function pointer the new code also passes on (`devm_add_action_or_reset(dev,
          // f, x)` calls f on failure): copied for the call; its address is made the kernel's in the object.
          const throughPointer =
            !twin &&
            !absent &&
            !inlinedThere &&
            !changed.has(d.name) &&
            !replaced.has(d.name) &&
            !!input.patchedInlined?.has(d.name) &&
            e.kind === 'function' &&
            e.span.file === file;
          const copyIt = absent || changed.has(d.name) || inlinedThere || forKnowledge || twin || throughPointer;
          if (throughPointer && !forKnowledge && !copy.has(d.name)) {
            copy.set(
              d.name,
              "inlined into the new code in the patched build through a pointer it also passes on: calls reach the copy, its address stays the running kernel's",
            );
            visit(r);
          } else if (twin && !forKnowledge && !copy.has(d.name)) {
            copy.set(
              d.name,
              "inlined into the new code in the patched build, which also takes its address: the address stays the running kernel's",
            );
            addressTwins.add(d.name);
            externs.set(r, d);
            visit(r);
          } else if (copyIt) {
            // Copied, but called out of line in the patched build: the module's compiler must not
            // inline its one call (GCC inlines a static function called once), nor clone it when
            // the patched build did not.
            // (Called only as its `.part.N` split: the patched build inlined its head, which
            // noinline would forbid; GCC is left to split it the same way.)
            const onlySplit =
              asClone && !refsThere.has(d.name) && !calledAsClone(d.name, ['constprop', 'isra'], refsThere);
            if (
              (absent || changed.has(d.name)) &&
              !inlinedThere &&
              !replaced.has(d.name) &&
              !forKnowledge &&
              !onlySplit
            )
              outOfLine.set(d.name, asClone ? 'noinline' : 'noinline, noclone');
            if (!copy.has(d.name)) {
              copy.set(
                d.name,
                changed.has(d.name)
                  ? 'its source changed'
                  : absent
                    ? 'no out-of-line copy in the running kernel'
                    : inlinedThere
                      ? 'inlined into the new code in the patched build'
                      : "the patched build's compiler knew its body (modref, pure/const): copied, never inlined",
              );
              if (!absent && !changed.has(d.name) && !inlinedThere) knowledge.add(d.name);
            }
            visit(r);
          } else if (!replaced.has(d.name)) {
            externs.set(r, d);
            // Its prototype may name a local type (`ext4_update_sb_callback func`).
            const proto = externDeclaration(d, input.preprocessed, model, input.dataSizes);
            for (const t of d.refs)
              if (
                /^(struct|union|enum|typedef):/.test(t) &&
                new RegExp(`\\b${t.slice(t.indexOf(':') + 1)}\\b`).test(proto)
              )
                visit(t);
          }
          continue;
        }
        if (d?.kind === 'variable') {
          if (d.linkage === 'internal' && d.definition && input.changedData?.has(d.name)) {
            foldedData.add(d.name);
            visit(r);
          } else if (d.linkage === 'internal' && d.definition && input.dataSizes && !input.dataSizes.has(d.name)) {
            // The compiler folded it away (never written, so in effect constant): the running
            // kernel has no instance to share, and a copy holds no state.
            foldedData.add(d.name);
            visit(r);
          } else if (
            d.linkage === 'internal' &&
            d.definition &&
            input.valueTables?.has(d.name) &&
            input.patchedFunctionRefs
          ) {
            tableReads.set(r, d);
          } else if (d.linkage === 'internal' || d.linkage === 'external') {
            externs.set(r, d);
            // Its declaration names its type, which may be local.
            for (const t of d.refs) if (/^(struct|union|enum|typedef):/.test(t)) visit(t);
          }
          continue;
        }
        visit(r);
      }
    } else {
      const m = macros.get(key);
      for (const r of m?.refs ?? []) visit(r);
    }
  };
  for (const name of copy.keys()) visit(`function:${name}`);
  for (const key of input.alsoNeed ?? []) if (defs.has(key)) visit(key);
  // Whether the patched build folded a table is known once every copy is: a table one of their
  // patched bodies references (itself, its .cold part or a clone) is the running kernel's.
  // (Copies made only to be inlined do not count: the module has no out-of-line body of them.)
  const keptOutOfLine = new Set([...replaced, ...knowledge, ...outOfLine.keys()]);
  const referencedThere = new Set<string>();
  for (const [fn, names] of input.patchedFunctionRefs ?? []) {
    if (keptOutOfLine.has(baseName(fn))) for (const n of names) referencedThere.add(n);
  }
  for (const [key, d] of tableReads) {
    if (referencedThere.has(d.name)) {
      externs.set(key, d);
      for (const t of d.refs) if (/^(struct|union|enum|typedef):/.test(t)) visit(t);
    } else {
      foldedData.add(d.name);
      visit(key);
    }
  }
  return {
    entries,
    replaced,
    changed,
    copy,
    need,
    externs,
    foldedData,
    knowledge,
    addressTwins,
    outOfLine,
    headerOutOfLine,
    defs,
    macros,
    headerStatics,
  };
}

/** Why each function is in the module, and what the rest of the fix's code reaches in the running kernel. */
export interface PlanDescription {
  file: string;
  replaced: { symbol: string; object: string; sympos: number; as: string; reasons: string[] }[];
  copied: { name: string; as: string; why: string; keptOutOfLine?: string }[];
  runningKernel: { name: string; kind: string }[];
  copiedData: string[];
  headerFunctionsOutOfLine: { name: string; attributes: string }[];
}

export function describePlan(input: EmitInput, plan: CopyPlan): PlanDescription {
  const prefix = input.prefix ?? PREFIX;
  return {
    file: input.file,
    replaced: plan.entries.map((e) => ({
      symbol: e.symbol,
      object: e.object,
      sympos: e.sympos,
      as: `${prefix}${e.symbol}`,
      reasons: e.reasons.map((r) => `${r.detail} [${r.evidence}]`),
    })),
    copied: [...plan.copy].map(([name, why]) => {
      const attrs =
        plan.knowledge.has(name) && !plan.replaced.has(name)
          ? 'noinline, noclone'
          : plan.replaced.has(name)
            ? undefined
            : plan.outOfLine.get(name);
      return {
        name,
        as: plan.replaced.has(name) ? `${prefix}${name}` : name,
        why,
        ...(attrs ? { keptOutOfLine: attrs } : {}),
      };
    }),
    runningKernel: [...plan.externs.values()]
      .filter((d) => !plan.copy.has(d.name) || plan.addressTwins.has(d.name))
      .map((d) => ({ name: d.name, kind: d.kind }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    copiedData: [...plan.foldedData].sort(),
    headerFunctionsOutOfLine: [...plan.headerOutOfLine]
      .map(([name, attributes]) => ({ name, attributes }))
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
}
