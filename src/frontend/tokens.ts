/**
 * Token codes shared by the lexer and the parser. Numbers, not strings, so
 * the parser's hot paths compare small integers.
 */
export const T = {
  EOF: 0,
  IDENT: 1,
  NUMBER: 2,
  CHAR: 3,
  STRING: 4,
} as const;

/** Punctuators, longest first within each leading character. */
export const PUNCTUATORS = [
  '...', '<<=', '>>=', '->', '++', '--', '<<', '>>', '<=', '>=', '==', '!=', '&&', '||',
  '*=', '/=', '%=', '+=', '-=', '&=', '^=', '|=', '##',
  '[', ']', '(', ')', '{', '}', '.', '&', '*', '+', '-', '~', '!', '/', '%', '<', '>', '^', '|',
  '?', ':', ';', '=', ',', '#',
] as const;

export const PUNCT_BASE = 10;
export type Punct = (typeof PUNCTUATORS)[number];

export function punctCode(p: Punct): number {
  return PUNCT_BASE + PUNCTUATORS.indexOf(p);
}

/** Keywords of GNU C as gcc-12 reads kernel code; spellings that mean the same share a code. */
const KEYWORD_GROUPS: string[][] = [
  ['auto'], ['break'], ['case'], ['char'], ['const', '__const', '__const__'], ['continue'], ['default'], ['do'],
  ['double'], ['else'], ['enum'], ['extern'], ['float'], ['for'], ['goto'], ['if'],
  ['inline', '__inline', '__inline__'], ['int'], ['long'], ['register'], ['restrict', '__restrict', '__restrict__'],
  ['return'], ['short'], ['signed', '__signed', '__signed__'], ['sizeof'], ['static'], ['struct'], ['switch'],
  ['typedef'], ['union'], ['unsigned'], ['void'], ['volatile', '__volatile', '__volatile__'], ['while'],
  ['_Alignas'], ['_Alignof', '__alignof', '__alignof__'], ['_Atomic'], ['_Bool'], ['_Complex', '__complex__', '__complex'],
  ['_Generic'], ['_Noreturn'], ['_Static_assert'], ['_Thread_local', '__thread'],
  ['asm', '__asm', '__asm__'], ['__attribute__', '__attribute'], ['__builtin_offsetof'], ['__builtin_va_arg'],
  ['__builtin_types_compatible_p'], ['__extension__'], ['__imag__', '__imag'], ['__real__', '__real'],
  ['__int128'], ['__label__'], ['typeof', '__typeof', '__typeof__'], ['__auto_type'],
  ['__seg_gs'], ['__seg_fs'], ['_Float128', '__float128'], ['__builtin_convertvector'], ['__builtin_shufflevector'],
];

export const KEYWORD_BASE = 100;
export const KEYWORDS = new Map<string, number>();
/** Canonical spelling of each keyword code, for messages. */
export const KEYWORD_NAMES: string[] = [];
KEYWORD_GROUPS.forEach((group, i) => {
  KEYWORD_NAMES[i] = group[0] as string;
  for (const k of group) KEYWORDS.set(k, KEYWORD_BASE + i);
});

export function kw(name: string): number {
  const c = KEYWORDS.get(name);
  if (c === undefined) throw new Error(`not a keyword: ${name}`);
  return c;
}

export function describeCode(code: number): string {
  if (code === T.EOF) return 'end of file';
  if (code === T.IDENT) return 'identifier';
  if (code === T.NUMBER) return 'number';
  if (code === T.CHAR) return 'character constant';
  if (code === T.STRING) return 'string literal';
  if (code >= KEYWORD_BASE) return `'${KEYWORD_NAMES[code - KEYWORD_BASE]}'`;
  return `'${PUNCTUATORS[code - PUNCT_BASE]}'`;
}

// The same codes as compile-time constants (TypeScript inlines const enum
// members): the parser's comparisons and switches then load nothing. They
// follow T, PUNCTUATORS and KEYWORD_GROUPS, as checked below.

export const enum Tk { EOF = 0, IDENT = 1, NUMBER = 2, CHAR = 3, STRING = 4 }

export const enum Pu {
  Ellipsis = 10, ShlAssign, ShrAssign, Arrow, Inc, Dec, Shl, Shr, Le, Ge, EqEq, Ne, AndAnd, OrOr,
  MulAssign, DivAssign, ModAssign, AddAssign, SubAssign, AndAssign, XorAssign, OrAssign, HashHash,
  LBracket, RBracket, LParen, RParen, LBrace, RBrace, Dot, Amp, Star, Plus, Minus, Tilde, Bang, Slash, Percent, Lt, Gt,
  Caret, Pipe, Question, Colon, Semi, Assign, Comma, Hash,
}

export const enum Kw {
  auto = 100, break, case, char, const, continue, default, do, double, else, enum, extern, float, for, goto, if,
  inline, int, long, register, restrict, return, short, signed, sizeof, static, struct, switch, typedef, union,
  unsigned, void, volatile, while, alignas, alignof, atomic, bool, complex, generic, noreturn, staticAssert,
  threadLocal, asm, attribute, offsetof, vaArg, typesCompatible, extension, imag, real, int128, label, typeof,
  autoType, segGs, segFs, float128, convertVector, shuffleVector,
}

// Every member against the tables, once at load.
{
  const check = (what: string, enumCode: number, code: number) => {
    if (enumCode !== code) throw new Error(`tokens.ts: ${what} is ${enumCode} in the const enum, ${code} in the tables`);
  };
  check('EOF', Tk.EOF, T.EOF);
  check('IDENT', Tk.IDENT, T.IDENT);
  check('NUMBER', Tk.NUMBER, T.NUMBER);
  check('CHAR', Tk.CHAR, T.CHAR);
  check('STRING', Tk.STRING, T.STRING);
  const pu: [number, Punct][] = [
    [Pu.Ellipsis, '...'], [Pu.ShlAssign, '<<='], [Pu.ShrAssign, '>>='], [Pu.Arrow, '->'], [Pu.Inc, '++'], [Pu.Dec, '--'],
    [Pu.Shl, '<<'], [Pu.Shr, '>>'], [Pu.Le, '<='], [Pu.Ge, '>='], [Pu.EqEq, '=='], [Pu.Ne, '!='],
    [Pu.AndAnd, '&&'], [Pu.OrOr, '||'], [Pu.MulAssign, '*='], [Pu.DivAssign, '/='], [Pu.ModAssign, '%='], [Pu.AddAssign, '+='],
    [Pu.SubAssign, '-='], [Pu.AndAssign, '&='], [Pu.XorAssign, '^='], [Pu.OrAssign, '|='], [Pu.HashHash, '##'], [Pu.LBracket, '['],
    [Pu.RBracket, ']'], [Pu.LParen, '('], [Pu.RParen, ')'], [Pu.LBrace, '{'], [Pu.RBrace, '}'], [Pu.Dot, '.'],
    [Pu.Amp, '&'], [Pu.Star, '*'], [Pu.Plus, '+'], [Pu.Minus, '-'], [Pu.Tilde, '~'], [Pu.Bang, '!'],
    [Pu.Slash, '/'], [Pu.Percent, '%'], [Pu.Lt, '<'], [Pu.Gt, '>'], [Pu.Caret, '^'], [Pu.Pipe, '|'],
    [Pu.Question, '?'], [Pu.Colon, ':'], [Pu.Semi, ';'], [Pu.Assign, '='], [Pu.Comma, ','], [Pu.Hash, '#'],
  ];
  for (const [code, p] of pu) check(p, code, punctCode(p));
  const kws: [number, string][] = [
    [Kw.auto, 'auto'], [Kw.break, 'break'], [Kw.case, 'case'], [Kw.char, 'char'], [Kw.const, 'const'],
    [Kw.continue, 'continue'], [Kw.default, 'default'], [Kw.do, 'do'], [Kw.double, 'double'], [Kw.else, 'else'],
    [Kw.enum, 'enum'], [Kw.extern, 'extern'], [Kw.float, 'float'], [Kw.for, 'for'], [Kw.goto, 'goto'],
    [Kw.if, 'if'], [Kw.inline, 'inline'], [Kw.int, 'int'], [Kw.long, 'long'], [Kw.register, 'register'],
    [Kw.restrict, 'restrict'], [Kw.return, 'return'], [Kw.short, 'short'], [Kw.signed, 'signed'], [Kw.sizeof, 'sizeof'],
    [Kw.static, 'static'], [Kw.struct, 'struct'], [Kw.switch, 'switch'], [Kw.typedef, 'typedef'], [Kw.union, 'union'],
    [Kw.unsigned, 'unsigned'], [Kw.void, 'void'], [Kw.volatile, 'volatile'], [Kw.while, 'while'], [Kw.alignas, '_Alignas'],
    [Kw.alignof, '_Alignof'], [Kw.atomic, '_Atomic'], [Kw.bool, '_Bool'], [Kw.complex, '_Complex'], [Kw.generic, '_Generic'],
    [Kw.noreturn, '_Noreturn'], [Kw.staticAssert, '_Static_assert'], [Kw.threadLocal, '_Thread_local'], [Kw.asm, 'asm'], [Kw.attribute, '__attribute__'],
    [Kw.offsetof, '__builtin_offsetof'], [Kw.vaArg, '__builtin_va_arg'], [Kw.typesCompatible, '__builtin_types_compatible_p'], [Kw.extension, '__extension__'], [Kw.imag, '__imag__'],
    [Kw.real, '__real__'], [Kw.int128, '__int128'], [Kw.label, '__label__'], [Kw.typeof, 'typeof'], [Kw.autoType, '__auto_type'],
    [Kw.segGs, '__seg_gs'], [Kw.segFs, '__seg_fs'], [Kw.float128, '_Float128'], [Kw.convertVector, '__builtin_convertvector'], [Kw.shuffleVector, '__builtin_shufflevector'],
  ];
  for (const [code, k] of kws) check(k, code, kw(k));
  if (pu.length !== PUNCTUATORS.length || kws.length !== KEYWORD_NAMES.length) throw new Error('tokens.ts: the const enums miss a code');
}
