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
