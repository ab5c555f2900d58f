/**
 * GCC's names for what it makes of a function: clones with a private calling convention
 * (`foo.isra.0`, `foo.constprop.1`), partial-inlining splits (`foo.part.0`), cold parts
 * (`foo.cold`, `foo.part.0.cold`), local aliases, and numbered static locals (`count.3`).
 * One module for these spellings, so every stage reads them alike.
 */

const PIECE_KINDS = 'cold|part|constprop|isra|localalias|lto_priv';
/** Piece suffixes at the end of a name; their numbers may be folded to `*` (see objdiff's foldNumbers). */
const PIECE_SUFFIXES = new RegExp(`(\\.(${PIECE_KINDS})(\\.(\\d+|\\*))?)+$`);
const PIECE_SUFFIX_ONLY = new RegExp(`^${PIECE_SUFFIXES.source}`);

/** `foo.part.0.cold` → `foo` (also `foo.isra.*.cold`, a folded name). */
export function baseFunction(name: string): string {
  return name.replace(PIECE_SUFFIXES, '');
}

/** Is `name` a piece GCC made of function `of` (`of.cold`, `of.part.0`, `of.isra.0.cold`)? */
export function isPieceOf(name: string, of: string): boolean {
  return name.length > of.length && name.startsWith(`${of}.`) && PIECE_SUFFIX_ONLY.test(name.slice(of.length));
}

/** A function name GCC made (clone, split, cold part): it has no `__fentry__` contract with callers. */
export function isCompilerLocal(name: string): boolean {
  return baseFunction(name) !== name;
}

/** A cold part (`foo.cold`, `foo.part.0.cold`): no entry point of its own. */
export function isColdPart(name: string): boolean {
  return /\.cold(\.\d+)?$/.test(name);
}

/** A function-scope static (`count.3`): GCC numbers them per TU. */
export function isNumberedLocal(name: string): boolean {
  return /\.\d+$/.test(name);
}

/** `count.3` → `count`: the static's name as the source spells it. */
export function staticLocalBase(name: string): string {
  return name.replace(/\.\d+$/, '');
}

/** `foo.cold` / `foo.part.0.cold` → the function it was split from; undefined for other names. */
export function coldParent(name: string): string | undefined {
  return /^(.*)\.cold(\.\d+)?$/.exec(name)?.[1];
}

export type CloneKind = 'constprop' | 'isra' | 'part';

/**
 * A clone with a private calling convention (`f.isra.0`, `f.constprop.1`, `f.part.0`), wherever
 * the suffix sits (`f.constprop.0.cold` is one too): its callers depend on how it was made.
 */
export function isPrivateClone(name: string): boolean {
  return /\.(isra|constprop|part)\.\d+/.test(name);
}

/** Is `name` exactly `of` cloned once, by one of `kinds` (`of.constprop.0`)? */
export function isCloneOf(
  name: string,
  of: string,
  kinds: readonly CloneKind[] = ['constprop', 'isra', 'part'],
): boolean {
  if (!name.startsWith(`${of}.`)) return false;
  const m = /^\.(\w+)\.\d+$/.exec(name.slice(of.length));
  return m !== null && (kinds as readonly string[]).includes(m[1] as string);
}
