/**
 * GCC's names for what it makes of a function: clones with a private calling convention
 * (`foo.isra.0`, `foo.constprop.1`), partial-inlining splits (`foo.part.0`), cold parts
 * (`foo.cold`, `foo.part.0.cold`), local aliases, and numbered static locals (`count.3`).
 * One module for these spellings, so every stage reads them alike.
 */

/** A suffix GCC appends to a function it cloned or split. */
const PIECE_SUFFIX = /^(\.(cold|part|constprop|isra|localalias|lto_priv)(\.\d+)?)+$/;

/** `foo.part.0.cold` → `foo`. */
export function baseFunction(name: string): string {
  return name.replace(/(\.(cold|part|constprop|isra|localalias|lto_priv)(\.\d+)?)+$/, '');
}

/** Is `name` a piece GCC made of function `of` (`of.cold`, `of.part.0`, `of.isra.0.cold`)? */
export function isPieceOf(name: string, of: string): boolean {
  return name.length > of.length && name.startsWith(`${of}.`) && PIECE_SUFFIX.test(name.slice(of.length));
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
