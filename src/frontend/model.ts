import { relative, isAbsolute } from 'node:path';
import { TokenStream, type TextSource } from './lexer.js';
import { identifiersIn, scanMacros, type MacroDefinition } from './macros.js';
import { parseTranslationUnit, ParseError, type Attribute, type Entity, type EntityKind, type Linkage, type Storage } from './parser.js';

/**
 * The TU model: every top-level declaration and definition of one
 * translation unit, where it is in the original files, what it refers to.
 */
export interface TuModel {
  /** The .c file, relative to the kernel tree. */
  file: string;
  entities: TuEntity[];
  macros: TuMacro[];
  /** Lines of the .c whose #include was performed (inactive #if branches left out). */
  includeLines: number[];
  /** Functions that asm templates define (`.type name, @function`): static call trampolines, asm stubs. */
  asmFunctions: { name: string; global: boolean }[];
  /** Identifiers used with no declaration in scope, besides gcc's builtins: empty for valid kernel code. */
  unresolved: string[];
  stats: { tokens: number; entities: number; files: number; parseSeconds: number };
}

export interface Span {
  /** Original file, relative to the kernel tree when inside it. */
  file: string;
  line: number;
  endLine: number;
}

export interface TuEntity {
  kind: EntityKind;
  name: string;
  storage: Storage;
  linkage: Linkage;
  definition: boolean;
  inline: boolean;
  attributes: Attribute[];
  /** What matters for livepatching, read off the attributes. */
  flags: EntityFlags;
  span: Span;
  /** Byte offsets [start, end) in the preprocessed text. */
  iSpan: [number, number];
  /** For function definitions: the body's first line in the original file. */
  bodyLine?: number;
  /** Referenced top-level entities as `kind:name` (`function:kmalloc`, `struct:task_struct`, `macro:FOO`), sorted. */
  refs: string[];
  /** For enumerators: the enum (`enum:foo`), or '' for an anonymous enum. */
  parent?: string;
}

export interface EntityFlags {
  section?: string;
  init: boolean;
  exit: boolean;
  notrace: boolean;
  weak: boolean;
  alias?: string;
  used: boolean;
  alwaysInline: boolean;
  noinline: boolean;
  cold: boolean;
}

export interface TuMacro extends MacroDefinition {
  kind: 'macro';
  /** Macros and top-level entities of the .c its body names, as `kind:name`. */
  refs: string[];
}

export class FrontendError extends Error {
  constructor(message: string, readonly location: { file: string; line: number; col: number }) {
    super(message);
  }
}

export interface BuildModelInput {
  /** Preprocessed text (gcc -E, with line markers), whole or streamed. */
  preprocessed: string | TextSource;
  /** The .c file relative to the kernel tree. */
  file: string;
  /** The original .c text (for its macros); omitted → no macros. */
  sourceText?: string;
  /** The kernel source tree, to make file names relative. */
  sourceRoot?: string;
}

function unquote(s: string): string {
  const m = /^\s*"((?:[^"\\]|\\.)*)"\s*$/.exec(s.replace(/"\s*"/g, ''));
  return m ? (m[1] as string) : s.trim();
}

const NO_FLAGS: EntityFlags = Object.freeze({
  init: false, exit: false, notrace: false, weak: false, used: false, alwaysInline: false, noinline: false, cold: false,
});

export function entityFlags(attrs: Attribute[]): EntityFlags {
  if (attrs.length === 0) return NO_FLAGS;
  const has = (n: string) => attrs.some((a) => a.name === n);
  const sectionAttr = attrs.find((a) => a.name === 'section');
  const section = sectionAttr ? unquote(sectionAttr.args) : undefined;
  const aliasAttr = attrs.find((a) => a.name === 'alias');
  const flags: EntityFlags = {
    init: section !== undefined && /^\.init\./.test(section),
    exit: section !== undefined && /^\.exit\./.test(section),
    notrace: has('no_instrument_function') || attrs.some((a) => a.name === 'patchable_function_entry' && /^\s*0\s*,\s*0\s*$/.test(a.args)),
    weak: has('weak'),
    used: has('used'),
    alwaysInline: has('always_inline'),
    noinline: has('noinline'),
    cold: has('cold'),
  };
  if (section !== undefined) flags.section = section;
  if (aliasAttr) flags.alias = unquote(aliasAttr.args);
  return flags;
}

export function buildModel(input: BuildModelInput): TuModel {
  const t0 = performance.now();
  let parsed;
  let stream: TokenStream | undefined;
  try {
    stream = typeof input.preprocessed === 'string' ? undefined : new TokenStream(input.preprocessed, 4 << 20);
    parsed = parseTranslationUnit(stream ?? (input.preprocessed as string));
  } catch (e) {
    if (e instanceof ParseError) {
      const loc = locate(stream ? stream.textSoFar() : (input.preprocessed as string), input, e.offset);
      throw new FrontendError(e.message, loc);
    }
    throw e;
  }
  const parseSeconds = (performance.now() - t0) / 1000;
  const ts = parsed.tokens;
  const relCache = new Map<string, string>();
  const rel = (f: string) => {
    let r = relCache.get(f);
    if (r === undefined) relCache.set(f, (r = relPath(f, input.sourceRoot)));
    return r;
  };

  // Kinds of ordinary names, to turn reference keys into `kind:name`.
  const ordinaryKind = new Map<string, EntityKind>();
  for (const e of parsed.entities) {
    if (e.kind === 'struct' || e.kind === 'union' || e.kind === 'enum') continue;
    const prev = ordinaryKind.get(e.name);
    // A definition's kind wins over a declaration's (they agree in valid C).
    if (!prev || e.kind === 'function') ordinaryKind.set(e.name, e.kind);
  }
  const refKey = (k: string) => {
    const sp = k.indexOf(' ');
    if (sp > 0) return `${k.slice(0, sp)}:${k.slice(sp + 1)}`;
    return `${ordinaryKind.get(k) ?? 'unknown'}:${k}`;
  };

  const macros = input.sourceText !== undefined ? scanMacros(input.sourceText) : [];
  const macroNames = new Set(macros.map((m) => m.name));
  // Comments and strings blanked (newlines kept), so line slices see only code.
  const sourceLines = input.sourceText !== undefined ? blankCommentsAndStrings(input.sourceText).split('\n') : undefined;
  const mainFile = input.file;

  const entities = parsed.entities.map((e) => toTuEntity(e, ts, rel, refKey));
  // Macros of the .c that its own entities use: read off the original lines.
  if (sourceLines && macroNames.size) {
    for (const e of entities) {
      if (e.span.file !== mainFile) continue;
      const text = sourceLines.slice(e.span.line - 1, e.span.endLine).join('\n');
      const extra = [...identifiersIn(text)].filter((id) => macroNames.has(id)).map((id) => `macro:${id}`);
      if (extra.length) e.refs = [...new Set([...e.refs, ...extra])].sort();
    }
  }
  const mainNames = new Map<string, EntityKind>();
  for (const e of entities) if (e.span.file === mainFile && !mainNames.has(e.name)) mainNames.set(e.name, e.kind);
  const tuMacros: TuMacro[] = macros.map((m) => {
    const ids = identifiersIn(`${m.params ?? ''} ${m.body}`);
    const refs: string[] = [];
    for (const id of ids) {
      if (id === m.name) continue;
      if (macroNames.has(id)) refs.push(`macro:${id}`);
      else if (mainNames.has(id)) refs.push(`${mainNames.get(id)}:${id}`);
    }
    return { kind: 'macro', ...m, refs: refs.sort() };
  });

  return {
    file: input.file,
    entities,
    macros: tuMacros,
    includeLines: [...new Set(ts.lines.markers.filter((m) => m.returning && rel(ts.lines.files[m.file] as string) === input.file).map((m) => m.line - 1))].sort((a, b) => a - b),
    asmFunctions: asmFunctions(parsed.asmTemplates.map(([a, b]) => ts.text.slice(ts.start[a], ts.end[b]))),
    unresolved: [...parsed.unresolved].sort(),
    stats: { tokens: ts.count, entities: entities.length, files: ts.lines.files.length, parseSeconds },
  };
}

function toTuEntity(e: Entity, ts: TokenStream, rel: (f: string) => string, refKey: (k: string) => string): TuEntity {
  const startOff = ts.start[e.firstToken] as number;
  const endOff = ts.end[e.lastToken] as number;
  const a = ts.lines.original(startOff);
  const b = ts.lines.original(Math.max(startOff, endOff - 1));
  const out: TuEntity = {
    kind: e.kind,
    name: e.name,
    storage: e.storage,
    linkage: e.linkage,
    definition: e.definition,
    inline: e.inline,
    attributes: e.attributes,
    flags: entityFlags(e.attributes),
    span: { file: rel(a.file), line: a.line, endLine: b.file === a.file ? b.line : a.line },
    iSpan: [startOff, endOff],
    refs: [...e.refs].map(refKey).sort(),
  };
  if (e.bodyToken >= 0 && e.kind === 'function') out.bodyLine = ts.lines.original(ts.start[e.bodyToken] as number).line;
  if (e.kind === 'enumerator') out.parent = e.parent ? refKey(e.parent) : '';
  return out;
}

/** Read the symbols asm templates define as functions; the strings are C literals, so "\n" is two characters. */
export function asmFunctions(templates: string[]): { name: string; global: boolean }[] {
  const found = new Map<string, boolean>();
  for (const t of templates) {
    const text = t.replace(/"\s*"/g, '').replace(/\\n|\\t|;/g, '\n');
    const globals = new Set([...text.matchAll(/\.(?:globl|global)\s+([\w.$]+)/g)].map((m) => m[1] as string));
    for (const m of text.matchAll(/\.type\s+([\w.$]+)\s*,\s*[@%]function/g)) {
      const name = m[1] as string;
      found.set(name, (found.get(name) ?? false) || globals.has(name));
    }
  }
  return [...found].map(([name, global]) => ({ name, global })).sort((a, b) => a.name.localeCompare(b.name));
}

function relPath(file: string, root: string | undefined): string {
  if (!root || !isAbsolute(file)) return file.replace(/^\.\//, '');
  const r = relative(root, file);
  return r.startsWith('..') ? file : r;
}

/** Replace comments and string/char literals by spaces, keeping every newline where it was. */
export function blankCommentsAndStrings(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g, (m) => m.replace(/[^\n]/g, ' '));
}

function locate(text: string, input: BuildModelInput, offset: number): { file: string; line: number; col: number } {
  // Re-derive the position from line markers without a full lex (the lexer may be what failed).
  let file = input.file;
  let origLine = 1; // original line of the current .i line
  let lineStart = 0;
  for (;;) {
    const nl = text.indexOf('\n', lineStart);
    const lineEnd = nl < 0 ? text.length : nl;
    if (offset <= lineEnd || nl < 0) break;
    const m = text.charCodeAt(lineStart) === 35 ? /^#\s*(\d+)\s+"((?:[^"\\]|\\.)*)"/.exec(text.slice(lineStart, lineEnd)) : null;
    if (m) {
      file = m[2] as string;
      origLine = Number(m[1]);
    } else {
      origLine++;
    }
    lineStart = nl + 1;
  }
  return { file: relPath(file, input.sourceRoot), line: origLine, col: offset - lineStart + 1 };
}
