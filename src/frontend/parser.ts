import { lex, LexError, type TokenStream } from './lexer.js';
import { describeCode, kw, punctCode as P, T } from './tokens.js';

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
  /** Keys of the top-level entities this one refers to ('struct foo', 'bar'). */
  refs: Set<string>;
  /** For an enumerator, the enum's tag key ('enum foo') or '' when the enum has no tag. */
  parent: string;
}

export class ParseError extends Error {
  constructor(message: string, readonly token: number, readonly offset: number) {
    super(message);
  }
}

const enum BindingKind { Typedef, Object, Function, Enumerator }

interface Binding {
  kind: BindingKind;
  level: number;
  prev: Binding | undefined;
  /** For typedefs: names a function type (`typedef int fn_t(void)`), so `fn_t foo;` declares a function. */
  fnType: boolean;
  linkage: Linkage;
  /** A block-scope extern or function declaration: it names the file-scope entity. */
  external: boolean;
}

interface TagBinding {
  level: number;
  prev: TagBinding | undefined;
  /** 'struct foo': the reference key, built once. */
  key: string;
  map: Map<string, TagBinding>;
  name: string;
}

interface DeclSpecs {
  storage: Storage;
  inline: boolean;
  threadLocal: boolean;
  attributes: Attribute[];
  sawType: boolean;
  /** The type is a typedef for a function type. */
  fnType: boolean;
}

const enum Deriv { Pointer, Array, Function }

interface Declarator {
  name: string | undefined;
  nameToken: number;
  /** Derivations from the identifier outwards: `*f(void)` is [Function, Pointer]. */
  derivs: Deriv[];
  /** Parameter names of the function derivation nearest the identifier. */
  params: string[] | undefined;
  attributes: Attribute[];
}

// Token codes used by the parser.
const LPAREN = P('('), RPAREN = P(')'), LBRACE = P('{'), RBRACE = P('}'), LBRACKET = P('['), RBRACKET = P(']');
const SEMI = P(';'), COMMA = P(','), COLON = P(':'), ASSIGN = P('='), STAR = P('*'), DOT = P('.'), ARROW = P('->');
const ELLIPSIS = P('...'), QUESTION = P('?'), AMP = P('&'), ANDAND = P('&&'), INC = P('++'), DEC = P('--');
const PLUS = P('+'), MINUS = P('-'), TILDE = P('~'), BANG = P('!');

const K = {
  auto: kw('auto'), break: kw('break'), case: kw('case'), char: kw('char'), const: kw('const'), continue: kw('continue'),
  default: kw('default'), do: kw('do'), double: kw('double'), else: kw('else'), enum: kw('enum'), extern: kw('extern'),
  float: kw('float'), for: kw('for'), goto: kw('goto'), if: kw('if'), inline: kw('inline'), int: kw('int'), long: kw('long'),
  register: kw('register'), restrict: kw('restrict'), return: kw('return'), short: kw('short'), signed: kw('signed'),
  sizeof: kw('sizeof'), static: kw('static'), struct: kw('struct'), switch: kw('switch'), typedef: kw('typedef'),
  union: kw('union'), unsigned: kw('unsigned'), void: kw('void'), volatile: kw('volatile'), while: kw('while'),
  alignas: kw('_Alignas'), alignof: kw('_Alignof'), atomic: kw('_Atomic'), bool: kw('_Bool'), complex: kw('_Complex'),
  generic: kw('_Generic'), noreturn: kw('_Noreturn'), staticAssert: kw('_Static_assert'), threadLocal: kw('_Thread_local'),
  asm: kw('asm'), attribute: kw('__attribute__'), offsetof: kw('__builtin_offsetof'), vaArg: kw('__builtin_va_arg'),
  typesCompatible: kw('__builtin_types_compatible_p'), extension: kw('__extension__'), imag: kw('__imag__'),
  real: kw('__real__'), int128: kw('__int128'), label: kw('__label__'), typeof: kw('typeof'), autoType: kw('__auto_type'),
  segGs: kw('__seg_gs'), segFs: kw('__seg_fs'), float128: kw('_Float128'), convertVector: kw('__builtin_convertvector'),
  shuffleVector: kw('__builtin_shufflevector'),
};

const TYPE_KEYWORDS = new Set([
  K.void, K.char, K.short, K.int, K.long, K.float, K.double, K.signed, K.unsigned, K.bool, K.complex, K.int128,
  K.float128, K.struct, K.union, K.enum, K.typeof, K.autoType,
]);
const QUALIFIERS = new Set([K.const, K.volatile, K.restrict, K.atomic, K.segGs, K.segFs]);
const STORAGE = new Set([K.typedef, K.extern, K.static, K.auto, K.register, K.threadLocal, K.inline, K.noreturn]);

// Binary operator precedence (higher binds tighter); 0 = not a binary operator.
const BINARY_PREC = new Int8Array(256);
for (const [ops, prec] of [
  [['||'], 1], [['&&'], 2], [['|'], 3], [['^'], 4], [['&'], 5], [['==', '!='], 6], [['<', '>', '<=', '>='], 7],
  [['<<', '>>'], 8], [['+', '-'], 9], [['*', '/', '%'], 10],
] as const) {
  for (const op of ops) BINARY_PREC[P(op)] = prec;
}
const ASSIGN_OPS = new Set(['=', '*=', '/=', '%=', '+=', '-=', '<<=', '>>=', '&=', '^=', '|='].map((o) => P(o as '=')));

/** Names gcc knows without a declaration. */
function isBuiltinName(name: string): boolean {
  return name.startsWith('__builtin_') || name.startsWith('__sync_') || name.startsWith('__atomic_') ||
    name === '__func__' || name === '__FUNCTION__' || name === '__PRETTY_FUNCTION__' || name.startsWith('__ia32_') ||
    name === '__has_builtin';
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
}

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
  return { tokens, entities: parser.entities, asmTemplates: parser.asmTemplates, unresolved: parser.unresolved };
}

class Parser {
  pos = 0;
  readonly entities: Entity[] = [];
  readonly unresolved = new Set<string>();
  readonly asmTemplates: [number, number][] = [];
  // The stream's arrays, re-read whenever the lexer may have grown them (in fill).
  private code: Int16Array;
  private ident: Int32Array;
  private readonly identifiers: string[];
  private lexed: number;
  private level = 0;
  private readonly ordinary = new Map<string, Binding>();
  /** One map per tag keyword, keyed by the interned name: no key strings built per use. */
  private readonly tagMaps: Record<'struct' | 'union' | 'enum', Map<string, TagBinding>> = {
    struct: new Map(), union: new Map(), enum: new Map(),
  };
  /** Names bound since each scope opened: one log and a stack of marks, so scopes allocate nothing. */
  private readonly boundNames: string[] = [];
  private readonly boundTags: TagBinding[] = [];
  private readonly nameMarks: number[] = [];
  private readonly tagMarks: number[] = [];
  /** Where references go: the set of the top-level entity being read. */
  private refs: Set<string> = new Set();

  constructor(private readonly ts: TokenStream) {
    this.code = ts.code;
    this.ident = ts.ident;
    this.identifiers = ts.identifiers;
    this.lexed = ts.count;
    // Level -1: visible everywhere, never a reference to an entity of the TU.
    for (const name of BUILTIN_TYPEDEFS) this.bind(name, BindingKind.Typedef, false, 'none').level = -1;
  }

  // ---- token helpers -------------------------------------------------------

  /** The code of token i, lexing more text first if needed. */
  private tok(i: number): number {
    if (i >= this.lexed) {
      this.ts.fill(i + 256);
      this.code = this.ts.code;
      this.ident = this.ts.ident;
      this.lexed = this.ts.count;
      if (i >= this.lexed) return T.EOF;
    }
    return this.code[i] as number;
  }

  private peek(ahead = 0): number {
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
    if (this.tok(this.pos) !== c) this.error(`expected ${describeCode(c)}${what ? ` ${what}` : ''}, found ${this.found()}`);
    this.pos++;
  }

  private found(): string {
    const c = this.peek();
    if (c === T.IDENT) return `'${this.name()}'`;
    if (c === T.NUMBER || c === T.STRING || c === T.CHAR) {
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

  // ---- scopes --------------------------------------------------------------

  private enterScope(): void {
    this.level++;
    this.nameMarks.push(this.boundNames.length);
    this.tagMarks.push(this.boundTags.length);
  }

  private exitScope(): void {
    const nameMark = this.nameMarks.pop() as number;
    while (this.boundNames.length > nameMark) {
      const n = this.boundNames.pop() as string;
      const b = this.ordinary.get(n);
      if (b?.prev) this.ordinary.set(n, b.prev);
      else this.ordinary.delete(n);
    }
    const tagMark = this.tagMarks.pop() as number;
    while (this.boundTags.length > tagMark) {
      const b = this.boundTags.pop() as TagBinding;
      if (b.prev) b.map.set(b.name, b.prev);
      else b.map.delete(b.name);
    }
    this.level--;
  }

  private bind(name: string, kind: BindingKind, fnType: boolean, linkage: Linkage): Binding {
    const prev = this.ordinary.get(name);
    if (prev && prev.level === this.level) {
      // Redeclaration in the same scope: keep what shadows what.
      prev.kind = kind;
      prev.fnType = fnType;
      return prev;
    }
    const b: Binding = { kind, level: this.level, prev, fnType, linkage, external: false };
    this.ordinary.set(name, b);
    this.boundNames.push(name);
    return b;
  }

  /** A use of an ordinary identifier in an expression. */
  private useName(name: string): void {
    const b = this.ordinary.get(name);
    if (b === undefined) {
      if (!isBuiltinName(name)) this.unresolved.add(name);
      return;
    }
    if (b.level === 0 || b.external) this.refs.add(name);
  }

  private isTypedefName(i: number): boolean {
    if (this.tok(i) !== T.IDENT) return false;
    return this.ordinary.get(this.name(i))?.kind === BindingKind.Typedef;
  }

  private declareTag(keyword: 'struct' | 'union' | 'enum', name: string): TagBinding {
    const map = this.tagMaps[keyword];
    const prev = map.get(name);
    if (prev && prev.level === this.level) return prev;
    const b: TagBinding = { level: this.level, prev, key: prev?.key ?? `${keyword} ${name}`, map, name };
    map.set(name, b);
    this.boundTags.push(b);
    return b;
  }

  /** `struct foo` used: refer to the visible tag, or declare it here if none is. */
  private useTag(keyword: 'struct' | 'union' | 'enum', name: string, declareHere: boolean): void {
    let b = this.tagMaps[keyword].get(name);
    if (b === undefined || (declareHere && b.level !== this.level)) b = this.declareTag(keyword, name);
    if (b.level === 0) this.refs.add(b.key);
  }

  // ---- top level -----------------------------------------------------------

  translationUnit(): void {
    while (this.peek() !== T.EOF) this.externalDeclaration();
  }

  private externalDeclaration(): void {
    const c = this.peek();
    if (c === SEMI) { this.pos++; return; }
    if (c === K.asm) {
      // File-scope basic asm: asm("...");
      this.pos++;
      this.expect(LPAREN);
      this.asmTemplate();
      this.expect(RPAREN);
      this.expect(SEMI);
      return;
    }
    if (c === K.staticAssert) {
      this.refs = new Set();
      this.staticAssert();
      return;
    }
    this.declaration(true);
  }

  private staticAssert(): void {
    this.expect(K.staticAssert);
    this.expect(LPAREN);
    this.assignmentExpression();
    if (this.accept(COMMA)) this.stringLiterals();
    this.expect(RPAREN);
    this.expect(SEMI);
  }

  /**
   * A declaration at file scope (each declarator becomes an entity) or in a
   * block (declarators only bind names).
   */
  private declaration(fileScope: boolean): void {
    const first = this.pos;
    const outerRefs = this.refs;
    const specRefs = fileScope ? new Set<string>() : outerRefs;
    this.refs = specRefs;
    const specs = this.declSpecifiers(fileScope ? first : -1);
    if (!specs.sawType && specs.attributes.length > 0 && this.peek() === SEMI) {
      // An attribute declaration: __attribute__((fallthrough));
      this.pos++;
      this.refs = outerRefs;
      return;
    }
    if (!specs.sawType && specs.storage === 'none' && !specs.inline && this.peek() !== T.IDENT && this.peek() !== STAR && this.peek() !== LPAREN) {
      this.error(`expected a declaration, found ${this.found()}`);
    }
    if (this.accept(SEMI)) {
      this.refs = outerRefs;
      return;
    }
    const pending: Entity[] = [];
    for (;;) {
      const declRefs = fileScope ? new Set(specRefs) : outerRefs;
      this.refs = declRefs;
      const d = this.declarator(false);
      if (d.name === undefined) this.error('expected an identifier in the declaration');
      const attrs = [...specs.attributes, ...d.attributes];
      // asm labels and attributes after the declarator.
      for (;;) {
        if (this.peek() === K.asm) { this.pos++; this.skipBalanced(LPAREN, RPAREN); continue; }
        if (this.peek() === K.attribute) { attrs.push(...this.attributes()); continue; }
        break;
      }
      const isFunction = d.derivs.length === 0 ? specs.fnType : d.derivs[0] === Deriv.Function;
      const name = d.name;

      if (specs.storage === 'typedef') {
        this.bind(name, BindingKind.Typedef, isFunction, 'none');
      } else if (isFunction) {
        const b = this.bind(name, BindingKind.Function, false, this.linkageOf(name, specs.storage, true, fileScope));
        if (!fileScope) b.external = true;
      } else {
        const b = this.bind(name, BindingKind.Object, false, this.linkageOf(name, specs.storage, false, fileScope));
        if (!fileScope && specs.storage === 'extern') b.external = true;
      }

      if (fileScope && isFunction && specs.storage !== 'typedef' && this.peek() === LBRACE) {
        if (pending.length) this.error('function definition after other declarators');
        const e = this.newEntity('function', name, specs, attrs, first, declRefs);
        e.definition = true;
        e.bodyToken = this.pos;
        this.refs = declRefs;
        this.functionBody(d.params ?? []);
        declRefs.delete(name); // recursion is not a dependency
        e.lastToken = this.pos - 1;
        this.refs = outerRefs;
        return;
      }
      let hasInit = false;
      if (this.accept(ASSIGN)) {
        hasInit = true;
        this.initializer();
      }
      if (fileScope) {
        const kind = specs.storage === 'typedef' ? 'typedef' : isFunction ? 'function' : 'variable';
        const e = this.newEntity(kind, name, specs, attrs, first, declRefs);
        // alias("target") makes gcc emit the symbol: a definition.
        e.definition = kind === 'typedef' || (kind === 'variable' && (hasInit || specs.storage !== 'extern')) ||
          attrs.some((a) => a.name === 'alias');
        pending.push(e);
      }
      if (this.accept(COMMA)) continue;
      break;
    }
    this.expect(SEMI, 'after the declaration');
    for (const e of pending) e.lastToken = this.pos - 1;
    this.refs = outerRefs;
  }

  private linkageOf(name: string, storage: Storage, isFunction: boolean, fileScope: boolean): Linkage {
    if (!fileScope && !isFunction && storage !== 'extern') return 'none';
    if (storage === 'static') return fileScope ? 'internal' : 'none';
    // extern, or a function/file-scope object without storage class: the
    // linkage of a prior visible declaration, else external.
    const prior = this.ordinary.get(name);
    if (prior && prior.level === 0 && prior.linkage !== 'none') return prior.linkage;
    return 'external';
  }

  private newEntity(kind: EntityKind, name: string, specs: DeclSpecs, attrs: Attribute[], first: number, refs: Set<string>): Entity {
    const linkage = kind === 'typedef' ? 'none' : (this.ordinary.get(name)?.linkage ?? 'external');
    const e: Entity = {
      kind, name, storage: specs.storage, linkage, definition: false, inline: specs.inline, attributes: attrs,
      firstToken: first, lastToken: first, bodyToken: -1, refs, parent: '',
    };
    refs.delete(name);
    this.entities.push(e);
    return e;
  }

  private functionBody(params: string[]): void {
    this.enterScope();
    for (const p of params) this.bind(p, BindingKind.Object, false, 'none');
    this.compoundStatement();
    this.exitScope();
  }

  // ---- declaration specifiers ----------------------------------------------

  private isDeclSpecStart(i: number): boolean {
    const c = this.tok(i);
    return TYPE_KEYWORDS.has(c) || QUALIFIERS.has(c) || STORAGE.has(c) || c === K.attribute || c === K.alignas ||
      c === K.extension || this.isTypedefName(i);
  }

  /** Can a type name start here (casts, sizeof, _Generic associations)? */
  private isTypeNameStart(i: number): boolean {
    const c = this.tok(i);
    return TYPE_KEYWORDS.has(c) || QUALIFIERS.has(c) || c === K.attribute || c === K.alignas || this.isTypedefName(i);
  }

  /** `entityStart` >= 0 at file scope: struct/union/enum definitions there become entities. */
  private declSpecifiers(entityStart: number): DeclSpecs {
    const s: DeclSpecs = { storage: 'none', inline: false, threadLocal: false, attributes: [], sawType: false, fnType: false };
    for (;;) {
      const c = this.peek();
      if (c === T.IDENT) {
        if (s.sawType) break;
        const b = this.ordinary.get(this.name());
        if (b?.kind !== BindingKind.Typedef) break;
        // `typedef_name :` in a struct is a bit-field named like a type; not our case here.
        this.useName(this.name());
        s.fnType = b.fnType;
        s.sawType = true;
        this.pos++;
        continue;
      }
      if (c === K.typedef) { s.storage = 'typedef'; this.pos++; continue; }
      if (c === K.extern) { s.storage = 'extern'; this.pos++; continue; }
      if (c === K.static) { s.storage = 'static'; this.pos++; continue; }
      if (c === K.auto || c === K.register || c === K.noreturn || c === K.extension) { this.pos++; continue; }
      if (c === K.threadLocal) { s.threadLocal = true; this.pos++; continue; }
      if (c === K.inline) { s.inline = true; this.pos++; continue; }
      if (c === K.attribute) { s.attributes.push(...this.attributes()); continue; }
      if (c === K.alignas) { this.pos++; this.typeOrExpressionInParens(); continue; }
      if (c === K.atomic && this.peek(1) === LPAREN) {
        this.pos += 2;
        this.typeName();
        this.expect(RPAREN);
        s.sawType = true;
        continue;
      }
      if (QUALIFIERS.has(c)) { this.pos++; continue; }
      if (c === K.struct || c === K.union) { this.structOrUnion(entityStart); s.sawType = true; continue; }
      if (c === K.enum) { this.enumSpecifier(entityStart); s.sawType = true; continue; }
      if (c === K.typeof) {
        // typeof(func) or typeof(int (int)) names a function type: `extern typeof(f) f;` declares a function.
        this.pos++;
        s.fnType = this.typeOrExpressionInParens();
        s.sawType = true;
        continue;
      }
      if (TYPE_KEYWORDS.has(c)) { s.sawType = true; this.pos++; continue; }
      break;
    }
    return s;
  }

  /** `( type-name )` or `( expression )`, as after typeof, _Alignas, sizeof; true if it names a function type. */
  private typeOrExpressionInParens(): boolean {
    this.expect(LPAREN);
    let fn = false;
    if (this.isTypeNameStart(this.pos)) fn = this.typeName();
    else if (this.peek() === T.IDENT && this.peek(1) === RPAREN) {
      fn = this.ordinary.get(this.name())?.kind === BindingKind.Function;
      this.expression();
    } else this.expression();
    this.expect(RPAREN);
    return fn;
  }

  /** A type name; true if it is a function type. */
  private typeName(): boolean {
    const s = this.declSpecifiers(-1);
    if (!s.sawType && s.attributes.length === 0) this.error(`expected a type, found ${this.found()}`);
    const d = this.declarator(true);
    return d.derivs.length === 0 ? s.fnType : d.derivs[0] === Deriv.Function;
  }

  // ---- attributes ----------------------------------------------------------

  private attributes(): Attribute[] {
    const out: Attribute[] = [];
    while (this.peek() === K.attribute) {
      this.pos++;
      this.expect(LPAREN);
      this.expect(LPAREN);
      while (this.peek() !== RPAREN) {
        if (this.accept(COMMA)) continue;
        const c = this.peek();
        if (c !== T.IDENT && c < 100) this.error(`expected an attribute name, found ${this.found()}`);
        const raw = c === T.IDENT ? this.name() : this.textOf(this.pos, this.pos);
        this.pos++;
        const name = raw.replace(/^__(.*)__$/, '$1');
        let args = '';
        if (this.peek() === LPAREN) {
          const open = this.pos;
          this.attributeArguments(name);
          args = this.textOf(open + 1, this.pos - 2);
        }
        out.push({ name, args });
      }
      this.expect(RPAREN);
      this.expect(RPAREN);
    }
    return out;
  }

  /** Attribute arguments are mostly names of things that are not entities (printf, read_only); a few are references. */
  private attributeArguments(name: string): void {
    const open = this.pos;
    this.skipBalanced(LPAREN, RPAREN);
    if (name === 'cleanup') {
      for (let i = open + 1; i < this.pos - 1; i++) if (this.code[i] === T.IDENT) this.useName(this.name(i));
      return;
    }
    if (name === 'format' || name === 'access' || name === 'mode' || name === 'optimize' || name === 'target') return;
    // aligned(sizeof(struct x)), vector_size(N * sizeof(t)): types and enum constants count.
    for (let i = open + 1; i < this.pos - 1; i++) {
      const c = this.code[i];
      if (c === T.IDENT) {
        const b = this.ordinary.get(this.name(i));
        if (b && (b.kind === BindingKind.Typedef || b.kind === BindingKind.Enumerator) && b.level === 0) this.refs.add(this.name(i));
      } else if ((c === K.struct || c === K.union || c === K.enum) && this.code[i + 1] === T.IDENT) {
        const kwName: 'struct' | 'union' | 'enum' = c === K.struct ? 'struct' : c === K.union ? 'union' : 'enum';
        const b = this.tagMaps[kwName].get(this.name(i + 1));
        if (b?.level === 0) this.refs.add(b.key);
      }
    }
  }

  private skipBalanced(open: number, close: number): void {
    this.expect(open);
    let depth = 1;
    while (depth > 0) {
      const c = this.peek();
      if (c === T.EOF) this.error(`unbalanced ${describeCode(open)}`);
      if (c === open) depth++;
      else if (c === close) depth--;
      this.pos++;
    }
  }

  // ---- struct, union, enum -------------------------------------------------

  private structOrUnion(entityStart: number): void {
    const keyword: 'struct' | 'union' = this.peek() === K.struct ? 'struct' : 'union';
    this.pos++;
    const attrs = this.peek() === K.attribute ? this.attributes() : [];
    let name: string | undefined;
    if (this.peek() === T.IDENT) {
      name = this.name();
      this.pos++;
    }
    if (this.peek() !== LBRACE) {
      if (name === undefined) this.error(`expected a ${keyword} name or '{', found ${this.found()}`);
      // `struct foo;` alone declares the tag in this scope; otherwise a use.
      this.useTag(keyword, name, this.peek() === SEMI);
      return;
    }
    const outer = this.refs;
    let entity: Entity | undefined;
    if (name !== undefined) {
      const key = this.declareTag(keyword, name).key;
      if (this.level === 0) {
        outer.add(key);
        entity = {
          kind: keyword, name, storage: 'none', linkage: 'none', definition: true, inline: false, attributes: attrs,
          firstToken: entityStart >= 0 ? entityStart : this.pos, lastToken: this.pos, bodyToken: this.pos, refs: new Set(), parent: '',
        };
        this.entities.push(entity);
        this.refs = entity.refs;
      }
    }
    this.expect(LBRACE);
    while (!this.accept(RBRACE)) this.structMember();
    if (this.peek() === K.attribute) {
      const more = this.attributes();
      entity?.attributes.push(...more);
    }
    if (entity) {
      entity.lastToken = this.pos - 1;
      entity.refs.delete(`${keyword} ${name}`);
      this.refs = outer;
      // The tag's own references are also the declaration's.
      for (const r of entity.refs) outer.add(r);
    }
  }

  private structMember(): void {
    if (this.accept(SEMI)) return;
    if (this.peek() === K.staticAssert) { this.staticAssert(); return; }
    const specs = this.declSpecifiers(-1);
    if (!specs.sawType) this.error(`expected a member declaration, found ${this.found()}`);
    if (this.accept(SEMI)) return; // anonymous struct/union member
    for (;;) {
      if (this.peek() !== COLON) this.declarator(false, true);
      if (this.accept(COLON)) this.conditionalExpression();
      while (this.peek() === K.attribute) this.attributes();
      if (!this.accept(COMMA)) break;
    }
    this.expect(SEMI, 'after the member');
  }

  private enumSpecifier(entityStart: number): void {
    this.pos++;
    const attrs = this.peek() === K.attribute ? this.attributes() : [];
    let name: string | undefined;
    if (this.peek() === T.IDENT) {
      name = this.name();
      this.pos++;
    }
    // enum foo : int — not in gcc-12's C.
    if (this.peek() !== LBRACE) {
      if (name === undefined) this.error(`expected an enum name or '{', found ${this.found()}`);
      this.useTag('enum', name, false);
      return;
    }
    const outer = this.refs;
    const key = name !== undefined ? this.declareTag('enum', name).key : '';
    let entity: Entity | undefined;
    if (name !== undefined) {
      if (this.level === 0) {
        outer.add(key);
        entity = {
          kind: 'enum', name, storage: 'none', linkage: 'none', definition: true, inline: false, attributes: attrs,
          firstToken: entityStart >= 0 ? entityStart : this.pos, lastToken: this.pos, bodyToken: this.pos, refs: new Set(), parent: '',
        };
        this.entities.push(entity);
      }
    }
    this.expect(LBRACE);
    while (this.peek() !== RBRACE) {
      if (this.peek() !== T.IDENT) this.error(`expected an enumerator, found ${this.found()}`);
      const ename = this.name();
      const first = this.pos;
      this.pos++;
      const enumRefs = new Set<string>();
      const saved = this.refs;
      this.refs = this.level === 0 ? enumRefs : saved;
      const eattrs = this.peek() === K.attribute ? this.attributes() : [];
      if (this.accept(ASSIGN)) this.conditionalExpression();
      this.refs = saved;
      this.bind(ename, BindingKind.Enumerator, false, 'none');
      if (this.level === 0) {
        enumRefs.delete(ename);
        this.entities.push({
          kind: 'enumerator', name: ename, storage: 'none', linkage: 'none', definition: true, inline: false,
          attributes: eattrs, firstToken: first, lastToken: this.pos - 1, bodyToken: -1, refs: enumRefs, parent: key,
        });
        for (const r of enumRefs) (entity?.refs ?? outer).add(r);
      }
      if (!this.accept(COMMA)) break;
    }
    this.expect(RBRACE);
    if (this.peek() === K.attribute) entity?.attributes.push(...this.attributes());
    if (entity) {
      entity.lastToken = this.pos - 1;
      for (const r of entity.refs) outer.add(r);
    }
  }

  // ---- declarators ---------------------------------------------------------

  /**
   * A declarator; `abstract` allows it to have no name (type names,
   * parameters). Parameter declarators may be either.
   */
  private declarator(abstract: boolean, member = false): Declarator {
    const attributes: Attribute[] = [];
    let pointers = 0;
    for (;;) {
      const c = this.peek();
      if (c === STAR) { pointers++; this.pos++; continue; }
      if (QUALIFIERS.has(c)) { this.pos++; continue; }
      if (c === K.attribute) { attributes.push(...this.attributes()); continue; }
      break;
    }
    let inner: Declarator | undefined;
    let name: string | undefined;
    let nameToken = -1;
    const c = this.peek();
    if (c === T.IDENT) {
      // After complete specifiers an identifier is the declared name, even one
      // that is also a typedef name (`initxattrs initxattrs`).
      name = this.name();
      nameToken = this.pos;
      this.pos++;
    } else if (c === LPAREN && this.isNestedDeclarator(abstract)) {
      this.pos++;
      inner = this.declarator(abstract, member);
      this.expect(RPAREN, 'to close the declarator');
      name = inner.name;
      nameToken = inner.nameToken;
    }
    const suffixes: Deriv[] = [];
    let params: string[] | undefined;
    for (;;) {
      const s = this.peek();
      if (s === LBRACKET) {
        this.pos++;
        while (this.peek() === K.static || QUALIFIERS.has(this.peek()) || this.peek() === K.attribute) {
          if (this.peek() === K.attribute) this.attributes();
          else this.pos++;
        }
        if (this.peek() === STAR && this.peek(1) === RBRACKET) this.pos++;
        else if (this.peek() !== RBRACKET) this.assignmentExpression();
        this.expect(RBRACKET);
        suffixes.push(Deriv.Array);
        continue;
      }
      if (s === LPAREN) {
        const p = this.parameterList();
        if (params === undefined && suffixes.length === 0) params = p;
        suffixes.push(Deriv.Function);
        continue;
      }
      break;
    }
    const derivs: Deriv[] = [...(inner?.derivs ?? []), ...suffixes];
    for (let i = 0; i < pointers; i++) derivs.push(Deriv.Pointer);
    return {
      name, nameToken, derivs,
      params: inner && inner.derivs.length > 0 ? inner.params : (inner?.params ?? params),
      attributes: [...attributes, ...(inner?.attributes ?? [])],
    };
  }

  /** After '(' in a declarator: a parenthesized declarator, or a parameter list? */
  private isNestedDeclarator(abstract: boolean): boolean {
    const n = this.peek(1);
    if (n === STAR || n === LPAREN || n === LBRACKET || n === K.attribute) return true;
    // `(T)` with T a typedef name is a parameter list (C11 6.7.6.3p11).
    if (n === T.IDENT) return !abstract || !this.isTypedefName(this.pos + 1);
    return false;
  }

  private parameterList(): string[] {
    this.expect(LPAREN);
    const names: string[] = [];
    this.enterScope();
    if (this.peek() === K.void && this.peek(1) === RPAREN) this.pos++;
    while (this.peek() !== RPAREN) {
      if (this.accept(ELLIPSIS)) break;
      if (this.peek() === T.IDENT && !this.isTypedefName(this.pos)) {
        // K&R identifier list.
        names.push(this.name());
        this.pos++;
      } else {
        const specs = this.declSpecifiers(-1);
        if (!specs.sawType && specs.storage === 'none' && specs.attributes.length === 0) {
          this.error(`expected a parameter declaration, found ${this.found()}`);
        }
        const d = this.declarator(true);
        while (this.peek() === K.attribute) this.attributes();
        if (d.name !== undefined) {
          names.push(d.name);
          this.bind(d.name, BindingKind.Object, false, 'none');
        }
      }
      if (!this.accept(COMMA)) break;
    }
    this.exitScope();
    this.expect(RPAREN, 'to close the parameter list');
    return names;
  }

  // ---- initializers --------------------------------------------------------

  private initializer(): void {
    if (this.peek() !== LBRACE) {
      this.assignmentExpression();
      return;
    }
    this.pos++;
    while (this.peek() !== RBRACE) {
      // Designators: .member, [index], [lo ... hi], and GNU's `member:`.
      let designated = false;
      for (;;) {
        if (this.peek() === DOT && this.peek(1) === T.IDENT) { this.pos += 2; designated = true; continue; }
        if (this.peek() === LBRACKET) {
          this.pos++;
          this.conditionalExpression();
          if (this.accept(ELLIPSIS)) this.conditionalExpression();
          this.expect(RBRACKET);
          designated = true;
          continue;
        }
        break;
      }
      if (designated) this.expect(ASSIGN, 'after the designator');
      else if (this.peek() === T.IDENT && this.peek(1) === COLON) this.pos += 2;
      this.initializer();
      if (!this.accept(COMMA)) break;
    }
    this.expect(RBRACE, 'to close the initializer');
  }

  // ---- statements ----------------------------------------------------------

  private compoundStatement(): void {
    this.expect(LBRACE);
    this.enterScope();
    if (this.peek() === K.label) {
      // __label__ a, b;
      while (this.accept(K.label)) {
        do this.pos++; while (this.accept(COMMA));
        this.expect(SEMI);
      }
    }
    while (this.peek() !== RBRACE) {
      if (this.peek() === T.EOF) this.error("expected '}' before end of file");
      this.blockItem();
    }
    this.pos++;
    this.exitScope();
  }

  private blockItem(): void {
    const c = this.peek();
    if (c === K.staticAssert) { this.staticAssert(); return; }
    if (c === K.label) {
      while (this.accept(K.label)) {
        do this.pos++; while (this.accept(COMMA));
        this.expect(SEMI);
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
    while (this.tok(i) === K.extension) i++;
    const c = this.tok(i);
    if (c === T.IDENT) return this.isTypedefName(i) && this.tok(i + 1) !== COLON;
    return this.isDeclSpecStart(i) && c !== K.extension;
  }

  private statement(): void {
    const c = this.peek();
    switch (c) {
      case LBRACE: this.compoundStatement(); return;
      case SEMI: this.pos++; return;
      case K.if:
        this.pos++;
        this.parenExpression();
        this.statement();
        if (this.accept(K.else)) this.statement();
        return;
      case K.switch:
      case K.while:
        this.pos++;
        this.parenExpression();
        this.statement();
        return;
      case K.do:
        this.pos++;
        this.statement();
        this.expect(K.while);
        this.parenExpression();
        this.expect(SEMI);
        return;
      case K.for:
        this.pos++;
        this.expect(LPAREN);
        this.enterScope();
        if (this.startsDeclaration()) this.declaration(false);
        else {
          if (this.peek() !== SEMI) this.expression();
          this.expect(SEMI);
        }
        if (this.peek() !== SEMI) this.expression();
        this.expect(SEMI);
        if (this.peek() !== RPAREN) this.expression();
        this.expect(RPAREN);
        this.statement();
        this.exitScope();
        return;
      case K.goto:
        this.pos++;
        if (this.accept(STAR)) this.expression();
        else this.expect(T.IDENT, 'after goto');
        this.expect(SEMI);
        return;
      case K.continue:
      case K.break:
        this.pos++;
        this.expect(SEMI);
        return;
      case K.return:
        this.pos++;
        if (this.peek() !== SEMI) this.expression();
        this.expect(SEMI);
        return;
      case K.case:
        this.pos++;
        this.conditionalExpression();
        if (this.accept(ELLIPSIS)) this.conditionalExpression();
        this.expect(COLON);
        this.labelTail();
        return;
      case K.default:
        this.pos++;
        this.expect(COLON);
        this.labelTail();
        return;
      case K.asm:
        this.asmStatement();
        return;
      case T.IDENT:
        if (this.peek(1) === COLON) {
          this.pos += 2;
          while (this.peek() === K.attribute) this.attributes();
          this.labelTail();
          return;
        }
        break;
      default:
        break;
    }
    this.expression();
    this.expect(SEMI, 'after the expression');
  }

  /** A label may end a block in GNU C (and C2x); otherwise a statement follows. */
  private labelTail(): void {
    if (this.peek() === RBRACE) return;
    if (this.startsDeclaration()) {
      this.declaration(false);
      return;
    }
    this.statement();
  }

  private parenExpression(): void {
    this.expect(LPAREN);
    this.expression();
    this.expect(RPAREN);
  }

  /** asm [volatile|inline|goto]* ( "tmpl" : outputs : inputs : clobbers : labels ); */
  private asmStatement(): void {
    this.pos++;
    for (;;) {
      const c = this.peek();
      if (c === K.volatile || c === K.inline || c === K.goto) { this.pos++; continue; }
      break;
    }
    this.expect(LPAREN);
    this.asmTemplate();
    for (let section = 0; section < 4 && this.accept(COLON); section++) {
      if (section < 2) {
        while (this.peek() === LBRACKET || this.peek() === T.STRING) {
          if (this.accept(LBRACKET)) {
            this.expect(T.IDENT, 'as the asm operand name');
            this.expect(RBRACKET);
          }
          this.stringLiterals();
          this.expect(LPAREN);
          this.expression();
          this.expect(RPAREN);
          if (!this.accept(COMMA)) break;
        }
      } else if (section === 2) {
        while (this.peek() === T.STRING) {
          this.stringLiterals();
          if (!this.accept(COMMA)) break;
        }
      } else {
        while (this.peek() === T.IDENT) {
          this.pos++;
          if (!this.accept(COMMA)) break;
        }
      }
    }
    this.expect(RPAREN, 'to close the asm statement');
    this.expect(SEMI);
  }

  private asmTemplate(): void {
    const first = this.pos;
    this.stringLiterals();
    this.asmTemplates.push([first, this.pos - 1]);
  }

  private stringLiterals(): void {
    if (this.peek() !== T.STRING) this.error(`expected a string literal, found ${this.found()}`);
    while (this.peek() === T.STRING) this.pos++;
  }

  // ---- expressions ---------------------------------------------------------

  private expression(): void {
    this.assignmentExpression();
    while (this.accept(COMMA)) this.assignmentExpression();
  }

  private assignmentExpression(): void {
    this.conditionalExpression();
    if (ASSIGN_OPS.has(this.peek())) {
      this.pos++;
      this.assignmentExpression();
    }
  }

  private conditionalExpression(): void {
    this.binaryExpression(1);
    if (this.accept(QUESTION)) {
      // GNU: `a ?: b`
      if (this.peek() !== COLON) this.expression();
      this.expect(COLON);
      this.conditionalExpression();
    }
  }

  private binaryExpression(minPrec: number): void {
    this.castExpression();
    for (;;) {
      const prec = BINARY_PREC[this.peek()] as number;
      if (prec < minPrec || prec === 0) return;
      this.pos++;
      this.binaryExpression(prec + 1);
    }
  }

  /** `( type-name )`, and the compound literal `{...}` that may follow it; true if one did. */
  private parenthesizedTypeName(): boolean {
    this.pos++;
    this.typeName();
    this.expect(RPAREN);
    if (this.peek() !== LBRACE) return false;
    this.initializer();
    this.postfixTail();
    return true;
  }

  private castExpression(): void {
    if (this.peek() === LPAREN && this.isTypeNameStart(this.pos + 1)) {
      if (!this.parenthesizedTypeName()) this.castExpression();
      return;
    }
    this.unaryExpression();
  }

  private unaryExpression(): void {
    const c = this.peek();
    if (c === INC || c === DEC) { this.pos++; this.unaryExpression(); return; }
    if (c === AMP || c === STAR || c === PLUS || c === MINUS || c === TILDE || c === BANG || c === K.real || c === K.imag || c === K.extension) {
      this.pos++;
      this.castExpression();
      return;
    }
    if (c === ANDAND) {
      // &&label: a label's address.
      this.pos++;
      this.expect(T.IDENT, 'after &&');
      return;
    }
    if (c === K.sizeof || c === K.alignof) {
      this.pos++;
      if (this.peek() === LPAREN && this.isTypeNameStart(this.pos + 1)) {
        this.parenthesizedTypeName();
        return;
      }
      this.unaryExpression();
      return;
    }
    this.postfixExpression();
  }

  private postfixExpression(): void {
    this.primaryExpression();
    this.postfixTail();
  }

  private postfixTail(): void {
    for (;;) {
      const c = this.peek();
      if (c === LBRACKET) {
        this.pos++;
        this.expression();
        this.expect(RBRACKET);
      } else if (c === LPAREN) {
        this.pos++;
        while (this.peek() !== RPAREN) {
          this.assignmentExpression();
          if (!this.accept(COMMA)) break;
        }
        this.expect(RPAREN, 'to close the call');
      } else if (c === DOT || c === ARROW) {
        this.pos++;
        this.expect(T.IDENT, 'as the member name');
      } else if (c === INC || c === DEC) {
        this.pos++;
      } else {
        return;
      }
    }
  }

  private primaryExpression(): void {
    const c = this.peek();
    switch (c) {
      case T.IDENT:
        this.useName(this.name());
        this.pos++;
        return;
      case T.NUMBER:
      case T.CHAR:
        this.pos++;
        return;
      case T.STRING:
        this.stringLiterals();
        return;
      case LPAREN:
        this.pos++;
        if (this.peek() === LBRACE) {
          this.compoundStatement(); // statement expression
        } else {
          this.expression();
        }
        this.expect(RPAREN);
        return;
      case K.generic:
        this.genericSelection();
        return;
      case K.offsetof:
        this.pos++;
        this.expect(LPAREN);
        this.typeName();
        this.expect(COMMA);
        this.memberDesignator();
        this.expect(RPAREN);
        return;
      case K.vaArg:
      case K.convertVector:
        this.pos++;
        this.expect(LPAREN);
        this.assignmentExpression();
        this.expect(COMMA);
        this.typeName();
        this.expect(RPAREN);
        return;
      case K.typesCompatible:
        this.pos++;
        this.expect(LPAREN);
        this.typeName();
        this.expect(COMMA);
        this.typeName();
        this.expect(RPAREN);
        return;
      case K.shuffleVector:
        this.pos++;
        this.expect(LPAREN);
        this.expression();
        this.expect(RPAREN);
        return;
      default:
        this.error(`expected an expression, found ${this.found()}`);
    }
  }

  /** member(.member|[index])* inside __builtin_offsetof. */
  private memberDesignator(): void {
    this.expect(T.IDENT, 'as the member name');
    for (;;) {
      if (this.accept(DOT)) { this.expect(T.IDENT, 'as the member name'); continue; }
      if (this.accept(LBRACKET)) { this.expression(); this.expect(RBRACKET); continue; }
      if (this.accept(ARROW)) { this.expect(T.IDENT, 'as the member name'); continue; }
      return;
    }
  }

  private genericSelection(): void {
    this.pos++;
    this.expect(LPAREN);
    this.assignmentExpression();
    while (this.accept(COMMA)) {
      if (!this.accept(K.default)) this.typeName();
      this.expect(COLON);
      this.assignmentExpression();
    }
    this.expect(RPAREN);
  }
}
