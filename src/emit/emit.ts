import { conditionalContexts, wrapInConditionals, type ConditionalContext } from './conditionals.js';
import { describePlan, planFunctions, type CopyPlan, type EmitInput, type PlanDescription } from './plan.js';
import {
  ADDRESS_PREFIX,
  anonymousEnumAround,
  externDeclaration,
  makeGlobal,
  opensComment,
  PREFIX,
  renameAddressUses,
  renameIdentifiers,
  SourceText,
  TARGET_MODULE,
  typeOnly,
  withoutStatic,
} from './text.js';
import { baseFunction } from '../gcc/names.js';
import { KlpgenError } from '../util/errors.js';
import { RefusedError } from '../util/refusal.js';

export type { EmitInput } from './plan.js';
export {
  ADDRESS_PREFIX,
  opensComment,
  PREFIX,
  renameAddressUses,
  renameIdentifiers,
  TARGET_MODULE,
  typeOnly,
  withoutTaggedBodies,
} from './text.js';

/**
 * The livepatch module's C source, in the style of the kernel's
 * samples/livepatch/livepatch-sample.c: the .c file's own preprocessor
 * prologue (its #includes and the #defines before them), then the local
 * definitions the new code needs, copied as written, then declarations of
 * what the running kernel already has (resolved later through KLP
 * relocations), then the new functions, then the klp_* scaffolding.
 * What goes in is decided first (plan.ts); the renderers below only write it.
 */

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
  /** The plan the text was rendered from, for the work dir's plan.json. */
  plan: PlanDescription;
}

export interface InstalledFunction {
  /** 'vmlinux' or the module's name. */
  object: string;
  symbol: string;
  sympos: number;
  /** Name of the new function in the livepatch module. */
  as: string;
}

/** The generated text, with the original file and line of each line (0: generated). */
class Emitter {
  readonly out: string[] = [];
  readonly map: { file: string; line: number }[] = [];

  constructor(private readonly file: string) {}

  emit(text: string, line = 0): void {
    for (const [i, l] of text.split('\n').entries()) {
      this.out.push(l);
      this.map.push({ file: line ? this.file : '', line: line ? line + i : 0 });
    }
  }
}

/** Where the .c's code starts, and the #if groups each of its lines is under. */
interface SourceContext {
  firstCode: number;
  contextOf: (line: number) => ConditionalContext;
  top: ConditionalContext;
}

/** One piece of the file's body: a copied definition, a declaration, or a running kernel's name. */
interface Piece {
  line: number;
  endLine: number;
  text: string;
  context: ConditionalContext;
  functionName?: string;
  refs?: string[];
  external?: boolean;
  declaration?: boolean;
  /** A static variable of the running kernel, declared static here (its references are moved to the kernel's). */
  standIn?: boolean;
  /** Replaced functions whose names a macro makes (`MLX5E_DECLARE_STATS_GRP_OP_NUM_STATS(channels)`): renamed by #defines. */
  macroNamed?: string[];
}

/** The new functions of one TU of the fix, and what they need from it. */
export function emitFunctions(input: EmitInput): EmittedFunctions {
  const src = new SourceText(input.patchedText, input.model, input.file);
  const plan = planFunctions(input, src);
  const own = (e: { span: { file: string } }) => e.span.file === input.file;
  const contexts = conditionalContexts(input.patchedText);
  const contextOf = (line: number) => contexts[line] ?? (contexts[0] as ConditionalContext);
  const ctx: SourceContext = {
    firstCode: input.model.entities.filter(own).reduce((m, e) => Math.min(m, e.span.line), Infinity),
    contextOf,
    top: contextOf(0),
  };
  const out = new Emitter(input.file);
  renderBanner(out, input, plan);
  renderPrologue(out, input, src, ctx);
  renderTargetModule(out, input);
  const kernelCopies = renderHeaderFunctionsOutOfLine(out, input, plan);
  const body = layOutBody(input, plan, src, ctx, kernelCopies);
  renderBody(out, input, body.pieces, plan.defs);
  const prefix = input.prefix ?? PREFIX;
  const { copy, replaced, changed, entries } = plan;
  return {
    source: `${out.out.join('\n')}\n`,
    externalized: body.externalized,
    copied: [...copy].map(([name, why]) => ({ name, as: replaced.has(name) ? `${prefix}${name}` : name, why })),
    kernelData: body.kernelData.sort(),
    kernelAddressed: [...copy.keys()]
      .filter((n) => !replaced.has(n) && !changed.has(n) && input.originalFunctions.has(n))
      .sort(),
    lineMap: out.map,
    installs: entries.map((e) => ({
      object: e.object,
      symbol: e.symbol,
      sympos: e.sympos,
      as: `${prefix}${e.symbol}`,
    })),
    plan: describePlan(input, plan),
  };
}

/** What the file replaces and why, and how it is compiled. */
function renderBanner(out: Emitter, input: EmitInput, plan: CopyPlan): void {
  const { file } = input;
  const { entries } = plan;
  const emit = (text: string, line = 0) => out.emit(text, line);

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
  emit(
    ` * This file is compiled as the kernel compiles the original (MODULE ${input.isModule ? 'defined' : 'undefined'},`,
  );
  emit(` * KBUILD_MODNAME of ${file}), so the new functions match the patched build.`);
  emit(` * The klp_patch that installs them is in ${input.scaffoldingFile}.`);
  emit(' */');
  if (!input.isModule) emit('#undef MODULE');
  emit('#undef KBUILD_MODNAME');
  emit(`#define KBUILD_MODNAME "${input.modName}"`);
  emit('');
}

/**
 * The .c's preprocessor prologue: its #defines before the first line of C code (pr_fmt, ...)
 * and every #include it performed (from the line markers: inactive #if branches stay out).
 */
function renderPrologue(out: Emitter, input: EmitInput, src: SourceText, ctx: SourceContext): void {
  const { model } = input;
  const { lines } = src;
  const { firstCode, contextOf, top } = ctx;
  const own = (e: { span: { file: string } }) => e.span.file === input.file;
  const emit = (text: string, line = 0) => out.emit(text, line);

  // Includes inside a definition (features.h in an initializer) belong to that definition.
  const inside = (l: number) => model.entities.some((e) => own(e) && e.span.line < l && l <= e.span.endLine);
  // A header included again below the first code is an X-macro table (bpf_types.h under
  // BPF_PROG_TYPE): it expands where it stands. (One included once after a #define may be
  // ordinary: raid1.c's "raid1-10.c" under raid1_log.)
  const headerOf = (l: number) => (lines[l - 1] ?? '').replace(/\s+/g, '');
  const xMacro = (l: number) =>
    l > firstCode && model.includeLines.filter((m) => headerOf(m) === headerOf(l)).length > 1;
  const includes = new Set(model.includeLines.filter((l) => !inside(l) && !xMacro(l)));
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
      prologue.push({
        line: 0,
        text: '/* CREATE_TRACE_POINTS dropped: the tracepoints live in the running kernel. */',
        context: top,
      });
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
  wrapInConditionals(
    prologue,
    (p) => emit(p.text, p.line),
    (d) => emit(d),
  );
  emit('');
  emit('#include <linux/livepatch.h>');
  emit('');
}

function renderTargetModule(out: Emitter, input: EmitInput): void {
  const emit = (text: string) => out.emit(text);

  if (input.isModule) {
    // The new code acts for the patched module (device and file owners, module_get): its
    // THIS_MODULE is that module's, reached through a KLP relocation, not the livepatch's.
    emit(`extern struct module ${TARGET_MODULE};`);
    emit('#undef THIS_MODULE');
    emit(`#define THIS_MODULE (&${TARGET_MODULE})`);
    emit('');
  }
}

/**
 * Static functions of headers the patched build calls out of line: declared so here too, or
 * (gnu_inline ones) the running kernel's copies. Returns those copies' names.
 */
function renderHeaderFunctionsOutOfLine(out: Emitter, input: EmitInput, plan: CopyPlan): string[] {
  const { headerStatics, headerOutOfLine } = plan;
  const emit = (text: string) => out.emit(text);

  // GCC ignores noinline on the kernel's inline functions (gnu_inline): the running kernel's own
  // out-of-line copy is called instead, as the patched build calls its copy.
  const gnuInline = (n: string) =>
    !!headerStatics.get(`function:${n}`)?.attributes.some((a) => a.name === 'gnu_inline');
  const kernelCopies = [...headerOutOfLine]
    .filter(([n, attrs]) => gnuInline(n) && attrs === 'noinline, noclone' && input.originalFunctions.has(n))
    .map(([n]) => n)
    .sort();
  const attributed = [...headerOutOfLine].filter(([n]) => !gnuInline(n)).sort();
  if (attributed.length) {
    emit('/* Called out of line by the patched build, which has more callers: not inlined here either. */');
    emit('#pragma GCC diagnostic push');
    emit('#pragma GCC diagnostic ignored "-Wattributes"');
    for (const [n, attrs] of attributed)
      emit(
        `static __typeof__(${n}) ${n} __attribute__((${attrs
          .split(', ')
          .map((a) => `__${a}__`)
          .join(', ')}));`,
      );
    emit('#pragma GCC diagnostic pop');
    emit('');
  }
  if (kernelCopies.length) {
    emit("/* Inline functions the patched build calls out of line: the running kernel's copies (KLP relocations). */");
    for (const n of kernelCopies) {
      emit(`extern __typeof__(${n}) ${ADDRESS_PREFIX}${n};`);
      emit(`#define ${n} ${ADDRESS_PREFIX}${n}`);
    }
    emit('');
  }
  return kernelCopies;
}

/**
 * The file's body in source order: local definitions, the copied functions (renamed, kept out of
 * line where the patched build did), declarations of what stays the running kernel's.
 */
function layOutBody(
  input: EmitInput,
  plan: CopyPlan,
  src: SourceText,
  ctx: SourceContext,
  kernelCopies: string[],
): { pieces: Piece[]; externalized: { name: string; kind: string }[]; kernelData: string[] } {
  const { model, file } = input;
  const { lines } = src;
  const { firstCode, contextOf, top } = ctx;
  const { need, macros, defs, foldedData, replaced, copy, knowledge, outOfLine, addressTwins, externs } = plan;
  const prefix = input.prefix ?? PREFIX;
  const takeLines = (from: number, to: number) => src.take(from, to);
  const invocationEnd = (from: number, to: number) => src.invocationEnd(from, to);
  const baseName = baseFunction;

  // Local definitions (types, macros, enums, inline helpers), in source order: C already
  // requires declaration before use, so the original order is a dependency order.
  // Macros keep their #if groups (every variant is copied: the preprocessor picks as it did);
  // definitions from the model are active ones and need none.
  const pieces: Piece[] = [];
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
    const target =
      e.kind !== 'enumerator' ? e : ((e.parent ? defs.get(e.parent) : undefined) ?? anonymousEnumAround(e, lines) ?? e);
    // (An anonymous enum, found around its first enumerator, may start above the first entity.)
    if (target.span.line < firstCode && target.name !== '') continue;
    if (pieces.some((p) => p.line === target.span.line)) continue;
    const endLine = invocationEnd(target.span.line, target.span.endLine);
    const text = takeLines(target.span.line, endLine);
    pieces.push({
      line: target.span.line,
      endLine,
      text: target.kind === 'typedef' || target.kind === 'variable' ? text : typeOnly(text),
      context: top,
    });
  }
  // A type defined inside another (`struct crndstate` within the struct that uses it, an enum
  // within a struct) comes with the outer one: copied on its own as well, it would be defined twice.
  const nested = pieces.filter((p) =>
    pieces.some(
      (q) => q !== p && q.line <= p.line && p.endLine <= q.endLine && (q.line < p.line || p.endLine < q.endLine),
    ),
  );
  for (const p of nested) pieces.splice(pieces.indexOf(p), 1);
  const renamed = (text: string) => renameIdentifiers(text, replaced, prefix);
  const local = input.linkage !== 'global';
  const calledInModule = (name: string) =>
    [...copy.keys()].some((o) => o !== name && !!defs.get(`function:${o}`)?.refs.includes(`function:${name}`));
  // What the patched build's compiler learnt of a static function from its callers holds here
  // when the module has all of them (the same facts); with fewer, it would learn more.
  const allCallersHere = (name: string) => {
    const callers = [...(input.patchedFunctionRefs ?? [])]
      .filter(([fn, refs]) => refs.has(name) && baseName(fn) !== name)
      .map(([fn]) => baseName(fn));
    return callers.length > 0 && callers.every((c) => copy.has(c));
  };
  for (const [name] of copy) {
    const e = defs.get(`function:${name}`);
    if (!e) {
      const inHeader = model.entities.find((h) => h.kind === 'function' && h.definition && h.name === name);
      if (inHeader) {
        // Copying it would define it twice (the header is #included); a wrapper would not be its code.
        throw new RefusedError([
          {
            kind: 'header-function',
            function: name,
            file: inHeader.span.file,
            line: inHeader.span.line,
            reason: `${name} must be replaced in ${file}, but it is defined in a header: out-of-line copies of header functions are not livepatched yet`,
          },
        ]);
      }
      throw new KlpgenError(`${file}: no definition of ${name} in the patched source`);
    }
    const endLine = invocationEnd(e.span.line, e.span.endLine);
    let text = takeLines(e.span.line, endLine);
    text = renamed(text);
    text = renameAddressUses(text, addressTwins);
    // (Attributes and asm go on the definition's first line: its #line numbers the lines below.)
    if (replaced.has(name))
      text =
        local && e.linkage === 'internal' && calledInModule(name) && allCallersHere(name)
          ? `__asm__(".globl ${prefix}${name}"); ${text}`
          : makeGlobal(text);
    // Kept out of line: `noinline` goes on a declaration ahead of the definition, where GCC
    // honours it even for the kernel's `inline` (gnu_inline) functions and for a definition a
    // macro invocation makes; on the definition itself, gnu_inline would win.
    let keepOutOfLine: string | undefined;
    let isStatic = e.linkage === 'internal';
    const ownHead = new RegExp(`\\b${name}\\s*\\(`).test(text.slice(0, Math.max(0, text.indexOf('{'))));
    if (knowledge.has(name) && !replaced.has(name)) {
      keepOutOfLine = 'noinline, noclone';
      // Global when the module's few callers would teach the compiler more than the patched build knew.
      if (ownHead && (!local || (input.linkage !== 'static' && !allCallersHere(name)))) {
        text = withoutStatic(text);
        isStatic = false;
      }
    } else if (outOfLine.has(name) && !replaced.has(name)) keepOutOfLine = outOfLine.get(name);
    if (keepOutOfLine) {
      const proto = externDeclaration(e, input.preprocessed, model, input.dataSizes).replace(/;$/, '');
      pieces.push({
        line: e.span.line - 0.3,
        endLine: e.span.line,
        declaration: true,
        context: top,
        text: [
          '#pragma GCC diagnostic push',
          '#pragma GCC diagnostic ignored "-Wattributes"',
          `${isStatic ? 'static ' : ''}${proto} __attribute__((${keepOutOfLine
            .split(', ')
            .map((a) => `__${a}__`)
            .join(', ')}));`,
          '#pragma GCC diagnostic pop',
        ].join('\n'),
      });
    }
    const open = text.indexOf('{');
    const macroNamed =
      replaced.has(name) && !new RegExp(`\\b${prefix}${name}\\b`).test(open >= 0 ? text.slice(0, open) : text);
    // One macro invocation can define several functions (pci-sysfs' resource##n##_resize_show
    // and _store): it is copied once.
    const same = pieces.find((p) => p.functionName !== undefined && p.line === e.span.line);
    if (same) {
      if (macroNamed) same.macroNamed = [...(same.macroNamed ?? []), name];
      same.refs = [...new Set([...(same.refs ?? []), ...e.refs])];
      continue;
    }
    // A macro invocation that defines data and functions (INTERVAL_TREE_DEFINE): one copy, as a function's.
    const dataThere = pieces.findIndex(
      (p) => p.functionName === undefined && !p.external && p.line === e.span.line && p.endLine === endLine,
    );
    if (dataThere >= 0) pieces.splice(dataThere, 1);
    pieces.push({
      line: e.span.line,
      endLine,
      text,
      context: top,
      functionName: name,
      refs: e.refs,
      macroNamed: macroNamed ? [name] : undefined,
    });
  }
  pieces.sort((a, b) => a.line - b.line);

  // What stays in the running kernel is declared where the .c has it, or just above its first
  // user when the .c declares it ahead: after the local types its declaration names.
  const externalized: { name: string; kind: string }[] = kernelCopies.map((n) => ({
    name: `${ADDRESS_PREFIX}${n}`,
    kind: 'function',
  }));
  const kernelData: string[] = [];
  for (const [key, d] of [...externs].sort((a, b) => a[1].span.line - b[1].span.line)) {
    // Defined by a macro invocation the module copies (SYSCALL_DEFINE makes __do_sys_x too).
    // (A twin's declaration is another name's: the kernel's copy, klpgen_addr_f.)
    const twin = addressTwins.has(d.name);
    if (
      !twin &&
      d.kind === 'function' &&
      d.span.file === file &&
      pieces.some((p) => p.functionName !== undefined && p.line === d.span.line)
    )
      continue;
    const users = pieces
      .filter((p) => p.functionName !== undefined && (p.refs ?? []).includes(key))
      .map((p) => p.line - 0.5);
    let decl = externDeclaration(d, input.preprocessed, model, input.dataSizes);
    if (twin) decl = decl.replace(new RegExp(`\\b${d.name}(?=\\s*\\()`), `${ADDRESS_PREFIX}${d.name}`);
    // A static variable, declared static as the patched build's compiler saw it (only this
    // file's code can reach it): the module's instance is a stand-in whose every reference is
    // moved to the running kernel's variable once the module is built. `used`, because the
    // module may only read it: its compiler must not take the stand-in's zeros for constants.
    const section = input.dataSections?.get(d.name);
    const standIn =
      local &&
      d.kind === 'variable' &&
      d.linkage === 'internal' &&
      d.definition &&
      !twin &&
      section !== undefined &&
      !/^\.(rodata|data\.\.percpu|data\.once)/.test(section) &&
      /^extern [^\n]*;$/.test(decl) &&
      !/\[\s*\]/.test(decl) &&
      !/__section__|__percpu/.test(decl);
    if (standIn) {
      pieces.push({
        line: Math.min(d.span.line, ...users),
        endLine: d.span.line,
        text: decl.replace(/^extern /, 'static ').replace(/;$/, ' __attribute__((__used__));'),
        context: top,
        external: true,
        standIn: true,
      });
      kernelData.push(d.name);
      continue;
    }
    pieces.push({
      line: Math.min(d.span.line, ...users),
      endLine: d.span.line,
      text: decl,
      context: top,
      external: true,
    });
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
    const users = pieces.filter(
      (p) => p.functionName !== undefined && p.line < at.line && (p.refs ?? []).includes(`function:${name}`),
    );
    if (users.length === 0) continue;
    // Used above its definition: declared just above its first user, as the .c does somewhere.
    pieces.push({
      line: Math.min(...users.map((p) => p.line)) - 0.25,
      endLine: at.line,
      text: `${at.head};`,
      context: top,
      declaration: true,
    });
  }
  pieces.sort((a, b) => a.line - b.line);
  return { pieces, externalized, kernelData };
}

/** The pieces, under the #if groups they were written in, each copy with its original line numbers. */
function renderBody(out: Emitter, input: EmitInput, pieces: Piece[], defs: CopyPlan['defs']): void {
  const { file } = input;
  const prefix = input.prefix ?? PREFIX;
  const emit = (text: string, line = 0) => out.emit(text, line);

  let previous: Piece | undefined;
  wrapInConditionals(
    pieces,
    (p) => {
      if (p.external) {
        if (!previous?.external || !!previous.standIn !== !!p.standIn) {
          emit(
            p.standIn
              ? "/* In the running kernel, static as the patched build saw it: after the build, KLP relocations to the kernel's. */"
              : '/* In the running kernel: reached through KLP relocations. */',
          );
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
        emit(`#line ${out.out.length + 2} "${input.cName ?? file}"`);
        emit('');
      } else {
        if (previous?.external || previous?.declaration) emit('');
        emit(p.text, p.line);
        emit('');
      }
      previous = p;
    },
    (d) => emit(d),
  );
  if (previous?.external || previous?.declaration) emit('');
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
  name: string,
  functionFiles: string[],
  installs: InstalledFunction[],
  replace: boolean,
  namespaces: string[] = [],
  declared: {
    /** Object -> callback kind -> the module's function. */
    callbacks?: Map<string, Partial<Record<'pre_patch' | 'post_patch' | 'pre_unpatch' | 'post_unpatch', string>>>;
    states?: { id: bigint; version: bigint }[];
  } = {},
): string {
  const callbacks = declared.callbacks ?? new Map();
  const states = declared.states ?? [];
  // The fix's code may name the patch (KLPGEN_GET_STATE): then it is global, as the header says.
  const patchName = callbacks.size || states.length ? 'klpgen_patch' : 'patch';
  const objects = [...new Set([...installs.map((f) => f.object), ...callbacks.keys()])].sort((a, b) =>
    a === 'vmlinux' ? -1 : b === 'vmlinux' ? 1 : a.localeCompare(b),
  );
  const byName = (a: InstalledFunction, b: InstalledFunction) =>
    a.symbol.localeCompare(b.symbol) || a.sympos - b.sympos;
  const arrayName = (object: string) =>
    objects.length === 1 ? 'funcs' : `funcs_${object.replace(/[^A-Za-z0-9_]/g, '_')}`;
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
  const cbs = [...callbacks.values()].flatMap((c) => Object.entries(c) as [string, string][]);
  if (cbs.length) {
    k('');
    k('/* Callbacks the fix declares (KLPGEN_*_CALLBACK), also in the other files. */');
    for (const [kind, fn] of [...new Map(cbs.map(([kind, fn]) => [fn, kind])).entries()]
      .map(([fn, kind]) => [kind, fn])
      .sort((a, b) => (a[1] as string).localeCompare(b[1] as string)))
      k(`${kind === 'pre_patch' ? 'int' : 'void'} ${fn}(struct klp_object *obj);`);
  }
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
    const c = callbacks.get(object);
    if (c && Object.keys(c).length) {
      k('\t\t.callbacks = {');
      for (const kind of ['pre_patch', 'post_patch', 'pre_unpatch', 'post_unpatch'] as const)
        if (c[kind]) k(`\t\t\t.${kind} = ${c[kind]},`);
      k('\t\t},');
    }
  });
  k('\t}, { }');
  k('};');
  if (states.length) {
    k('');
    k('/* States the fix declares (KLPGEN_STATE): a cumulative patch with the same id takes them over. */');
    k('static struct klp_state states[] = {');
    for (const st of states) k(`\t{ .id = 0x${st.id.toString(16)}, .version = ${st.version} },`);
    k('\t{ }');
    k('};');
  }
  k('');
  k(`${patchName === 'patch' ? 'static ' : ''}struct klp_patch ${patchName} = {`);
  k('\t.mod = THIS_MODULE,');
  k('\t.objs = objs,');
  if (states.length) k('\t.states = states,');
  k(`\t.replace = ${replace ? 'true' : 'false'},`);
  k('};');
  k('');
  k('static int livepatch_init(void)');
  k('{');
  k(`\treturn klp_enable_patch(&${patchName});`);
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
