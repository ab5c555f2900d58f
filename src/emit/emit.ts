import type { AnalysisReport, ReplaceEntry } from '../analyze/analyze.js';
import type { TuEntity, TuModel } from '../frontend/model.js';
import { KlpgenError } from '../util/errors.js';
import { RefusedError } from '../util/refusal.js';
import { conditionalContexts, wrapInConditionals, type ConditionalContext } from './conditionals.js';
import { baseFunction, isCloneOf, type CloneKind } from '../gcc/names.js';

/**
 * The livepatch module's C source, in the style of the kernel's
 * samples/livepatch/livepatch-sample.c: the .c file's own preprocessor
 * prologue (its #includes and the #defines before them), then the local
 * definitions the new code needs, copied as written, then declarations of
 * what the running kernel already has (resolved later through KLP
 * relocations), then the new functions, then the klp_* scaffolding.
 */
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

export interface EmittedFunctions {
  /** The new functions, compiled like the kernel's own code (MODULE undefined). */
  source: string;
  /** Definitions of the .c the new code references that stay in the running kernel. */
  externalized: { name: string; kind: string }[];
  /** Functions copied into the module (replaced ones and helpers). */
  copied: { name: string; as: string; why: string }[];
  /** Copies of functions the running kernel has unchanged: an address the module takes of one is the kernel's. */
  kernelAddressed: string[];
  /** Static variables declared static in the module as stand-ins: every reference is the kernel's variable. */
  kernelData: string[];
  /** For each generated line, the original file and line it comes from (0 for generated lines). */
  lineMap: { file: string; line: number }[];
  /** The functions this file installs, with their names in the module. */
  installs: InstalledFunction[];
}

export interface InstalledFunction {
  /** 'vmlinux' or the module's name. */
  object: string;
  symbol: string;
  sympos: number;
  /** Name of the new function in the livepatch module. */
  as: string;
}

export const PREFIX = 'livepatch_';
/** What a module TU's THIS_MODULE becomes: the patched module's __this_module. */
export const TARGET_MODULE = 'klpgen_target_module';
/** `klpgen_addr_NAME` is the running kernel's NAME where the module also has a copy of NAME. */
export const ADDRESS_PREFIX = 'klpgen_addr_';

/** The new functions of one TU of the fix, and what they need from it. */
export function emitFunctions(input: EmitInput): EmittedFunctions {
  const { model, file } = input;
  const prefix = input.prefix ?? PREFIX;
  const lines = input.patchedText.split('\n');
  const own = (e: TuEntity) => e.span.file === file;
  // A function the fix deletes has nothing to be replaced by: its callers changed and are
  // replaced, so the running kernel's copy is no longer called.
  const definedInFix = (name: string) => model.entities.some((e) => e.kind === 'function' && e.definition && e.name === name);
  const entries = input.report.mustReplace.filter((e) => e.file === file && definedInFix(e.symbol));
  if (entries.length === 0) throw new KlpgenError(`${file}: nothing to replace`);
  for (const e of entries) {
    if (e.object !== 'vmlinux' && e.object !== entries[0]?.object) throw new KlpgenError(`${file}: functions in several objects`);
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
    if (e.kind === 'function' && e.definition && !own(e) && e.linkage === 'internal' && !e.flags.noinline && !e.flags.alwaysInline) headerStatics.set(`function:${e.name}`, e);
  }
  /** A function's name without the pieces GCC split or cloned off it (`f.part.0`, `f.cold`, `f.isra.0`). */
  const baseName = baseFunction;
  /** The patched build calls it, or a clone of it (`f.constprop.0`), out of line. */
  const calledAsClone = (name: string, kinds?: CloneKind[], refs: ReadonlySet<string> = input.patchedReferences) => [...refs].some((n) => isCloneOf(n, name, kinds));
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
  const takeLines = (from: number, to: number) => lines.slice(from - 1, to).join('\n');
  /**
   * The last line of what starts at `from`: a definition a macro invocation makes has the
   * invocation's first line as its span, while its arguments may go on (INTERVAL_TREE_DEFINE(...,
   * three lines)): taken up to the closing parenthesis.
   */
  const invocationEnd = (from: number, to: number) => {
    // A definition with its own braces is whole; a macro invocation's span has none.
    if (takeLines(from, to).includes('{')) return to;
    let depth = 0;
    let end = to;
    const count = (l: string) => { for (const c of l.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\/\*.*?\*\/|\/\/.*$/g, '')) depth += c === '(' ? 1 : c === ')' ? -1 : 0; };
    for (let n = from; n <= to; n++) count(lines[n - 1] ?? '');
    while (depth > 0 && end < lines.length) count(lines[end++] ?? '');
    // SYSCALL_DEFINE3(...) { body }: the body belongs to another function the invocation makes
    // (__do_sys_name); the whole invocation is copied whichever of them is needed.
    for (const e of model.entities) if (own(e) && e.span.line === from && e.span.endLine > end) end = e.span.endLine;
    return end;
  };
  const visit = (key: string) => {
    if (need.has(key)) return;
    need.add(key);
    const e = defs.get(key) ?? headerInlines.get(key);
    if (e) {
      // A function a macro invocation makes is copied as the whole invocation (SYSCALL_DEFINE's
      // wrappers and __do_sys_x body): what its other definitions use is needed too.
      const siblings = e.kind === 'function' && own(e) ? model.entities.filter((f) => f !== e && f.kind === 'function' && own(f) && f.definition && f.span.line === e.span.line) : [];
      const keptApart = e.kind === 'function' && own(e) && !replaced.has(e.name) && (!!input.copyForKnowledge?.has(e.name) || outOfLine.has(e.name));
      const refsThere = keptApart ? outOfLineRefs(e.name) : input.patchedReferences;
      for (const r of [...new Set([...e.refs, ...siblings.flatMap((f) => f.refs)])]) {
        const d = defs.get(r);
        const h = d ? undefined : headerStatics.get(r);
        if (h && (input.patchedReferences.has(h.name) || !!input.patchedPieceReferences?.has(h.name) || calledAsClone(h.name))) headerOutOfLine.set(h.name, calledAsClone(h.name) ? 'noinline' : 'noinline, noclone');
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
          const twin = !absent && !inlinedThere && !changed.has(d.name) && !replaced.has(d.name) && !!input.patchedInlined?.has(d.name) &&
            e.kind === 'function' && e.span.file === file && new RegExp(`(?<![\\w.>])${d.name}\\s*\\(`).test(takeLines(e.span.line, e.span.endLine));
          // Inlined through a function pointer the new code also passes on (`devm_add_action_or_reset(dev,
          // f, x)` calls f on failure): copied for the call; its address is made the kernel's in the object.
          const throughPointer = !twin && !absent && !inlinedThere && !changed.has(d.name) && !replaced.has(d.name) && !!input.patchedInlined?.has(d.name) &&
            e.kind === 'function' && e.span.file === file;
          const copyIt = absent || changed.has(d.name) || inlinedThere || forKnowledge || twin || throughPointer;
          if (throughPointer && !forKnowledge && !copy.has(d.name)) {
            copy.set(d.name, 'inlined into the new code in the patched build through a pointer it also passes on: calls reach the copy, its address stays the running kernel\'s');
            visit(r);
          } else if (twin && !forKnowledge && !copy.has(d.name)) {
            copy.set(d.name, 'inlined into the new code in the patched build, which also takes its address: the address stays the running kernel\'s');
            addressTwins.add(d.name);
            externs.set(r, d);
            visit(r);
          } else if (copyIt) {
            // Copied, but called out of line in the patched build: the module's compiler must not
            // inline its one call (GCC inlines a static function called once), nor clone it when
            // the patched build did not.
            // (Called only as its `.part.N` split: the patched build inlined its head, which
            // noinline would forbid; GCC is left to split it the same way.)
            const onlySplit = asClone && !refsThere.has(d.name) && !calledAsClone(d.name, ['constprop', 'isra'], refsThere);
            if ((absent || changed.has(d.name)) && !inlinedThere && !replaced.has(d.name) && !forKnowledge && !onlySplit) outOfLine.set(d.name, asClone ? 'noinline' : 'noinline, noclone');
            if (!copy.has(d.name)) {
              copy.set(d.name, changed.has(d.name) ? 'its source changed' : absent ? 'no out-of-line copy in the running kernel'
                : inlinedThere ? 'inlined into the new code in the patched build'
                  : 'the patched build\'s compiler knew its body (modref, pure/const): copied, never inlined');
              if (!absent && !changed.has(d.name) && !inlinedThere) knowledge.add(d.name);
            }
            visit(r);
          } else if (!replaced.has(d.name)) {
            externs.set(r, d);
            // Its prototype may name a local type (`ext4_update_sb_callback func`).
            const proto = externDeclaration(d, input.preprocessed, model, input.dataSizes);
            for (const t of d.refs) if (/^(struct|union|enum|typedef):/.test(t) && new RegExp(`\\b${t.slice(t.indexOf(':') + 1)}\\b`).test(proto)) visit(t);
          }
          continue;
        }
        if (d?.kind === 'variable') {
          if (d.linkage === 'internal' && d.definition && input.dataSizes && !input.dataSizes.has(d.name)) {
            // The compiler folded it away (never written, so in effect constant): the running
            // kernel has no instance to share, and a copy holds no state.
            foldedData.add(d.name);
            visit(r);
          } else if (d.linkage === 'internal' && d.definition && input.valueTables?.has(d.name) && input.patchedFunctionRefs) {
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

  const out: string[] = [];
  const map: { file: string; line: number }[] = [];
  const emit = (text: string, line = 0) => {
    for (const [i, l] of text.split('\n').entries()) {
      out.push(l);
      map.push({ file: line ? file : '', line: line ? line + i : 0 });
    }
  };

  emit('// SPDX-License-Identifier: GPL-2.0-only');
  emit('/*');
  emit(` * ${input.name}: a livepatch generated by klpgen from`);
  for (const p of input.report.patches) emit(` *   ${p.split('/').pop()}`);
  emit(` * for Debian kernel ${input.report.abi}, from ${file}.`);
  emit(' *');
  emit(' * Replaced functions:');
  for (const e of entries) {
    emit(` *   ${e.symbol}${e.sympos ? ` (sympos ${e.sympos})` : ''}, ${file}:${e.line}`);
    for (const r of e.reasons) emit(` *     - ${r.detail} [${r.evidence}]`);
  }
  emit(' *');
  emit(` * This file is compiled as the kernel compiles the original (MODULE ${input.isModule ? 'defined' : 'undefined'},`);
  emit(` * KBUILD_MODNAME of ${file}), so the new functions match the patched build.`);
  emit(` * The klp_patch that installs them is in ${input.scaffoldingFile}.`);
  emit(' */');
  if (!input.isModule) emit('#undef MODULE');
  emit('#undef KBUILD_MODNAME');
  emit(`#define KBUILD_MODNAME "${input.modName}"`);
  emit('');

  // The .c's preprocessor prologue: its #defines before the first line of C code (pr_fmt, ...)
  // and every #include it performed (from the line markers: inactive #if branches stay out).
  const firstCode = model.entities.filter(own).reduce((m, e) => Math.min(m, e.span.line), Infinity);
  // Includes inside a definition (features.h in an initializer) belong to that definition.
  const inside = (l: number) => model.entities.some((e) => own(e) && e.span.line < l && l <= e.span.endLine);
  // A header included again below the first code is an X-macro table (bpf_types.h under
  // BPF_PROG_TYPE): it expands where it stands. (One included once after a #define may be
  // ordinary: raid1.c's "raid1-10.c" under raid1_log.)
  const headerOf = (l: number) => (lines[l - 1] ?? '').replace(/\s+/g, '');
  const xMacro = (l: number) => l > firstCode && model.includeLines.filter((m) => headerOf(m) === headerOf(l)).length > 1;
  const includes = new Set(model.includeLines.filter((l) => !inside(l) && !xMacro(l)));
  const contexts = conditionalContexts(input.patchedText);
  const contextOf = (line: number) => contexts[line] ?? (contexts[0] as ConditionalContext);
  const top = contextOf(0);
  const prologue: { line: number; text: string; context: ConditionalContext }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    const lineNo = i + 1;
    if (includes.has(lineNo)) {
      // Performed, so active: it needs no condition.
      prologue.push({ line: lineNo, text: l, context: top });
      continue;
    }
    if (lineNo >= firstCode || !/^\s*#\s*(define|undef)\b/.test(l)) continue;
    if (/^\s*#\s*define\s+CREATE_TRACE_POINTS\b/.test(l)) {
      prologue.push({ line: 0, text: '/* CREATE_TRACE_POINTS dropped: the tracepoints live in the running kernel. */', context: top });
      continue;
    }
    // A #define with continuation lines, under the #if groups it was written in; a comment
    // it opens is taken to its end, or it would swallow what follows.
    let end = i;
    while (/\\\s*$/.test(lines[end] as string) && end + 1 < lines.length) end++;
    while (opensComment(lines.slice(i, end + 1).join('\n')) && end + 1 < lines.length) end++;
    prologue.push({ line: lineNo, text: lines.slice(i, end + 1).join('\n'), context: contextOf(lineNo) });
    i = end;
  }
  wrapInConditionals(prologue, (p) => emit(p.text, p.line), (d) => emit(d));
  emit('');
  emit('#include <linux/livepatch.h>');
  emit('');
  if (input.isModule) {
    // The new code acts for the patched module (device and file owners, module_get): its
    // THIS_MODULE is that module's, reached through a KLP relocation, not the livepatch's.
    emit(`extern struct module ${TARGET_MODULE};`);
    emit('#undef THIS_MODULE');
    emit(`#define THIS_MODULE (&${TARGET_MODULE})`);
    emit('');
  }

  // GCC ignores noinline on the kernel's inline functions (gnu_inline): the running kernel's own
  // out-of-line copy is called instead, as the patched build calls its copy.
  const gnuInline = (n: string) => !!headerStatics.get(`function:${n}`)?.attributes.some((a) => a.name === 'gnu_inline');
  const kernelCopies = [...headerOutOfLine].filter(([n, attrs]) => gnuInline(n) && attrs === 'noinline, noclone' && input.originalFunctions.has(n)).map(([n]) => n).sort();
  const attributed = [...headerOutOfLine].filter(([n]) => !gnuInline(n)).sort();
  if (attributed.length) {
    emit('/* Called out of line by the patched build, which has more callers: not inlined here either. */');
    emit('#pragma GCC diagnostic push');
    emit('#pragma GCC diagnostic ignored "-Wattributes"');
    for (const [n, attrs] of attributed) emit(`static __typeof__(${n}) ${n} __attribute__((${attrs.split(', ').map((a) => `__${a}__`).join(', ')}));`);
    emit('#pragma GCC diagnostic pop');
    emit('');
  }
  if (kernelCopies.length) {
    emit('/* Inline functions the patched build calls out of line: the running kernel\'s copies (KLP relocations). */');
    for (const n of kernelCopies) {
      emit(`extern __typeof__(${n}) ${ADDRESS_PREFIX}${n};`);
      emit(`#define ${n} ${ADDRESS_PREFIX}${n}`);
    }
    emit('');
  }

  // Local definitions (types, macros, enums, inline helpers), in source order: C already
  // requires declaration before use, so the original order is a dependency order.
  // Macros keep their #if groups (every variant is copied: the preprocessor picks as it did);
  // definitions from the model are active ones and need none.
  const pieces: {
    line: number; endLine: number; text: string; context: ConditionalContext;
    functionName?: string; refs?: string[]; external?: boolean; declaration?: boolean;
    /** A static variable of the running kernel, declared static here (its references are moved to the kernel's). */
    standIn?: boolean;
    /** Replaced functions whose names a macro makes (`MLX5E_DECLARE_STATS_GRP_OP_NUM_STATS(channels)`): renamed by #defines. */
    macroNamed?: string[];
  }[] = [];
  for (const key of need) {
    if (macros.has(key)) {
      for (const m of model.macros) {
        if (`macro:${m.name}` !== key || m.line < firstCode) continue;
        let endLine = m.endLine;
        while (opensComment(takeLines(m.line, endLine)) && endLine < lines.length) endLine++;
        pieces.push({ line: m.line, endLine, text: takeLines(m.line, endLine), context: contextOf(m.line) });
      }
    }
    const e = defs.get(key);
    if (!e || e.kind === 'function' || (e.kind === 'variable' && !foldedData.has(e.name))) continue;
    const target = e.kind !== 'enumerator' ? e : (e.parent ? defs.get(e.parent) : undefined) ?? anonymousEnumAround(e, lines) ?? e;
    // (An anonymous enum, found around its first enumerator, may start above the first entity.)
    if (target.span.line < firstCode && target.name !== '') continue;
    if (pieces.some((p) => p.line === target.span.line)) continue;
    const endLine = invocationEnd(target.span.line, target.span.endLine);
    const text = takeLines(target.span.line, endLine);
    pieces.push({ line: target.span.line, endLine, text: target.kind === 'typedef' || target.kind === 'variable' ? text : typeOnly(text), context: top });
  }
  // A type defined inside another (`struct crndstate` within the struct that uses it, an enum
  // within a struct) comes with the outer one: copied on its own as well, it would be defined twice.
  const nested = pieces.filter((p) => pieces.some((q) => q !== p && q.line <= p.line && p.endLine <= q.endLine && (q.line < p.line || p.endLine < q.endLine)));
  for (const p of nested) pieces.splice(pieces.indexOf(p), 1);
  const renamed = (text: string) => renameIdentifiers(text, replaced, prefix);
  const local = input.linkage !== 'global';
  const calledInModule = (name: string) => [...copy.keys()].some((o) => o !== name && !!defs.get(`function:${o}`)?.refs.includes(`function:${name}`));
  // What the patched build's compiler learnt of a static function from its callers holds here
  // when the module has all of them (the same facts); with fewer, it would learn more.
  const allCallersHere = (name: string) => {
    const callers = [...(input.patchedFunctionRefs ?? [])].filter(([fn, refs]) => refs.has(name) && baseName(fn) !== name).map(([fn]) => baseName(fn));
    return callers.length > 0 && callers.every((c) => copy.has(c));
  };
  for (const [name] of copy) {
    const e = defs.get(`function:${name}`);
    if (!e) {
      const inHeader = model.entities.find((h) => h.kind === 'function' && h.definition && h.name === name);
      if (inHeader) {
        // Copying it would define it twice (the header is #included); a wrapper would not be its code.
        throw new RefusedError([{ kind: 'header-function', function: name, file: inHeader.span.file, line: inHeader.span.line, reason: `${name} must be replaced in ${file}, but it is defined in a header: out-of-line copies of header functions are not livepatched yet` }]);
      }
      throw new KlpgenError(`${file}: no definition of ${name} in the patched source`);
    }
    const endLine = invocationEnd(e.span.line, e.span.endLine);
    let text = takeLines(e.span.line, endLine);
    text = renamed(text);
    text = renameAddressUses(text, addressTwins);
    // (Attributes and asm go on the definition's first line: its #line numbers the lines below.)
    if (replaced.has(name)) text = local && e.linkage === 'internal' && calledInModule(name) && allCallersHere(name) ? `__asm__(".globl ${prefix}${name}"); ${text}` : makeGlobal(text);
    // Kept out of line: `noinline` goes on a declaration ahead of the definition, where GCC
    // honours it even for the kernel's `inline` (gnu_inline) functions and for a definition a
    // macro invocation makes; on the definition itself, gnu_inline would win.
    let keepOutOfLine: string | undefined;
    let isStatic = e.linkage === 'internal';
    const ownHead = new RegExp(`\\b${name}\\s*\\(`).test(text.slice(0, Math.max(0, text.indexOf('{'))));
    if (knowledge.has(name) && !replaced.has(name)) {
      keepOutOfLine = 'noinline, noclone';
      // Global when the module's few callers would teach the compiler more than the patched build knew.
      if (ownHead && (!local || (input.linkage !== 'static' && !allCallersHere(name)))) { text = withoutStatic(text); isStatic = false; }
    } else if (outOfLine.has(name) && !replaced.has(name)) keepOutOfLine = outOfLine.get(name);
    if (keepOutOfLine) {
      const proto = externDeclaration(e, input.preprocessed, model, input.dataSizes).replace(/;$/, '');
      pieces.push({
        line: e.span.line - 0.3, endLine: e.span.line, declaration: true, context: top,
        text: ['#pragma GCC diagnostic push', '#pragma GCC diagnostic ignored "-Wattributes"',
          `${isStatic ? 'static ' : ''}${proto} __attribute__((${keepOutOfLine.split(', ').map((a) => `__${a}__`).join(', ')}));`, '#pragma GCC diagnostic pop'].join('\n'),
      });
    }
    const open = text.indexOf('{');
    const macroNamed = replaced.has(name) && !new RegExp(`\\b${prefix}${name}\\b`).test(open >= 0 ? text.slice(0, open) : text);
    // One macro invocation can define several functions (pci-sysfs' resource##n##_resize_show
    // and _store): it is copied once.
    const same = pieces.find((p) => p.functionName !== undefined && p.line === e.span.line);
    if (same) {
      if (macroNamed) same.macroNamed = [...(same.macroNamed ?? []), name];
      same.refs = [...new Set([...(same.refs ?? []), ...e.refs])];
      continue;
    }
    // A macro invocation that defines data and functions (INTERVAL_TREE_DEFINE): one copy, as a function's.
    const dataThere = pieces.findIndex((p) => p.functionName === undefined && !p.external && p.line === e.span.line && p.endLine === endLine);
    if (dataThere >= 0) pieces.splice(dataThere, 1);
    pieces.push({ line: e.span.line, endLine, text, context: top, functionName: name, refs: e.refs, macroNamed: macroNamed ? [name] : undefined });
  }
  pieces.sort((a, b) => a.line - b.line);

  // What stays in the running kernel is declared where the .c has it, or just above its first
  // user when the .c declares it ahead: after the local types its declaration names.
  const externalized: { name: string; kind: string }[] = kernelCopies.map((n) => ({ name: `${ADDRESS_PREFIX}${n}`, kind: 'function' }));
  const kernelData: string[] = [];
  for (const [key, d] of [...externs].sort((a, b) => a[1].span.line - b[1].span.line)) {
    // Defined by a macro invocation the module copies (SYSCALL_DEFINE makes __do_sys_x too).
    // (A twin's declaration is another name's: the kernel's copy, klpgen_addr_f.)
    const twin = addressTwins.has(d.name);
    if (!twin && d.kind === 'function' && d.span.file === file && pieces.some((p) => p.functionName !== undefined && p.line === d.span.line)) continue;
    const users = pieces.filter((p) => p.functionName !== undefined && (p.refs ?? []).includes(key)).map((p) => p.line - 0.5);
    let decl = externDeclaration(d, input.preprocessed, model, input.dataSizes);
    if (twin) decl = decl.replace(new RegExp(`\\b${d.name}(?=\\s*\\()`), `${ADDRESS_PREFIX}${d.name}`);
    // A static variable, declared static as the patched build's compiler saw it (only this
    // file's code can reach it): the module's instance is a stand-in whose every reference is
    // moved to the running kernel's variable once the module is built. `used`, because the
    // module may only read it: its compiler must not take the stand-in's zeros for constants.
    const section = input.dataSections?.get(d.name);
    const standIn = local && d.kind === 'variable' && d.linkage === 'internal' && d.definition && !twin && section !== undefined &&
      !/^\.(rodata|data\.\.percpu|data\.once)/.test(section) && /^extern [^\n]*;$/.test(decl) && !/\[\s*\]/.test(decl) && !/__section__|__percpu/.test(decl);
    if (standIn) {
      pieces.push({ line: Math.min(d.span.line, ...users), endLine: d.span.line, text: decl.replace(/^extern /, 'static ').replace(/;$/, ' __attribute__((__used__));'), context: top, external: true, standIn: true });
      kernelData.push(d.name);
      continue;
    }
    pieces.push({ line: Math.min(d.span.line, ...users), endLine: d.span.line, text: decl, context: top, external: true });
    externalized.push({ name: twin ? `${ADDRESS_PREFIX}${d.name}` : d.name, kind: d.kind });
  }
  pieces.sort((a, b) => a.line - b.line);
  // Copied functions used above their definition: the .c declares them ahead (or relies on a
  // declaration in code that is not copied), so the module does too.
  const copiedAt = new Map<string, { line: number; head: string }>();
  for (const p of pieces) {
    const name = p.functionName;
    if (name === undefined) continue;
    const as = replaced.has(name) ? `${prefix}${name}` : name;
    const open = p.text.indexOf('{');
    const head = (open >= 0 ? p.text.slice(0, open) : '').trim();
    if (new RegExp(`\\b${as}\\s*\\(`).test(head)) copiedAt.set(name, { line: p.line, head });
  }
  for (const [name, at] of copiedAt) {
    const users = pieces.filter((p) => p.functionName !== undefined && p.line < at.line && (p.refs ?? []).includes(`function:${name}`));
    if (users.length === 0) continue;
    // Used above its definition: declared just above its first user, as the .c does somewhere.
    pieces.push({ line: Math.min(...users.map((p) => p.line)) - 0.25, endLine: at.line, text: `${at.head};`, context: top, declaration: true });
  }
  pieces.sort((a, b) => a.line - b.line);
  let previous: (typeof pieces)[number] | undefined;
  wrapInConditionals(pieces, (p) => {
    if (p.external) {
      if (!previous?.external || !!previous.standIn !== !!p.standIn) {
        emit(p.standIn ? '/* In the running kernel, static as the patched build saw it: after the build, KLP relocations to the kernel\'s. */'
          : '/* In the running kernel: reached through KLP relocations. */');
      }
      emit(p.text, Math.ceil(p.endLine));
    } else if (p.declaration) {
      if (previous?.external || previous?.declaration) emit('');
      emit(p.text, p.endLine);
    } else if (p.functionName !== undefined) {
      if (previous?.external || previous?.declaration) emit('');
      // The original's line numbers and file name, so __LINE__ and __FILE__ (WARN_ON, dev_dbg
      // formats) are the patched build's; then back to this file's own numbering.
      // A name pasted together by a macro is rescanned: a #define renames it where the text cannot.
      for (const n of p.macroNamed ?? []) emit(`#define ${n} ${prefix}${n}`);
      emit(`#line ${p.line} "${file}"`);
      emit(p.text, p.line);
      for (const n of p.macroNamed ?? []) emit(`#undef ${n}`);
      // Made static by the macro, and called by nothing here: kept, and global for the scaffolding.
      for (const n of (p.macroNamed ?? []).filter((m) => defs.get(`function:${m}`)?.linkage === 'internal')) {
        emit(`__asm__(".globl ${prefix}${n}");`);
        emit(`static __typeof__(&${prefix}${n}) klpgen_keep_${n} __attribute__((__used__)) = ${prefix}${n};`);
      }
      emit(`#line ${out.length + 2} "${input.cName ?? file}"`);
      emit('');
    } else {
      if (previous?.external || previous?.declaration) emit('');
      emit(p.text, p.line);
      emit('');
    }
    previous = p;
  }, (d) => emit(d));
  if (previous?.external || previous?.declaration) emit('');

  return {
    source: `${out.join('\n')}\n`,
    externalized,
    copied: [...copy].map(([name, why]) => ({ name, as: replaced.has(name) ? `${prefix}${name}` : name, why })),
    kernelData: kernelData.sort(),
    kernelAddressed: [...copy.keys()].filter((n) => !replaced.has(n) && !changed.has(n) && input.originalFunctions.has(n)).sort(),
    lineMap: map,
    installs: entries.map((e) => ({ object: e.object, symbol: e.symbol, sympos: e.sympos, as: `${prefix}${e.symbol}` })),
  };
}

/**
 * The `enum { ... };` an enumerator of an anonymous enum is written in, found
 * in the source text: the model has no entity for the enum itself.
 */
function anonymousEnumAround(e: TuEntity, lines: string[]): TuEntity | undefined {
  let start = e.span.line - 1;
  while (start >= 0 && !/\benum\b/.test(lines[start] as string)) start--;
  if (start < 0) return undefined;
  let depth = 0;
  let seen = false;
  for (let i = start; i < lines.length; i++) {
    for (const c of lines[i] as string) {
      if (c === '{') { depth++; seen = true; }
      if (c === '}') depth--;
    }
    if (seen && depth === 0) {
      if (i + 1 < e.span.line) return undefined;
      return { ...e, kind: 'enum', name: '', span: { ...e.span, line: start + 1, endLine: i + 1 } };
    }
  }
  return undefined;
}

/** Does this text leave a block comment open (strings and // comments aside)? */
export function opensComment(text: string): boolean {
  const rest = text.replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g, '""').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
  return rest.includes('/*');
}

/** Symbol namespaces a .c imports (`MODULE_IMPORT_NS(IIO_ST_SENSORS);`). */
export function importedNamespaces(text: string): string[] {
  return [...text.matchAll(/^\s*MODULE_IMPORT_NS\(\s*([A-Za-z_]\w*)\s*\)/gm)].map((m) => m[1] as string);
}

/**
 * The klp_* scaffolding, as samples/livepatch/livepatch-sample.c, in a module
 * file of its own: one klp_func array per klp_object (vmlinux first, then
 * the modules by name), each function with its sympos where it is not unique.
 */
export function emitScaffolding(
  name: string, functionFiles: string[], installs: InstalledFunction[], replace: boolean, namespaces: string[] = [],
): string {
  const objects = [...new Set(installs.map((f) => f.object))]
    .sort((a, b) => (a === 'vmlinux' ? -1 : b === 'vmlinux' ? 1 : a.localeCompare(b)));
  const byName = (a: InstalledFunction, b: InstalledFunction) => a.symbol.localeCompare(b.symbol) || a.sympos - b.sympos;
  const arrayName = (object: string) => (objects.length === 1 ? 'funcs' : `funcs_${object.replace(/[^A-Za-z0-9_]/g, '_')}`);
  const klp: string[] = [];
  const k = (l: string) => klp.push(l);
  k('// SPDX-License-Identifier: GPL-2.0-only');
  k('/*');
  k(` * ${name}: installs the new functions of ${functionFiles.join(', ')}`);
  k(` * (see ${functionFiles.length === 1 ? 'that file' : 'those files'} for what they replace and why).`);
  k(' */');
  k('#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt');
  k('');
  k('#include <linux/module.h>');
  k('#include <linux/kernel.h>');
  k('#include <linux/livepatch.h>');
  k('');
  k(`/* Defined in the other file${functionFiles.length === 1 ? '' : 's'}; only their addresses are used here. */`);
  for (const f of [...installs].sort((a, b) => a.as.localeCompare(b.as))) k(`void ${f.as}(void);`);
  for (const object of objects) {
    k('');
    k(`static struct klp_func ${arrayName(object)}[] = {`);
    for (const f of installs.filter((i) => i.object === object).sort(byName)) {
      k('\t{');
      k(`\t\t.old_name = "${f.symbol}",`);
      k(`\t\t.new_func = ${f.as},`);
      if (f.sympos) k(`\t\t.old_sympos = ${f.sympos},`);
      k('\t},');
    }
    k('\t{ }');
    k('};');
  }
  k('');
  k('static struct klp_object objs[] = {');
  objects.forEach((object, i) => {
    k(i === 0 ? '\t{' : '\t}, {');
    k(object === 'vmlinux' ? '\t\t/* name being NULL means vmlinux */' : `\t\t.name = "${object}",`);
    k(`\t\t.funcs = ${arrayName(object)},`);
  });
  k('\t}, { }');
  k('};');
  k('');
  k('static struct klp_patch patch = {');
  k('\t.mod = THIS_MODULE,');
  k('\t.objs = objs,');
  k(`\t.replace = ${replace ? 'true' : 'false'},`);
  k('};');
  k('');
  k('static int livepatch_init(void)');
  k('{');
  k('\treturn klp_enable_patch(&patch);');
  k('}');
  k('');
  k('static void livepatch_exit(void)');
  k('{');
  k('}');
  k('');
  k('module_init(livepatch_init);');
  k('module_exit(livepatch_exit);');
  k('MODULE_LICENSE("GPL");');
  k('MODULE_INFO(livepatch, "Y");');
  // The new code uses exports of these symbol namespaces, as the original files do.
  for (const ns of [...new Set(namespaces)].sort()) k(`MODULE_IMPORT_NS(${ns});`);

  return `${klp.join('\n')}\n`;
}

/** Uses of `names` that are not calls (`devm_add_action(dev, f, x)`, `&f`) renamed to the running kernel's copy. */
export function renameAddressUses(text: string, names: ReadonlySet<string>): string {
  if (names.size === 0) return text;
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|(?<![\w.]|->\s*|\b(?:struct|union|enum)\s+)([A-Za-z_]\w*)(?!\s*\(|\w)/g, (m, id: string | undefined) => {
    if (id !== undefined && names.has(id)) return `${ADDRESS_PREFIX}${id}`;
    return m;
  });
}

/**
 * Rename references to replaced functions to their new names, outside strings
 * and comments; a struct tag or a member of the same name is not one.
 */
export function renameIdentifiers(text: string, names: Set<string>, prefix = PREFIX): string {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|(?<![\w.]|->\s*|\b(?:struct|union|enum)\s+)([A-Za-z_]\w*)/g, (m, id: string | undefined) => {
    if (id !== undefined && names.has(id)) return `${prefix}${id}`;
    return m;
  });
}

/** A definition made global (a knowledge copy the compiler must not specialise for the module's few callers). */
function withoutStatic(text: string): string {
  const open = text.indexOf('{');
  const head = open >= 0 ? text.slice(0, open) : text;
  return `${head.replace(/\bstatic\s+/, '')}${open >= 0 ? text.slice(open) : ''}`;
}

/** A new function is referenced from the scaffolding file: it must not be static. */
function makeGlobal(text: string): string {
  const open = text.indexOf('{');
  const head = open >= 0 ? text.slice(0, open) : text;
  return head.replace(/\bstatic\s+/, '').replace(/\b(inline|__always_inline|noinline)\s+/g, '') + (open >= 0 ? text.slice(open) : '');
}

/**
 * `extern` declaration of a definition that stays in the running kernel, from
 * the preprocessed text: definitions made by macros (DEFINE_SPINLOCK,
 * DEFINE_STATIC_CALL, SYSCALL_DEFINE) have no declaration in the source.
 */
function externDeclaration(d: TuEntity, preprocessed: string, model: TuModel, sizes: ReadonlyMap<string, number> | undefined): string {
  const text = preprocessed.slice(d.iSpan[0], d.iSpan[1]).replace(/^#.*$/gm, ' ');
  if (d.kind === 'function') {
    const open = text.indexOf('{');
    const head = (open >= 0 ? text.slice(0, open) : text.replace(/;\s*$/, '')).replace(/\s+/g, ' ').trim();
    return `${head.replace(/\bstatic\s+/, '').replace(/\b(inline|__inline__|__inline)\s+/g, '')};`;
  }
  const eq = findInitializer(text);
  // `static struct tag { ... } *x;`: the type is copied on its own, the declaration names its tag.
  const decl = withoutTaggedBodies(eq >= 0 ? text.slice(0, eq) : text.replace(/;\s*$/, '')).replace(/\s+/g, ' ').trim();
  const extern = `extern ${decl.replace(/^(?:static|extern)\s+/, '')};`;
  // An array sized by its initializer (`x[] = {...}`, or a typedef of an array of unknown bound):
  // the declaration alone has no size, which ARRAY_SIZE() needs. The running kernel's object
  // has it: a second declaration completes the type.
  const arrayTypedef = d.refs.some((r) => r.startsWith('typedef:') && model.entities.some((t) => t.kind === 'typedef' && `typedef:${t.name}` === r &&
    /\[\s*\]\s*;?\s*$/.test(preprocessed.slice(t.iSpan[0], t.iSpan[1]))));
  const size = sizes?.get(d.name);
  // (`x[] __attribute__((__section__(".data..read_mostly")))`: the bound is before the attributes.)
  if (size && (/\[\s*\](\s*__attribute__\s*\(\(.*\)\))*$/.test(decl) || arrayTypedef)) {
    return `${extern}\nextern typeof(${d.name}[0]) ${d.name}[${size} / sizeof(${d.name}[0])];`;
  }
  return extern;
}

/** The end of the brace group opening at `open`. */
function closingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

/**
 * A struct, union or enum definition that also declares variables (`static struct
 * res_config { ... } *res_cfg;`) copied as the type alone: the variables stay the
 * running kernel's. A typedef keeps its text (the typedef is the point).
 */
export function typeOnly(text: string): string {
  const m = /\b(struct|union|enum)\b[^{;]*\{/.exec(text);
  if (!m || /^\s*typedef\b/.test(text.slice(0, m.index))) return text;
  const close = closingBrace(text, m.index + m[0].length - 1);
  const rest = text.slice(close + 1);
  // `} __packed;` is the type's own attribute, not a variable: left whole.
  if (close < 0 || /^\s*;\s*$/.test(rest) || /\b__\w+/.test(rest.split(';')[0] as string)) return text;
  return `${text.slice(m.index, close + 1)};`;
}

/** `struct tag { ... }` as `struct tag` (an anonymous one keeps its body: it has no other name). */
export function withoutTaggedBodies(decl: string): string {
  let out = decl;
  for (let m = /\b(struct|union|enum)\s+(\w+)\s*\{/.exec(out); m; m = /\b(struct|union|enum)\s+(\w+)\s*\{/.exec(out)) {
    const close = closingBrace(out, m.index + m[0].length - 1);
    if (close < 0) break;
    out = `${out.slice(0, m.index)}${m[1]} ${m[2]}${out.slice(close + 1)}`;
  }
  return out;
}

function findInitializer(text: string): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === '=' && depth === 0 && text[i + 1] !== '=' && !'!<>='.includes(text[i - 1] ?? '')) return i;
  }
  return -1;
}

