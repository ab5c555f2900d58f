import { lex, LexError, type TokenStream } from './lexer.js';
import { describeCode, Kw, Pu, punctCode as P, Tk } from './tokens.js';

/**
 * A parser for GNU C as gcc-12 accepts it in preprocessed kernel code. It
 * builds no expression trees: it tracks C's scopes (ordinary and tag
 * namespaces, typedef names, block scopes) while it reads, and records for
 * every top-level entity which other top-level entities it refers to.
 */

export type EntityKind = 'function' | 'variable' | 'typedef' | 'struct' | 'union' | 'enum' | 'enumerator';
export type Linkage = 'external' | 'internal' | 'none';
export type Storage = 'static' | 'extern' | 'typedef' | 'none';

export interface Attribute {
  /** Name without the __ wrapping: `__section__` is `section`. */
  name: string;
  /** The argument tokens as written, without the outer parentheses ('' if none). */
  args: string;
}

export interface Entity {
  kind: EntityKind;
  name: string;
  /** The name's identifier id (index into the token stream's `identifiers`). */
  nameId: number;
  storage: Storage;
  linkage: Linkage;
  /** A function body, a variable with an initializer or a tentative definition, a struct body... */
  definition: boolean;
  inline: boolean;
  attributes: Attribute[];
  /** Token range [first, last] of the whole declaration. */
  firstToken: number;
  lastToken: number;
  /** For a function definition, the token of its opening brace. */
  bodyToken: number;
  /**
   * The top-level entities this one refers to, as reference ids (see refId):
   * unsorted, possibly repeated; `exclude` (its own id, or -1) is not one.
   */
  refs: number[];
  exclude: number;
  /** For an enumerator, the reference id of the enum's tag, or -1 when the enum has no tag. */
  parent: number;
}

/**
 * Reference ids: an identifier id times 4 plus its namespace, so a name and
 * the tags spelled like it are distinct references.
 */
export const NS_ORDINARY = 0,
  NS_STRUCT = 1,
  NS_UNION = 2,
  NS_ENUM = 3;
export const NS_NAMES = ['', 'struct', 'union', 'enum'] as const;
export function refId(identId: number, ns: number): number {
  return (identId << 2) | ns;
}

export class ParseError extends Error {
  constructor(
    message: string,
    readonly token: number,
    readonly offset: number,
  ) {
    super(message);
  }
}

const enum BindingKind {
  Typedef,
  Object,
  Function,
  Enumerator,
}
const enum Link {
  External,
  Internal,
  None,
}
const LINKAGES: readonly Linkage[] = ['external', 'internal', 'none'];

/** The derivation nearest a declarator's identifier (`*f(void)`: Function), or None. */
const enum Deriv {
  None,
  Pointer,
  Array,
  Function,
}

const NO_ATTRIBUTES: Attribute[] = Object.freeze([]) as unknown as Attribute[];

// Token codes are the const enums of tokens.ts (Tk, Pu, Kw): inlined as numbers.

// Token classes, by code: type keywords, qualifiers, storage classes (and function specifiers).
const F_TYPE = 1,
  F_QUALIFIER = 2,
  F_STORAGE = 4,
  F_OTHER_SPEC = 8;
const SPEC_FLAGS = new Uint8Array(512);
for (const k of [
  Kw.void,
  Kw.char,
  Kw.short,
  Kw.int,
  Kw.long,
  Kw.float,
  Kw.double,
  Kw.signed,
  Kw.unsigned,
  Kw.bool,
  Kw.complex,
  Kw.int128,
  Kw.float128,
  Kw.struct,
  Kw.union,
  Kw.enum,
  Kw.typeof,
  Kw.autoType,
])
  SPEC_FLAGS[k] = (SPEC_FLAGS[k] as number) | F_TYPE;
for (const k of [Kw.const, Kw.volatile, Kw.restrict, Kw.atomic, Kw.segGs, Kw.segFs])
  SPEC_FLAGS[k] = (SPEC_FLAGS[k] as number) | F_QUALIFIER;
for (const k of [Kw.typedef, Kw.extern, Kw.static, Kw.auto, Kw.register, Kw.threadLocal, Kw.inline, Kw.noreturn])
  SPEC_FLAGS[k] = (SPEC_FLAGS[k] as number) | F_STORAGE;
// Starts a type name too, besides types and qualifiers.
for (const k of [Kw.attribute, Kw.alignas]) SPEC_FLAGS[k] = (SPEC_FLAGS[k] as number) | F_OTHER_SPEC;
const isQualifier = (c: number) => (SPEC_FLAGS[c]! & F_QUALIFIER) !== 0;

// Binary operators (no tree is built: their precedence does not matter).
const BINARY_OP = new Uint8Array(256);
for (const op of [
  '||',
  '&&',
  '|',
  '^',
  '&',
  '==',
  '!=',
  '<',
  '>',
  '<=',
  '>=',
  '<<',
  '>>',
  '+',
  '-',
  '*',
  '/',
  '%',
] as const)
  BINARY_OP[P(op)] = 1;
/** Prefix operators and casts before one operand, at most. */
const MAX_PREFIXES = 10_000;
const UNARY_OP = new Uint8Array(256);
for (const c of [Pu.Amp, Pu.Star, Pu.Plus, Pu.Minus, Pu.Tilde, Pu.Bang, Kw.real, Kw.imag, Kw.extension])
  UNARY_OP[c] = 1;
const ASSIGN_OP = new Uint8Array(256);
for (const o of ['=', '*=', '/=', '%=', '+=', '-=', '<<=', '>>=', '&=', '^=', '|='] as const) ASSIGN_OP[P(o)] = 1;

/** Names gcc knows without a declaration. */
function isBuiltinName(name: string): boolean {
  return (
    name.startsWith('__builtin_') ||
    name.startsWith('__sync_') ||
    name.startsWith('__atomic_') ||
    name === '__func__' ||
    name === '__FUNCTION__' ||
    name === '__PRETTY_FUNCTION__' ||
    name.startsWith('__ia32_') ||
    name === '__has_builtin'
  );
}

/** `__name__` → `name`, as gcc reads attribute names. */
function unwrap(raw: string): string {
  return raw.length >= 4 && raw.startsWith('__') && raw.endsWith('__') ? raw.slice(2, raw.length - 2) : raw;
}

/**
 * Entities are instances of one class: one shape, and no allocation site
 * for V8 to pretenure later (which throws away the code that allocates).
 */
class EntityRecord implements Entity {
  definition = false;
  lastToken: number;
  bodyToken = -1;
  parent = -1;
  constructor(
    readonly kind: EntityKind,
    readonly name: string,
    readonly nameId: number,
    readonly storage: Storage,
    readonly linkage: Linkage,
    readonly inline: boolean,
    readonly attributes: Attribute[],
    public firstToken: number,
    lastToken: number,
    readonly refs: number[],
    public exclude: number,
  ) {
    this.lastToken = lastToken < 0 ? firstToken : lastToken;
  }
}

function makeEntity(
  kind: EntityKind,
  name: string,
  nameId: number,
  storage: Storage,
  linkage: Linkage,
  inline: boolean,
  attributes: Attribute[],
  firstToken: number,
  lastToken: number,
  refs: number[],
  exclude: number,
): Entity {
  return new EntityRecord(
    kind,
    name,
    nameId,
    storage,
    linkage,
    inline,
    attributes,
    firstToken,
    lastToken,
    refs,
    exclude,
  );
}

/** Typedef names gcc predeclares. */
const BUILTIN_TYPEDEFS = ['__builtin_va_list', '__int128_t', '__uint128_t', '__gnuc_va_list'];

export interface ParseResult {
  tokens: TokenStream;
  entities: Entity[];
  /** Token ranges [first, last] of asm templates (file scope and statements): they can define symbols. */
  asmTemplates: [number, number][];
  /** Identifiers used without any declaration in scope (besides gcc's builtins): should be empty. */
  unresolved: Set<string>;
  /** Every reference id some entity recorded (and a few more), once. */
  referenced: number[];
  /** Per identifier id, the kind of the entities of that name, as an ORDINARY_KINDS index (0: none). */
  ordinaryKind: Uint8Array;
}

/** Kinds of ordinary entities (index 0: none). */
export const ORDINARY_KINDS: readonly (EntityKind | '')[] = ['', 'function', 'variable', 'typedef', 'enumerator'];

/** Parse a whole preprocessed text, or a token stream that lexes as the parser goes. */
export function parseTranslationUnit(input: string | TokenStream): ParseResult {
  let tokens: TokenStream;
  try {
    tokens = typeof input === 'string' ? lex(input) : input;
  } catch (e) {
    if (e instanceof LexError) throw new ParseError(e.message, -1, e.offset);
    throw e;
  }
  const parser = new Parser(tokens);
  try {
    parser.translationUnit();
  } catch (e) {
    if (e instanceof LexError) throw new ParseError(e.message, -1, e.offset);
    if (e instanceof RangeError) {
      // Pathological nesting: report it like any other syntax error.
      const at = Math.min(parser.pos, tokens.count - 1);
      throw new ParseError('nesting too deep', at, tokens.start[at] as number);
    }
    throw e;
  }
  return {
    tokens,
    entities: parser.entities,
    asmTemplates: parser.asmTemplates,
    unresolved: parser.unresolved,
    referenced: parser.referenced,
    ordinaryKind: parser.ordinaryKind,
  };
}

class Parser {
  pos = 0;
  readonly entities: Entity[] = [];
  readonly unresolved = new Set<string>();
  readonly asmTemplates: [number, number][] = [];
  // The stream's arrays, re-read whenever the lexer may have grown them (in more()).
  private code: Uint8Array;
  private ident: Int32Array;
  private readonly identifiers: string[];
  private lexed: number;
  private level = 0;

  // Scopes. Bindings of ordinary names and of tags live on two stacks of
  // records (columns in typed arrays): a scope's exit pops what it bound and
  // restores what each popped record shadowed. `head` and `tagHead` are
  // indexed by identifier id (tags: by reference id) and hold the visible
  // record, or -1.
  private head: Int32Array = new Int32Array(0);
  private tagHead: Int32Array = new Int32Array(0);
  /** Per reference id: the stamp of the collector that last recorded it (see addRef). */
  private seen: Int32Array = new Int32Array(0);
  private bPrev: Int32Array = new Int32Array(0);
  private bIdent: Int32Array = new Int32Array(0);
  private bLevel: Int32Array = new Int32Array(0);
  private bKind: Uint8Array = new Uint8Array(0);
  private bFnType: Uint8Array = new Uint8Array(0);
  private bLinkage: Uint8Array = new Uint8Array(0);
  private bExternal: Uint8Array = new Uint8Array(0);
  private bTop = 0;
  private tPrev: Int32Array = new Int32Array(0);
  private tSlot: Int32Array = new Int32Array(0);
  private tLevel: Int32Array = new Int32Array(0);
  private tTop = 0;
  private readonly nameMarks: number[] = [];
  private readonly tagMarks: number[] = [];

  /**
   * Where references go: the list of the top-level entity being read, and its
   * stamp. Lists are deduplicated only while they are the current one, so
   * they may hold repeats (the model sorts them out).
   */
  private refs: number[] = [];
  private stamp = 1;
  private stamps = 1;

  /** Every reference id recorded, once. */
  readonly referenced: number[] = [];
  /** Per identifier id, the kind of its first ordinary entity (a function's wins), as an ORDINARY_KINDS index. */
  ordinaryKind: Uint8Array = new Uint8Array(0);

  /** Attribute names without their __ wrapping, by identifier id. */
  private readonly attributeNames = new Map<number, string>();

  // What declSpecifiers() read.
  private sStorage: Storage = 'none';
  private sInline = false;
  private sAttributes: Attribute[] = NO_ATTRIBUTES;
  private sSawType = false;
  private sFnType = false;

  // What declarator() read.
  private dName = -1;
  private dNameToken = -1;
  private dFirst: Deriv = Deriv.None;
  private dParams: number[] | null = null;
  private dAttributes: Attribute[] | null = null;

  constructor(private readonly ts: TokenStream) {
    this.code = ts.code;
    this.ident = ts.ident;
    this.identifiers = ts.identifiers;
    this.lexed = ts.count;
    // Room for a large TU from the start: growing later would also throw
    // away optimized code that never saw it happen.
    this.growBindings(1 << 16);
    this.growTags(1 << 14);
    const builtins = BUILTIN_TYPEDEFS.map((name) => ts.internName(name));
    this.growIdentifiers();
    // Level -1: visible everywhere, never a reference to an entity of the TU.
    for (const id of builtins) this.bLevel[this.bind(id, BindingKind.Typedef, false, Link.None)] = -1;
  }

  // ---- token helpers -------------------------------------------------------

  /** The code of token i, lexing more text first if needed. */
  private tok(i: number): number {
    if (i >= this.lexed) return this.more(i);
    return this.code[i] as number;
  }

  private more(i: number): number {
    this.ts.fill(i + 256);
    this.code = this.ts.code;
    this.ident = this.ts.ident;
    this.lexed = this.ts.count;
    if (this.identifiers.length > this.head.length) this.growIdentifiers();
    if (i >= this.lexed) return Tk.EOF;
    return this.code[i] as number;
  }

  private peek(): number {
    return this.tok(this.pos);
  }

  private peekAt(ahead: number): number {
    return this.tok(this.pos + ahead);
  }

  private name(i = this.pos): string {
    return this.identifiers[this.ident[i] as number] as string;
  }

  private accept(c: number): boolean {
    if (this.tok(this.pos) === c) {
      this.pos++;
      return true;
    }
    return false;
  }

  private expect(c: number, what?: string): void {
    if (this.tok(this.pos) !== c)
      this.error(`expected ${describeCode(c)}${what ? ` ${what}` : ''}, found ${this.found()}`);
    this.pos++;
  }

  private found(): string {
    const c = this.peek();
    if (c === Tk.IDENT) return `'${this.name()}'`;
    if (c === Tk.NUMBER || c === Tk.STRING || c === Tk.CHAR) {
      return `'${this.ts.slice(this.ts.start[this.pos] as number, Math.min(this.ts.end[this.pos] as number, (this.ts.start[this.pos] as number) + 20))}'`;
    }
    return describeCode(c);
  }

  private error(message: string): never {
    this.tok(this.pos);
    const at = Math.min(this.pos, this.ts.count - 1);
    throw new ParseError(message, at, this.ts.start[at] as number);
  }

  private textOf(first: number, last: number): string {
    if (last < first) return '';
    return this.ts.slice(this.ts.start[first] as number, this.ts.end[last] as number);
  }

  // ---- tables --------------------------------------------------------------

  /** Size the per-identifier tables for every identifier interned so far. */
  private growIdentifiers(): void {
    const n = Math.max(this.identifiers.length, this.head.length * 2, this.ts.nameCapacity);
    const head = new Int32Array(n).fill(-1);
    head.set(this.head);
    this.head = head;
    const tagHead = new Int32Array(n * 4).fill(-1);
    tagHead.set(this.tagHead);
    this.tagHead = tagHead;
    const seen = new Int32Array(n * 4);
    seen.set(this.seen);
    this.seen = seen;
    const ordinaryKind = new Uint8Array(n);
    ordinaryKind.set(this.ordinaryKind);
    this.ordinaryKind = ordinaryKind;
  }

  private growBindings(n: number): void {
    const i32 = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    const u8 = (a: Uint8Array) => {
      const b = new Uint8Array(n);
      b.set(a);
      return b;
    };
    this.bPrev = i32(this.bPrev);
    this.bIdent = i32(this.bIdent);
    this.bLevel = i32(this.bLevel);
    this.bKind = u8(this.bKind);
    this.bFnType = u8(this.bFnType);
    this.bLinkage = u8(this.bLinkage);
    this.bExternal = u8(this.bExternal);
  }

  private growTags(n: number): void {
    const i32 = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.tPrev = i32(this.tPrev);
    this.tSlot = i32(this.tSlot);
    this.tLevel = i32(this.tLevel);
  }

  // ---- references ----------------------------------------------------------

  private addRef(r: number): void {
    const last = this.seen[r] as number;
    if (last !== this.stamp) {
      if (last === 0) this.referenced.push(r);
      this.seen[r] = this.stamp;
      this.refs.push(r);
    }
  }

  /** Start a new current reference list. */
  private newRefs(): number[] {
    this.stamp = ++this.stamps;
    this.refs = [];
    return this.refs;
  }

  /** A new current list starting as a copy of `from`. */
  private copyRefs(from: number[]): number[] {
    const stamp = (this.stamp = ++this.stamps);
    const refs = (this.refs = from.slice());
    const seen = this.seen;
    for (let k = 0; k < refs.length; k++) seen[refs[k] as number] = stamp;
    return refs;
  }

  // ---- scopes --------------------------------------------------------------

  private enterScope(): void {
    this.level++;
    this.nameMarks.push(this.bTop);
    this.tagMarks.push(this.tTop);
  }

  private exitScope(): void {
    const nameMark = this.nameMarks.pop() as number;
    const head = this.head;
    while (this.bTop > nameMark) {
      const b = --this.bTop;
      head[this.bIdent[b] as number] = this.bPrev[b] as number;
    }
    const tagMark = this.tagMarks.pop() as number;
    while (this.tTop > tagMark) {
      const t = --this.tTop;
      this.tagHead[this.tSlot[t] as number] = this.tPrev[t] as number;
    }
    this.level--;
  }

  /** Bind an ordinary name in the current scope; returns its record. */
  private bind(id: number, kind: BindingKind, fnType: boolean, linkage: Link): number {
    const prev = this.head[id] as number;
    if (prev >= 0 && this.bLevel[prev] === this.level) {
      // Redeclaration in the same scope: keep what shadows what.
      this.bKind[prev] = kind;
      this.bFnType[prev] = fnType ? 1 : 0;
      return prev;
    }
    if (this.bTop === this.bPrev.length) this.growBindings(this.bTop * 2);
    const b = this.bTop++;
    this.bPrev[b] = prev;
    this.bIdent[b] = id;
    this.bLevel[b] = this.level;
    this.bKind[b] = kind;
    this.bFnType[b] = fnType ? 1 : 0;
    this.bLinkage[b] = linkage;
    this.bExternal[b] = 0;
    this.head[id] = b;
    return b;
  }

  /** A use of an ordinary identifier in an expression. */
  private useName(id: number): void {
    const b = this.head[id] as number;
    if (b < 0) {
      const name = this.identifiers[id] as string;
      if (!isBuiltinName(name)) this.unresolved.add(name);
      return;
    }
    if (this.bLevel[b] === 0 || this.bExternal[b] === 1) this.addRef(id << 2);
  }

  /** The kind of what an identifier names here, or -1. */
  private kindOf(id: number): number {
    const b = this.head[id] as number;
    return b < 0 ? -1 : (this.bKind[b] as number);
  }

  private isTypedefName(i: number): boolean {
    if (this.tok(i) !== Tk.IDENT) return false;
    return this.kindOf(this.ident[i] as number) === BindingKind.Typedef;
  }

  /** Declare a tag in the current scope (or find it there); returns its record. */
  private declareTag(ns: number, id: number): number {
    const slot = (id << 2) | ns;
    const prev = this.tagHead[slot] as number;
    if (prev >= 0 && this.tLevel[prev] === this.level) return prev;
    if (this.tTop === this.tPrev.length) this.growTags(this.tTop * 2);
    const t = this.tTop++;
    this.tPrev[t] = prev;
    this.tSlot[t] = slot;
    this.tLevel[t] = this.level;
    this.tagHead[slot] = t;
    return t;
  }

  /** `struct foo` used: refer to the visible tag, or declare it here if none is. */
  private useTag(ns: number, id: number, declareHere: boolean): void {
    let t = this.tagHead[(id << 2) | ns] as number;
    if (t < 0 || (declareHere && this.tLevel[t] !== this.level)) t = this.declareTag(ns, id);
    if (this.tLevel[t] === 0) this.addRef((id << 2) | ns);
  }

  // ---- top level -----------------------------------------------------------

  translationUnit(): void {
    while (this.peek() !== Tk.EOF) this.externalDeclaration();
  }

  private externalDeclaration(): void {
    const c = this.peek();
    if (c === Pu.Semi) {
      this.pos++;
      return;
    }
    if (c === Kw.asm) {
      // File-scope basic asm: asm("...");
      this.pos++;
      this.expect(Pu.LParen);
      this.asmTemplate();
      this.expect(Pu.RParen);
      this.expect(Pu.Semi);
      return;
    }
    if (c === Kw.staticAssert) {
      this.newRefs();
      this.staticAssert();
      return;
    }
    this.declaration(true);
  }

  private staticAssert(): void {
    this.expect(Kw.staticAssert);
    this.expect(Pu.LParen);
    this.assignmentExpression();
    if (this.accept(Pu.Comma)) this.stringLiterals();
    this.expect(Pu.RParen);
    this.expect(Pu.Semi);
  }

  /**
   * A declaration at file scope (each declarator becomes an entity) or in a
   * block (declarators only bind names).
   */
  private declaration(fileScope: boolean): void {
    const first = this.pos;
    const outerRefs = this.refs;
    const outerStamp = this.stamp;
    const specRefs = fileScope ? this.newRefs() : outerRefs;
    this.declSpecifiers(fileScope ? first : -1);
    const storage = this.sStorage;
    const inline = this.sInline;
    const specAttributes = this.sAttributes;
    const sawType = this.sSawType;
    const fnType = this.sFnType;
    if (!sawType && specAttributes.length > 0 && this.peek() === Pu.Semi) {
      // An attribute declaration: __attribute__((fallthrough));
      this.pos++;
      this.refs = outerRefs;
      this.stamp = outerStamp;
      return;
    }
    if (
      !sawType &&
      storage === 'none' &&
      !inline &&
      this.peek() !== Tk.IDENT &&
      this.peek() !== Pu.Star &&
      this.peek() !== Pu.LParen
    ) {
      this.error(`expected a declaration, found ${this.found()}`);
    }
    if (this.accept(Pu.Semi)) {
      this.refs = outerRefs;
      this.stamp = outerStamp;
      return;
    }
    let pending: Entity[] | undefined;
    for (;;) {
      let declRefs = outerRefs;
      if (fileScope) declRefs = this.copyRefs(specRefs);
      else {
        this.refs = outerRefs;
        this.stamp = outerStamp;
      }
      this.declarator(false);
      const id = this.dName;
      if (id < 0) this.error('expected an identifier in the declaration');
      const nearest = this.dFirst;
      const params = this.dParams;
      const dAttributes = this.dAttributes;
      // An entity's attributes (a block's declarations need none kept).
      const attrs: Attribute[] = !fileScope
        ? NO_ATTRIBUTES
        : specAttributes.length === 0 && dAttributes === null
          ? []
          : [...specAttributes, ...(dAttributes ?? NO_ATTRIBUTES)];
      // asm labels and attributes after the declarator.
      for (;;) {
        const c = this.peek();
        if (c === Kw.asm) {
          this.pos++;
          this.skipBalanced(Pu.LParen, Pu.RParen);
          continue;
        }
        if (c === Kw.attribute) {
          const more = this.attributes();
          if (fileScope) attrs.push(...more);
          continue;
        }
        break;
      }
      const isFunction = nearest === Deriv.None ? fnType : nearest === Deriv.Function;

      if (storage === 'typedef') {
        this.bind(id, BindingKind.Typedef, isFunction, Link.None);
      } else if (isFunction) {
        const b = this.bind(id, BindingKind.Function, false, this.linkageOf(id, storage, true, fileScope));
        if (!fileScope) this.bExternal[b] = 1;
      } else {
        const b = this.bind(id, BindingKind.Object, false, this.linkageOf(id, storage, false, fileScope));
        if (!fileScope && storage === 'extern') this.bExternal[b] = 1;
      }

      if (fileScope && isFunction && storage !== 'typedef' && this.peek() === Pu.LBrace) {
        if (pending !== undefined) this.error('function definition after other declarators');
        const e = this.newEntity('function', id, storage, inline, attrs, first, declRefs);
        e.definition = true;
        e.bodyToken = this.pos;
        this.functionBody(params);
        e.lastToken = this.pos - 1;
        this.refs = outerRefs;
        this.stamp = outerStamp;
        return;
      }
      let hasInit = false;
      if (this.accept(Pu.Assign)) {
        hasInit = true;
        this.initializer();
      }
      if (fileScope) {
        const kind = storage === 'typedef' ? 'typedef' : isFunction ? 'function' : 'variable';
        const e = this.newEntity(kind, id, storage, inline, attrs, first, declRefs);
        // alias("target") makes gcc emit the symbol: a definition.
        e.definition =
          kind === 'typedef' ||
          (kind === 'variable' && (hasInit || storage !== 'extern')) ||
          attrs.some((a) => a.name === 'alias');
        (pending ??= []).push(e);
      }
      if (this.accept(Pu.Comma)) continue;
      break;
    }
    this.expect(Pu.Semi, 'after the declaration');
    if (pending !== undefined) for (const e of pending) e.lastToken = this.pos - 1;
    this.refs = outerRefs;
    this.stamp = outerStamp;
  }

  private linkageOf(id: number, storage: Storage, isFunction: boolean, fileScope: boolean): Link {
    if (!fileScope && !isFunction && storage !== 'extern') return Link.None;
    if (storage === 'static') return fileScope ? Link.Internal : Link.None;
    // extern, or a function/file-scope object without storage class: the
    // linkage of a prior visible declaration, else external.
    const prior = this.head[id] as number;
    if (prior >= 0 && this.bLevel[prior] === 0 && this.bLinkage[prior] !== Link.None)
      return this.bLinkage[prior] as Link;
    return Link.External;
  }

  private newEntity(
    kind: EntityKind,
    id: number,
    storage: Storage,
    inline: boolean,
    attrs: Attribute[],
    first: number,
    refs: number[],
  ): Entity {
    const b = this.head[id] as number;
    const linkage =
      kind === 'typedef' ? 'none' : b >= 0 ? (LINKAGES[this.bLinkage[b] as number] as Linkage) : 'external';
    const e = makeEntity(
      kind,
      this.identifiers[id] as string,
      id,
      storage,
      linkage,
      inline,
      attrs,
      first,
      -1,
      refs,
      id << 2,
    );
    this.entities.push(e);
    this.noteKind(id, kind);
    return e;
  }

  /** A definition's kind wins over a declaration's (they agree in valid C). */
  private noteKind(id: number, kind: EntityKind): void {
    if (this.ordinaryKind[id] === 0 || kind === 'function') this.ordinaryKind[id] = ORDINARY_KINDS.indexOf(kind);
  }

  private functionBody(params: number[] | null): void {
    this.enterScope();
    if (params !== null) for (const p of params) this.bind(p, BindingKind.Object, false, Link.None);
    this.compoundStatement();
    this.exitScope();
  }

  // ---- declaration specifiers ----------------------------------------------

  private isDeclSpecStart(i: number): boolean {
    const c = this.tok(i);
    return (
      (SPEC_FLAGS[c]! & (F_TYPE | F_QUALIFIER | F_STORAGE | F_OTHER_SPEC)) !== 0 ||
      c === Kw.extension ||
      this.isTypedefName(i)
    );
  }

  /** Can a type name start here (casts, sizeof, _Generic associations)? */
  private isTypeNameStart(i: number): boolean {
    const c = this.tok(i);
    if (c === Tk.IDENT) return this.kindOf(this.ident[i] as number) === BindingKind.Typedef;
    return (SPEC_FLAGS[c]! & (F_TYPE | F_QUALIFIER | F_OTHER_SPEC)) !== 0;
  }

  /**
   * Declaration specifiers. `entityStart` >= 0 at file scope: struct/union/enum
   * definitions there become entities. What was read is left in the s*
   * fields (no object per call): callers read them before parsing further.
   */
  private declSpecifiers(entityStart: number): void {
    let storage: Storage = 'none';
    let inline = false;
    let attributes = NO_ATTRIBUTES;
    let sawType = false;
    let fnType = false;
    for (;;) {
      const c = this.peek();
      if (c === Tk.IDENT) {
        if (sawType) break;
        const id = this.ident[this.pos] as number;
        const b = this.head[id] as number;
        if (b < 0 || this.bKind[b] !== BindingKind.Typedef) break;
        // `typedef_name :` in a struct is a bit-field named like a type; not our case here.
        this.useName(id);
        fnType = this.bFnType[b] === 1;
        sawType = true;
        this.pos++;
        continue;
      }
      const flags = SPEC_FLAGS[c] as number;
      if (flags === 0 && c !== Kw.extension) break;
      switch (c) {
        case Kw.typedef:
          storage = 'typedef';
          this.pos++;
          continue;
        case Kw.extern:
          storage = 'extern';
          this.pos++;
          continue;
        case Kw.static:
          storage = 'static';
          this.pos++;
          continue;
        case Kw.auto:
        case Kw.register:
        case Kw.noreturn:
        case Kw.extension:
        case Kw.threadLocal:
          this.pos++;
          continue;
        case Kw.inline:
          inline = true;
          this.pos++;
          continue;
        case Kw.attribute: {
          const more = this.attributes();
          attributes = attributes.length === 0 ? more : [...attributes, ...more];
          continue;
        }
        case Kw.alignas:
          this.pos++;
          this.typeOrExpressionInParens();
          continue;
        case Kw.struct:
        case Kw.union:
          this.structOrUnion(entityStart);
          sawType = true;
          continue;
        case Kw.enum:
          this.enumSpecifier(entityStart);
          sawType = true;
          continue;
        case Kw.typeof:
          // typeof(func) or typeof(int (int)) names a function type: `extern typeof(f) f;` declares a function.
          this.pos++;
          fnType = this.typeOrExpressionInParens();
          sawType = true;
          continue;
        default:
          break;
      }
      if (c === Kw.atomic && this.peekAt(1) === Pu.LParen) {
        this.pos += 2;
        this.typeName();
        this.expect(Pu.RParen);
        sawType = true;
        continue;
      }
      if ((flags & F_QUALIFIER) !== 0) {
        this.pos++;
        continue;
      }
      if ((flags & F_TYPE) !== 0) {
        sawType = true;
        this.pos++;
        continue;
      }
      break;
    }
    this.sStorage = storage;
    this.sInline = inline;
    this.sAttributes = attributes;
    this.sSawType = sawType;
    this.sFnType = fnType;
  }

  /** `( type-name )` or `( expression )`, as after typeof, _Alignas, sizeof; true if it names a function type. */
  private typeOrExpressionInParens(): boolean {
    this.expect(Pu.LParen);
    let fn = false;
    if (this.isTypeNameStart(this.pos)) fn = this.typeName();
    else if (this.peek() === Tk.IDENT && this.peekAt(1) === Pu.RParen) {
      fn = this.kindOf(this.ident[this.pos] as number) === BindingKind.Function;
      this.expression();
    } else this.expression();
    this.expect(Pu.RParen);
    return fn;
  }

  /** A type name; true if it is a function type. */
  private typeName(): boolean {
    this.declSpecifiers(-1);
    const fnType = this.sFnType;
    if (!this.sSawType && this.sAttributes.length === 0) this.error(`expected a type, found ${this.found()}`);
    this.declarator(true);
    return this.dFirst === Deriv.None ? fnType : this.dFirst === Deriv.Function;
  }

  // ---- attributes ----------------------------------------------------------

  private attributes(): Attribute[] {
    const out: Attribute[] = [];
    while (this.peek() === Kw.attribute) {
      this.pos++;
      this.expect(Pu.LParen);
      this.expect(Pu.LParen);
      while (this.peek() !== Pu.RParen) {
        if (this.accept(Pu.Comma)) continue;
        const c = this.peek();
        if (c !== Tk.IDENT && c < 100) this.error(`expected an attribute name, found ${this.found()}`);
        const name =
          c === Tk.IDENT ? this.attributeName(this.ident[this.pos] as number) : unwrap(this.textOf(this.pos, this.pos));
        this.pos++;
        let args = '';
        if (this.peek() === Pu.LParen) {
          const open = this.pos;
          this.attributeArguments(name);
          args = this.textOf(open + 1, this.pos - 2);
        }
        out.push({ name, args });
      }
      this.expect(Pu.RParen);
      this.expect(Pu.RParen);
    }
    return out;
  }

  private attributeName(id: number): string {
    let name = this.attributeNames.get(id);
    if (name === undefined) this.attributeNames.set(id, (name = unwrap(this.identifiers[id] as string)));
    return name;
  }

  /** Attribute arguments are mostly names of things that are not entities (printf, read_only); a few are references. */
  private attributeArguments(name: string): void {
    const open = this.pos;
    this.skipBalanced(Pu.LParen, Pu.RParen);
    if (name === 'cleanup') {
      for (let i = open + 1; i < this.pos - 1; i++)
        if (this.code[i] === Tk.IDENT) this.useName(this.ident[i] as number);
      return;
    }
    if (name === 'format' || name === 'access' || name === 'mode' || name === 'optimize' || name === 'target') return;
    // aligned(sizeof(struct x)), vector_size(N * sizeof(t)): types and enum constants count.
    for (let i = open + 1; i < this.pos - 1; i++) {
      const c = this.code[i];
      if (c === Tk.IDENT) {
        const id = this.ident[i] as number;
        const b = this.head[id] as number;
        if (
          b >= 0 &&
          (this.bKind[b] === BindingKind.Typedef || this.bKind[b] === BindingKind.Enumerator) &&
          this.bLevel[b] === 0
        )
          this.addRef(id << 2);
      } else if ((c === Kw.struct || c === Kw.union || c === Kw.enum) && this.code[i + 1] === Tk.IDENT) {
        const slot =
          ((this.ident[i + 1] as number) << 2) | (c === Kw.struct ? NS_STRUCT : c === Kw.union ? NS_UNION : NS_ENUM);
        const t = this.tagHead[slot] as number;
        if (t >= 0 && this.tLevel[t] === 0) this.addRef(slot);
      }
    }
  }

  private skipBalanced(open: number, close: number): void {
    this.expect(open);
    let depth = 1;
    while (depth > 0) {
      const c = this.peek();
      if (c === Tk.EOF) this.error(`unbalanced ${describeCode(open)}`);
      if (c === open) depth++;
      else if (c === close) depth--;
      this.pos++;
    }
  }

  // ---- struct, union, enum -------------------------------------------------

  private structOrUnion(entityStart: number): void {
    const isStruct = this.peek() === Kw.struct;
    const ns = isStruct ? NS_STRUCT : NS_UNION;
    this.pos++;
    const attrs = this.peek() === Kw.attribute ? this.attributes() : [];
    let id = -1;
    if (this.peek() === Tk.IDENT) {
      id = this.ident[this.pos] as number;
      this.pos++;
    }
    if (this.peek() !== Pu.LBrace) {
      if (id < 0) this.error(`expected a ${isStruct ? 'struct' : 'union'} name or '{', found ${this.found()}`);
      // `struct foo;` alone declares the tag in this scope; otherwise a use.
      this.useTag(ns, id, this.peek() === Pu.Semi);
      return;
    }
    const outer = this.refs;
    const outerStamp = this.stamp;
    let entity: Entity | undefined;
    const key = (id << 2) | ns;
    if (id >= 0) {
      this.declareTag(ns, id);
      if (this.level === 0) {
        this.addRef(key);
        entity = makeEntity(
          isStruct ? 'struct' : 'union',
          this.identifiers[id] as string,
          id,
          'none',
          'none',
          false,
          attrs,
          entityStart >= 0 ? entityStart : this.pos,
          this.pos,
          [],
          key,
        );
        entity.definition = true;
        this.entities.push(entity);
        this.refs = entity.refs;
        this.stamp = ++this.stamps;
      }
    }
    this.expect(Pu.LBrace);
    while (!this.accept(Pu.RBrace)) this.structMember();
    if (this.peek() === Kw.attribute) {
      const more = this.attributes();
      entity?.attributes.push(...more);
    }
    if (entity) {
      entity.lastToken = this.pos - 1;
      this.refs = outer;
      this.stamp = outerStamp;
      // The tag's own references are also the declaration's.
      for (const r of entity.refs) if (r !== key) this.addRef(r);
    }
  }

  private structMember(): void {
    if (this.accept(Pu.Semi)) return;
    if (this.peek() === Kw.staticAssert) {
      this.staticAssert();
      return;
    }
    this.declSpecifiers(-1);
    if (!this.sSawType) this.error(`expected a member declaration, found ${this.found()}`);
    if (this.accept(Pu.Semi)) return; // anonymous struct/union member
    for (;;) {
      if (this.peek() !== Pu.Colon) this.declarator(false, true);
      if (this.accept(Pu.Colon)) this.conditionalExpression();
      while (this.peek() === Kw.attribute) this.attributes();
      if (!this.accept(Pu.Comma)) break;
    }
    this.expect(Pu.Semi, 'after the member');
  }

  private enumSpecifier(entityStart: number): void {
    this.pos++;
    const attrs = this.peek() === Kw.attribute ? this.attributes() : [];
    let id = -1;
    if (this.peek() === Tk.IDENT) {
      id = this.ident[this.pos] as number;
      this.pos++;
    }
    // enum foo : int — not in gcc-12's C.
    if (this.peek() !== Pu.LBrace) {
      if (id < 0) this.error(`expected an enum name or '{', found ${this.found()}`);
      this.useTag(NS_ENUM, id, false);
      return;
    }
    const outer = this.refs;
    const outerStamp = this.stamp;
    let key = -1;
    let entity: Entity | undefined;
    if (id >= 0) {
      this.declareTag(NS_ENUM, id);
      key = (id << 2) | NS_ENUM;
      if (this.level === 0) {
        this.addRef(key);
        entity = makeEntity(
          'enum',
          this.identifiers[id] as string,
          id,
          'none',
          'none',
          false,
          attrs,
          entityStart >= 0 ? entityStart : this.pos,
          this.pos,
          [],
          -1,
        );
        entity.definition = true;
        this.entities.push(entity);
      }
    }
    this.expect(Pu.LBrace);
    while (this.peek() !== Pu.RBrace) {
      if (this.peek() !== Tk.IDENT) this.error(`expected an enumerator, found ${this.found()}`);
      const eid = this.ident[this.pos] as number;
      const first = this.pos;
      this.pos++;
      const enumRefs = this.level === 0 ? this.newRefs() : outer;
      const eattrs = this.peek() === Kw.attribute ? this.attributes() : [];
      if (this.accept(Pu.Assign)) this.conditionalExpression();
      this.refs = outer;
      this.stamp = outerStamp;
      this.bind(eid, BindingKind.Enumerator, false, Link.None);
      if (this.level === 0) {
        const own = eid << 2;
        const e = makeEntity(
          'enumerator',
          this.identifiers[eid] as string,
          eid,
          'none',
          'none',
          false,
          eattrs,
          first,
          this.pos - 1,
          enumRefs,
          own,
        );
        e.definition = true;
        e.parent = key;
        this.entities.push(e);
        this.noteKind(eid, 'enumerator');
        if (entity !== undefined) {
          for (const r of enumRefs) if (r !== own) entity.refs.push(r);
        } else {
          for (const r of enumRefs) if (r !== own) this.addRef(r);
        }
      }
      if (!this.accept(Pu.Comma)) break;
    }
    this.expect(Pu.RBrace);
    if (entity !== undefined && this.peek() === Kw.attribute) entity.attributes.push(...this.attributes());
    if (entity) {
      entity.lastToken = this.pos - 1;
      for (const r of entity.refs) this.addRef(r);
    }
  }

  // ---- declarators ---------------------------------------------------------

  /**
   * A declarator; `abstract` allows it to have no name (type names,
   * parameters). Parameter declarators may be either. What it read is left
   * in dName, dNameToken, dFirst, dParams and dAttributes.
   */
  private declarator(abstract: boolean, member = false): void {
    let attributes: Attribute[] | null = null;
    let pointers = 0;
    for (;;) {
      const c = this.peek();
      if (c === Pu.Star) {
        pointers++;
        this.pos++;
        continue;
      }
      if (isQualifier(c)) {
        this.pos++;
        continue;
      }
      if (c === Kw.attribute) {
        const more = this.attributes();
        attributes = attributes === null ? more : [...attributes, ...more];
        continue;
      }
      break;
    }
    let name = -1;
    let nameToken = -1;
    let inner = false;
    let innerFirst: Deriv = Deriv.None;
    let innerParams: number[] | null = null;
    let innerAttributes: Attribute[] | null = null;
    const c = this.peek();
    if (c === Tk.IDENT) {
      // After complete specifiers an identifier is the declared name, even one
      // that is also a typedef name (`initxattrs initxattrs`).
      name = this.ident[this.pos] as number;
      nameToken = this.pos;
      this.pos++;
    } else if (c === Pu.LParen && this.isNestedDeclarator(abstract)) {
      this.pos++;
      this.declarator(abstract, member);
      this.expect(Pu.RParen, 'to close the declarator');
      inner = true;
      name = this.dName;
      nameToken = this.dNameToken;
      innerFirst = this.dFirst;
      innerParams = this.dParams;
      innerAttributes = this.dAttributes;
    }
    let firstSuffix: Deriv = Deriv.None;
    let params: number[] | null = null;
    for (;;) {
      const s = this.peek();
      if (s === Pu.LBracket) {
        this.pos++;
        for (;;) {
          const q = this.peek();
          if (q === Kw.attribute) this.attributes();
          else if (q === Kw.static || isQualifier(q)) this.pos++;
          else break;
        }
        if (this.peek() === Pu.Star && this.peekAt(1) === Pu.RBracket) this.pos++;
        else if (this.peek() !== Pu.RBracket) this.assignmentExpression();
        this.expect(Pu.RBracket);
        if (firstSuffix === Deriv.None) firstSuffix = Deriv.Array;
        continue;
      }
      if (s === Pu.LParen) {
        const p = this.parameterList();
        if (firstSuffix === Deriv.None) {
          firstSuffix = Deriv.Function;
          params = p;
        }
        continue;
      }
      break;
    }
    this.dName = name;
    this.dNameToken = nameToken;
    this.dFirst =
      innerFirst !== Deriv.None
        ? innerFirst
        : firstSuffix !== Deriv.None
          ? firstSuffix
          : pointers > 0
            ? Deriv.Pointer
            : Deriv.None;
    this.dParams = inner && innerFirst !== Deriv.None ? innerParams : params;
    this.dAttributes =
      innerAttributes === null
        ? attributes
        : attributes === null
          ? innerAttributes
          : [...attributes, ...innerAttributes];
  }

  /** After '(' in a declarator: a parenthesized declarator, or a parameter list? */
  private isNestedDeclarator(abstract: boolean): boolean {
    const n = this.peekAt(1);
    if (n === Pu.Star || n === Pu.LParen || n === Pu.LBracket || n === Kw.attribute) return true;
    // `(T)` with T a typedef name is a parameter list (C11 6.7.6.3p11).
    if (n === Tk.IDENT) return !abstract || !this.isTypedefName(this.pos + 1);
    return false;
  }

  /** A parameter list; the identifier ids of the parameters' names. */
  private parameterList(): number[] {
    this.expect(Pu.LParen);
    const names: number[] = [];
    this.enterScope();
    if (this.peek() === Kw.void && this.peekAt(1) === Pu.RParen) this.pos++;
    while (this.peek() !== Pu.RParen) {
      if (this.accept(Pu.Ellipsis)) break;
      if (this.peek() === Tk.IDENT && !this.isTypedefName(this.pos)) {
        // K&R identifier list.
        names.push(this.ident[this.pos] as number);
        this.pos++;
      } else {
        this.declSpecifiers(-1);
        if (!this.sSawType && this.sStorage === 'none' && this.sAttributes.length === 0) {
          this.error(`expected a parameter declaration, found ${this.found()}`);
        }
        this.declarator(true);
        const id = this.dName;
        while (this.peek() === Kw.attribute) this.attributes();
        if (id >= 0) {
          names.push(id);
          this.bind(id, BindingKind.Object, false, Link.None);
        }
      }
      if (!this.accept(Pu.Comma)) break;
    }
    this.exitScope();
    this.expect(Pu.RParen, 'to close the parameter list');
    return names;
  }

  // ---- initializers --------------------------------------------------------

  private initializer(): void {
    if (this.peek() !== Pu.LBrace) {
      this.assignmentExpression();
      return;
    }
    this.pos++;
    while (this.peek() !== Pu.RBrace) {
      // Designators: .member, [index], [lo ... hi], and GNU's `member:`.
      let designated = false;
      for (;;) {
        if (this.peek() === Pu.Dot && this.peekAt(1) === Tk.IDENT) {
          this.pos += 2;
          designated = true;
          continue;
        }
        if (this.peek() === Pu.LBracket) {
          this.pos++;
          this.conditionalExpression();
          if (this.accept(Pu.Ellipsis)) this.conditionalExpression();
          this.expect(Pu.RBracket);
          designated = true;
          continue;
        }
        break;
      }
      if (designated) this.expect(Pu.Assign, 'after the designator');
      else if (this.peek() === Tk.IDENT && this.peekAt(1) === Pu.Colon) this.pos += 2;
      this.initializer();
      if (!this.accept(Pu.Comma)) break;
    }
    this.expect(Pu.RBrace, 'to close the initializer');
  }

  // ---- statements ----------------------------------------------------------

  private compoundStatement(): void {
    this.expect(Pu.LBrace);
    this.enterScope();
    if (this.peek() === Kw.label) {
      // __label__ a, b;
      while (this.accept(Kw.label)) {
        do this.pos++;
        while (this.accept(Pu.Comma));
        this.expect(Pu.Semi);
      }
    }
    while (this.peek() !== Pu.RBrace) {
      if (this.peek() === Tk.EOF) this.error("expected '}' before end of file");
      this.blockItem();
    }
    this.pos++;
    this.exitScope();
  }

  private blockItem(): void {
    const c = this.peek();
    if (c === Kw.staticAssert) {
      this.staticAssert();
      return;
    }
    if (c === Kw.label) {
      while (this.accept(Kw.label)) {
        do this.pos++;
        while (this.accept(Pu.Comma));
        this.expect(Pu.Semi);
      }
      return;
    }
    if (this.startsDeclaration()) {
      this.declaration(false);
      return;
    }
    this.statement();
  }

  /** At a block item: a declaration (not an expression, not a label)? */
  private startsDeclaration(): boolean {
    let i = this.pos;
    while (this.tok(i) === Kw.extension) i++;
    const c = this.tok(i);
    if (c === Tk.IDENT) return this.isTypedefName(i) && this.tok(i + 1) !== Pu.Colon;
    return this.isDeclSpecStart(i) && c !== Kw.extension;
  }

  private statement(): void {
    const c = this.peek();
    switch (c) {
      case Pu.LBrace:
        this.compoundStatement();
        return;
      case Pu.Semi:
        this.pos++;
        return;
      case Kw.if:
        this.pos++;
        this.parenExpression();
        this.statement();
        if (this.accept(Kw.else)) this.statement();
        return;
      case Kw.switch:
      case Kw.while:
        this.pos++;
        this.parenExpression();
        this.statement();
        return;
      case Kw.do:
        this.pos++;
        this.statement();
        this.expect(Kw.while);
        this.parenExpression();
        this.expect(Pu.Semi);
        return;
      case Kw.for:
        this.pos++;
        this.expect(Pu.LParen);
        this.enterScope();
        if (this.startsDeclaration()) this.declaration(false);
        else {
          if (this.peek() !== Pu.Semi) this.expression();
          this.expect(Pu.Semi);
        }
        if (this.peek() !== Pu.Semi) this.expression();
        this.expect(Pu.Semi);
        if (this.peek() !== Pu.RParen) this.expression();
        this.expect(Pu.RParen);
        this.statement();
        this.exitScope();
        return;
      case Kw.goto:
        this.pos++;
        if (this.accept(Pu.Star)) this.expression();
        else this.expect(Tk.IDENT, 'after goto');
        this.expect(Pu.Semi);
        return;
      case Kw.continue:
      case Kw.break:
        this.pos++;
        this.expect(Pu.Semi);
        return;
      case Kw.return:
        this.pos++;
        if (this.peek() !== Pu.Semi) this.expression();
        this.expect(Pu.Semi);
        return;
      case Kw.case:
        this.pos++;
        this.conditionalExpression();
        if (this.accept(Pu.Ellipsis)) this.conditionalExpression();
        this.expect(Pu.Colon);
        this.labelTail();
        return;
      case Kw.default:
        this.pos++;
        this.expect(Pu.Colon);
        this.labelTail();
        return;
      case Kw.asm:
        this.asmStatement();
        return;
      case Tk.IDENT:
        if (this.peekAt(1) === Pu.Colon) {
          this.pos += 2;
          while (this.peek() === Kw.attribute) this.attributes();
          this.labelTail();
          return;
        }
        break;
      default:
        break;
    }
    this.expression();
    this.expect(Pu.Semi, 'after the expression');
  }

  /** A label may end a block in GNU C (and C2x); otherwise a statement follows. */
  private labelTail(): void {
    if (this.peek() === Pu.RBrace) return;
    if (this.startsDeclaration()) {
      this.declaration(false);
      return;
    }
    this.statement();
  }

  private parenExpression(): void {
    this.expect(Pu.LParen);
    this.expression();
    this.expect(Pu.RParen);
  }

  /** asm [volatile|inline|goto]* ( "tmpl" : outputs : inputs : clobbers : labels ); */
  private asmStatement(): void {
    this.pos++;
    for (;;) {
      const c = this.peek();
      if (c === Kw.volatile || c === Kw.inline || c === Kw.goto) {
        this.pos++;
        continue;
      }
      break;
    }
    this.expect(Pu.LParen);
    this.asmTemplate();
    for (let section = 0; section < 4 && this.accept(Pu.Colon); section++) {
      if (section < 2) {
        while (this.peek() === Pu.LBracket || this.peek() === Tk.STRING) {
          if (this.accept(Pu.LBracket)) {
            this.expect(Tk.IDENT, 'as the asm operand name');
            this.expect(Pu.RBracket);
          }
          this.stringLiterals();
          this.expect(Pu.LParen);
          this.expression();
          this.expect(Pu.RParen);
          if (!this.accept(Pu.Comma)) break;
        }
      } else if (section === 2) {
        while (this.peek() === Tk.STRING) {
          this.stringLiterals();
          if (!this.accept(Pu.Comma)) break;
        }
      } else {
        while (this.peek() === Tk.IDENT) {
          this.pos++;
          if (!this.accept(Pu.Comma)) break;
        }
      }
    }
    this.expect(Pu.RParen, 'to close the asm statement');
    this.expect(Pu.Semi);
  }

  private asmTemplate(): void {
    const first = this.pos;
    this.stringLiterals();
    this.asmTemplates.push([first, this.pos - 1]);
  }

  private stringLiterals(): void {
    if (this.peek() !== Tk.STRING) this.error(`expected a string literal, found ${this.found()}`);
    while (this.peek() === Tk.STRING) this.pos++;
  }

  // ---- expressions ---------------------------------------------------------

  private expression(): void {
    this.assignmentExpression();
    while (this.accept(Pu.Comma)) this.assignmentExpression();
  }

  private assignmentExpression(): void {
    this.operatorExpression(false);
  }

  private conditionalExpression(): void {
    this.operatorExpression(true);
  }

  /**
   * Operands joined by binary, conditional and (unless `conditionalOnly`)
   * assignment operators. No tree is built, so precedence does not matter:
   * C's grammar accepts any operator between two operands, and an assignment
   * as the last operand of a conditional, as this loop does.
   */
  private operatorExpression(conditionalOnly: boolean): void {
    for (;;) {
      this.operand();
      const c = this.peek();
      if (BINARY_OP[c] === 1) {
        this.pos++;
        continue;
      }
      if (c === Pu.Question) {
        this.pos++;
        // GNU: `a ?: b`
        if (this.peek() !== Pu.Colon) this.expression();
        this.expect(Pu.Colon);
        continue;
      }
      if (!conditionalOnly && ASSIGN_OP[c] === 1) {
        this.pos++;
        continue;
      }
      return;
    }
  }

  /** `( type-name )`, and the compound literal `{...}` that may follow it; true if one did. */
  private parenthesizedTypeName(): boolean {
    this.pos++;
    this.typeName();
    this.expect(Pu.RParen);
    if (this.peek() !== Pu.LBrace) return false;
    this.initializer();
    this.postfixTail();
    return true;
  }

  /**
   * A cast-expression: prefix operators and casts, then a primary expression
   * and its postfix operators. After ++, -- and sizeof comes a
   * unary-expression (no cast); &&label and sizeof(type) take no postfix.
   */
  private operand(): void {
    let castAllowed = true;
    for (let prefixes = 0; ; prefixes++) {
      // The recursive parser this loop replaced ran out of stack on absurd
      // chains; they stay an error ("nesting too deep", see parseTranslationUnit).
      if (prefixes > MAX_PREFIXES) throw new RangeError('nesting too deep');
      const c = this.peek();
      if (c === Pu.LParen) {
        if (castAllowed && this.isTypeNameStart(this.pos + 1)) {
          if (this.parenthesizedTypeName()) return; // a compound literal, postfix included
          continue;
        }
        break;
      }
      if (c === Pu.Inc || c === Pu.Dec) {
        this.pos++;
        castAllowed = false;
        continue;
      }
      if (UNARY_OP[c] === 1) {
        this.pos++;
        castAllowed = true;
        continue;
      }
      if (c === Pu.AndAnd) {
        // &&label: a label's address.
        this.pos++;
        this.expect(Tk.IDENT, 'after &&');
        return;
      }
      if (c === Kw.sizeof || c === Kw.alignof) {
        this.pos++;
        if (this.peek() === Pu.LParen && this.isTypeNameStart(this.pos + 1)) {
          this.parenthesizedTypeName();
          return;
        }
        castAllowed = false;
        continue;
      }
      break;
    }
    this.primaryExpression();
    this.postfixTail();
  }

  private postfixTail(): void {
    for (;;) {
      const c = this.peek();
      if (c === Pu.LBracket) {
        this.pos++;
        this.expression();
        this.expect(Pu.RBracket);
      } else if (c === Pu.LParen) {
        this.pos++;
        while (this.peek() !== Pu.RParen) {
          this.assignmentExpression();
          if (!this.accept(Pu.Comma)) break;
        }
        this.expect(Pu.RParen, 'to close the call');
      } else if (c === Pu.Dot || c === Pu.Arrow) {
        this.pos++;
        this.expect(Tk.IDENT, 'as the member name');
      } else if (c === Pu.Inc || c === Pu.Dec) {
        this.pos++;
      } else {
        return;
      }
    }
  }

  private primaryExpression(): void {
    const c = this.peek();
    switch (c) {
      case Tk.IDENT:
        this.useName(this.ident[this.pos] as number);
        this.pos++;
        return;
      case Tk.NUMBER:
      case Tk.CHAR:
        this.pos++;
        return;
      case Tk.STRING:
        this.stringLiterals();
        return;
      case Pu.LParen:
        this.pos++;
        if (this.peek() === Pu.LBrace) {
          this.compoundStatement(); // statement expression
        } else {
          this.expression();
        }
        this.expect(Pu.RParen);
        return;
      case Kw.generic:
        this.genericSelection();
        return;
      case Kw.offsetof:
        this.pos++;
        this.expect(Pu.LParen);
        this.typeName();
        this.expect(Pu.Comma);
        this.memberDesignator();
        this.expect(Pu.RParen);
        return;
      case Kw.vaArg:
      case Kw.convertVector:
        this.pos++;
        this.expect(Pu.LParen);
        this.assignmentExpression();
        this.expect(Pu.Comma);
        this.typeName();
        this.expect(Pu.RParen);
        return;
      case Kw.typesCompatible:
        this.pos++;
        this.expect(Pu.LParen);
        this.typeName();
        this.expect(Pu.Comma);
        this.typeName();
        this.expect(Pu.RParen);
        return;
      case Kw.shuffleVector:
        this.pos++;
        this.expect(Pu.LParen);
        this.expression();
        this.expect(Pu.RParen);
        return;
      default:
        this.error(`expected an expression, found ${this.found()}`);
    }
  }

  /** member(.member|[index])* inside __builtin_offsetof. */
  private memberDesignator(): void {
    this.expect(Tk.IDENT, 'as the member name');
    for (;;) {
      if (this.accept(Pu.Dot)) {
        this.expect(Tk.IDENT, 'as the member name');
        continue;
      }
      if (this.accept(Pu.LBracket)) {
        this.expression();
        this.expect(Pu.RBracket);
        continue;
      }
      if (this.accept(Pu.Arrow)) {
        this.expect(Tk.IDENT, 'as the member name');
        continue;
      }
      return;
    }
  }

  private genericSelection(): void {
    this.pos++;
    this.expect(Pu.LParen);
    this.assignmentExpression();
    while (this.accept(Pu.Comma)) {
      if (!this.accept(Kw.default)) this.typeName();
      this.expect(Pu.Colon);
      this.assignmentExpression();
    }
    this.expect(Pu.RParen);
  }
}
