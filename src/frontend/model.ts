import { relative, isAbsolute } from 'node:path';
import { TokenStream, type TextSource } from './lexer.js';
import { WARMUP_REPEAT, WARMUP_SOURCE, WARMUP_TEXT } from './warmup.js';
import { identifiersIn, scanMacros, type MacroDefinition } from './macros.js';
import {
  NS_NAMES,
  NS_ORDINARY,
  ORDINARY_KINDS,
  parseTranslationUnit,
  ParseError,
  type Attribute,
  type Entity,
  type EntityKind,
  type Linkage,
  type ParseResult,
  type Storage,
} from './parser.js';

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
  constructor(
    message: string,
    readonly location: { file: string; line: number; col: number },
  ) {
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
  init: false,
  exit: false,
  notrace: false,
  weak: false,
  used: false,
  alwaysInline: false,
  noinline: false,
  cold: false,
});

const SHARED_FLAGS: (EntityFlags | undefined)[] = [];

export function entityFlags(attrs: Attribute[]): EntityFlags {
  if (attrs.length === 0) return NO_FLAGS;
  // One pass; the first section and alias attributes count.
  let sectionAttr: Attribute | undefined;
  let aliasAttr: Attribute | undefined;
  let notrace = false;
  let weak = false;
  let used = false;
  let alwaysInline = false;
  let noinline = false;
  let cold = false;
  for (const a of attrs) {
    switch (a.name) {
      case 'section':
        sectionAttr ??= a;
        break;
      case 'alias':
        aliasAttr ??= a;
        break;
      case 'no_instrument_function':
        notrace = true;
        break;
      case 'patchable_function_entry':
        if (/^\s*0\s*,\s*0\s*$/.test(a.args)) notrace = true;
        break;
      case 'weak':
        weak = true;
        break;
      case 'used':
        used = true;
        break;
      case 'always_inline':
        alwaysInline = true;
        break;
      case 'noinline':
        noinline = true;
        break;
      case 'cold':
        cold = true;
        break;
      default:
        break;
    }
  }
  if (sectionAttr === undefined && aliasAttr === undefined) {
    // Shared, like NO_FLAGS: one frozen object per combination.
    const bits =
      (notrace ? 1 : 0) |
      (weak ? 2 : 0) |
      (used ? 4 : 0) |
      (alwaysInline ? 8 : 0) |
      (noinline ? 16 : 0) |
      (cold ? 32 : 0);
    return (SHARED_FLAGS[bits] ??= Object.freeze({
      init: false,
      exit: false,
      notrace,
      weak,
      used,
      alwaysInline,
      noinline,
      cold,
    }));
  }
  const section = sectionAttr ? unquote(sectionAttr.args) : undefined;
  const flags: EntityFlags = {
    init: section !== undefined && /^\.init\./.test(section),
    exit: section !== undefined && /^\.exit\./.test(section),
    notrace,
    weak,
    used,
    alwaysInline,
    noinline,
    cold,
  };
  if (section !== undefined) flags.section = section;
  if (aliasAttr) flags.alias = unquote(aliasAttr.args);
  return flags;
}

let warmedUp = false;

/** Once per process: lex, parse and model WARMUP_TEXT (see warmup.ts). */
function warmUp(): void {
  if (warmedUp) return;
  warmedUp = true;
  let n = 0;
  const source: TextSource = { next: () => (n++ < WARMUP_REPEAT ? WARMUP_TEXT : null) };
  // Sized not to grow: growing is left without feedback, out of the optimized code (a TU grows nothing either).
  modelOf(
    { preprocessed: source, file: 'warmup.c', sourceText: WARMUP_SOURCE },
    2 * WARMUP_REPEAT * WARMUP_TEXT.length,
  );
  // The first localeCompare loads ICU's collator (ms): asmFunctions sorts with it.
  'a'.localeCompare('b');
}

export function buildModel(input: BuildModelInput): TuModel {
  warmUp();
  // A streamed TU's size is not known: room for 8 MiB of text, which few
  // kernel TUs pass (the arrays then grow). Not much more: V8 counts even
  // untouched array memory, and past 64 MiB of it collects garbage early.
  return modelOf(input, 8 << 20);
}

function modelOf(input: BuildModelInput, expectedLength: number): TuModel {
  // The .c's own text first: with a streamed input this overlaps gcc -E's start.
  const macros = input.sourceText !== undefined ? scanMacros(input.sourceText) : [];
  const macroNames = new Set(macros.map((m) => m.name));
  // Comments and strings blanked (newlines kept), so line slices see only code.
  const sourceLines =
    input.sourceText !== undefined ? blankCommentsAndStrings(input.sourceText).split('\n') : undefined;

  const t0 = performance.now();
  const relCache = new Map<string, string>();
  const rel = (f: string) => {
    let r = relCache.get(f);
    if (r === undefined) relCache.set(f, (r = relPath(f, input.sourceRoot)));
    return r;
  };
  const mainFile = input.file;
  let parsed;
  let stream: TokenStream | undefined;
  try {
    // A whole text is lexed before it is parsed (so a lexical error is the one reported).
    stream = typeof input.preprocessed === 'string' ? undefined : new TokenStream(input.preprocessed, expectedLength);
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
  // In batches: one long call would be compiled again on the stack (OSR).
  const builder = new EntityBuilder(ts, rel, mainFile, sourceLines, macroNames);
  while (builder.step(parsed.entities, Math.min(parsed.entities.length, builder.out.length + BATCH)));
  while (builder.stepAsm(parsed.asmTemplates, Math.min(parsed.asmTemplates.length, builder.asm.done + BATCH)));

  const keys = new RefKeys(parsed);
  const entities = builder.out;
  for (let i = 0; i < entities.length; i++) {
    const e = entities[i] as TuEntity;
    e.refs = keys.of(parsed.entities[i] as Entity);
    // Macros of the .c that its own entities use.
    const extra = builder.macroRefs[i];
    if (extra !== undefined) e.refs = [...new Set([...e.refs, ...extra])].sort();
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
    includeLines: [
      ...new Set(
        ts.lines.markers
          .filter((m) => m.returning && rel(ts.lines.files[m.file] as string) === input.file)
          .map((m) => m.line - 1),
      ),
    ].sort((a, b) => a - b),
    asmFunctions: builder.asm.result(),
    unresolved: [...parsed.unresolved].sort(),
    stats: { tokens: ts.count, entities: entities.length, files: ts.lines.files.length, parseSeconds },
  };
}

/**
 * Reference ids (see parser.ts) as `kind:name` keys, sorted once: every
 * distinct referenced entity gets its key and its rank in the sorted order,
 * so each entity's list sorts as numbers.
 */
class RefKeys {
  private readonly rank: Int32Array;
  private readonly sorted: string[];

  constructor(parsed: ParseResult) {
    const identifiers = parsed.tokens.identifiers;
    const referenced = parsed.referenced;
    const keys = referenced.map((r) => {
      const ns = r & 3;
      const name = identifiers[r >> 2] as string;
      return ns === NS_ORDINARY
        ? `${ORDINARY_KINDS[parsed.ordinaryKind[r >> 2] as number] || 'unknown'}:${name}`
        : `${NS_NAMES[ns]}:${name}`;
    });
    // Distinct keys (a tag's and a name's differ in their kind): the default
    // sort, natively, then each key's place.
    this.sorted = keys.slice().sort();
    const place = new Map<string, number>();
    this.sorted.forEach((k, i) => place.set(k, i));
    const rank = new Int32Array(identifiers.length * 4);
    for (let i = 0; i < referenced.length; i++) rank[referenced[i] as number] = place.get(keys[i] as string) as number;
    this.rank = rank;
  }

  private scratch = new Int32Array(256);

  /** An entity's references as sorted, distinct keys. */
  of(e: Entity): string[] {
    const refs = e.refs;
    const n = refs.length;
    if (n === 0) return [];
    if (n > this.scratch.length) this.scratch = new Int32Array(n * 2);
    const ranks = this.scratch;
    const rank = this.rank;
    let count = 0;
    for (let k = 0; k < n; k++) {
      const r = refs[k] as number;
      if (r === e.exclude) continue;
      const v = rank[r] as number;
      if (count < 32) {
        // Insertion: most lists are short.
        let j = count;
        while (j > 0 && (ranks[j - 1] as number) > v) {
          ranks[j] = ranks[j - 1] as number;
          j--;
        }
        ranks[j] = v;
      } else {
        ranks[count] = v;
      }
      count++;
    }
    if (count > 32) ranks.subarray(0, count).sort();
    const out: string[] = [];
    let last = -1;
    for (let k = 0; k < count; k++) {
      const v = ranks[k] as number;
      if (v !== last) out.push(this.sorted[v] as string);
      last = v;
    }
    return out;
  }
}

/** Entities modelled per EntityBuilder step. */
const BATCH = 64;

/** Models entities in order, all but their references (which need the whole TU). */
class EntityBuilder {
  readonly out: TuEntity[] = [];
  /** For entities of the .c, the macros of the .c on their lines (`macro:NAME`), if any. */
  readonly macroRefs: (string[] | undefined)[] = [];
  readonly asm = new AsmScan();

  constructor(
    private readonly ts: TokenStream,
    private readonly rel: (f: string) => string,
    private readonly mainFile: string,
    private readonly sourceLines: string[] | undefined,
    private readonly macroNames: Set<string>,
  ) {}

  /** Model entities up to `upTo`; false if there were none to model. */
  step(entities: Entity[], upTo: number): boolean {
    const from = this.out.length;
    if (from >= upTo) return false;
    for (let i = from; i < upTo; i++) {
      const out = toTuEntity(entities[i] as Entity, this.ts, this.rel);
      this.out.push(out);
      // Macros of the .c that its own entities use: read off the original lines.
      if (this.sourceLines !== undefined && this.macroNames.size > 0 && out.span.file === this.mainFile) {
        const text = this.sourceLines.slice(out.span.line - 1, out.span.endLine).join('\n');
        const extra = [...identifiersIn(text)].filter((id) => this.macroNames.has(id)).map((id) => `macro:${id}`);
        if (extra.length) this.macroRefs[i] = extra;
      }
    }
    return true;
  }

  /** Scan asm templates up to `upTo` for the functions they define; false if there were none. */
  stepAsm(templates: [number, number][], upTo: number): boolean {
    const asm = this.asm;
    if (asm.done >= upTo) return false;
    const ts = this.ts;
    for (; asm.done < upTo; asm.done++) {
      const [a, b] = templates[asm.done] as [number, number];
      asm.add(ts.slice(ts.start[a] as number, ts.end[b] as number));
    }
    return true;
  }
}

/** An entity of the model; its references are filled in later. */
function toTuEntity(e: Entity, ts: TokenStream, rel: (f: string) => string): TuEntity {
  const startOff = ts.start[e.firstToken] as number;
  const endOff = ts.end[e.lastToken] as number;
  const lines = ts.lines;
  lines.locate(startOff);
  const aFile = lines.origFile;
  const aLine = lines.origLine;
  lines.locate(Math.max(startOff, endOff - 1));
  const out: TuEntity = {
    kind: e.kind,
    name: e.name,
    storage: e.storage,
    linkage: e.linkage,
    definition: e.definition,
    inline: e.inline,
    attributes: e.attributes,
    flags: entityFlags(e.attributes),
    span: { file: rel(aFile), line: aLine, endLine: lines.origFile === aFile ? lines.origLine : aLine },
    iSpan: [startOff, endOff],
    refs: NO_REFS,
  };
  if (e.bodyToken >= 0 && e.kind === 'function') {
    lines.locate(ts.start[e.bodyToken] as number);
    out.bodyLine = lines.origLine;
  }
  if (e.kind === 'enumerator')
    out.parent = e.parent >= 0 ? `${NS_NAMES[e.parent & 3]}:${ts.identifiers[e.parent >> 2]}` : '';
  return out;
}

const NO_REFS: string[] = [];

/** Read the symbols asm templates define as functions; the strings are C literals, so "\n" is two characters. */
export function asmFunctions(templates: string[]): { name: string; global: boolean }[] {
  const scan = new AsmScan();
  for (const t of templates) scan.add(t);
  return scan.result();
}

/** asmFunctions() one template at a time. */
class AsmScan {
  private readonly found = new Map<string, boolean>();
  /** Templates of the parse added so far. */
  done = 0;

  add(t: string): void {
    // Most templates are one literal with no .type: skip them before joining
    // (with just its two quotes, joining changes nothing but an all-blank literal).
    if (t.indexOf('"', 1) === t.length - 1 && !t.includes('.type')) return;
    const joined = t.replace(/"\s*"/g, '');
    if (!joined.includes('.type')) return; // nothing to find
    const text = joined.replace(/\\n|\\t|;/g, '\n');
    const globals = new Set([...text.matchAll(/\.(?:globl|global)\s+([\w.$]+)/g)].map((m) => m[1] as string));
    for (const m of text.matchAll(/\.type\s+([\w.$]+)\s*,\s*[@%]function/g)) {
      const name = m[1] as string;
      this.found.set(name, (this.found.get(name) ?? false) || globals.has(name));
    }
  }

  result(): { name: string; global: boolean }[] {
    return [...this.found].map(([name, global]) => ({ name, global })).sort((a, b) => a.name.localeCompare(b.name));
  }
}

function relPath(file: string, root: string | undefined): string {
  if (!root || !isAbsolute(file)) return file.replace(/^\.\//, '');
  // A plain path under a plain root: what relative() would say, without its work.
  if (
    file.length > root.length + 1 &&
    file.charCodeAt(root.length) === 47 &&
    file.startsWith(root) &&
    isPlain(root) &&
    isPlain(file)
  ) {
    return file.slice(root.length + 1);
  }
  const r = relative(root, file);
  return r.startsWith('..') ? file : r;
}

/** An absolute path with no `.` or `..` component, no `//` and no trailing `/`: path.resolve leaves it as it is. */
function isPlain(p: string): boolean {
  return (
    !p.includes('//') &&
    !p.includes('/./') &&
    !p.includes('/../') &&
    !p.endsWith('/.') &&
    !p.endsWith('/..') &&
    !p.endsWith('/')
  );
}

/** Replace comments and string/char literals by spaces, keeping every newline where it was. */
export function blankCommentsAndStrings(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g, (m) =>
    m.replace(/[^\n]/g, ' '),
  );
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
    const m =
      text.charCodeAt(lineStart) === 35
        ? /^#\s*(\d+)\s+"((?:[^"\\]|\\.)*)"/.exec(text.slice(lineStart, lineEnd))
        : null;
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
