import { ElfWriter, type WriterSymbol } from '../elf/writer.js';
import { KlpgenError } from '../util/errors.js';
import { pcRelativeBias } from '../analyze/objdiff.js';

/**
 * Copies of unchanged functions are in the module so its compiler can inline them as the
 * patched build did (`devm_add_action_or_reset(dev, f, x)` calls f on failure: inlined, while
 * f's address is stored in the device's devres list). Calls may reach the copy; an address
 * that the code takes must be the running kernel's function, which outlives the livepatch and
 * is what the kernel's own code compares with. This moves every reference to such a copy that
 * is not a direct call or jump to an undefined symbol `<prefix><name>`, which klp-convert
 * resolves to the kernel's function.
 */
const STB_GLOBAL = 1;
const STT_NOTYPE = 0;
const STT_OBJECT = 1;
const STT_FUNC = 2;
const STT_SECTION = 3;
const SHT_RELA = 4;
const SHF_EXECINSTR = 0x4;
const SHF_ALLOC = 0x2;
const R_X86_64_PC32 = 2;
const R_X86_64_PLT32 = 4;

/** A rel32 field right after a call (e8), jmp (e9) or conditional jump (0f 8x) opcode. */
function isBranchTarget(code: Buffer, offset: number): boolean {
  const op = code[offset - 1];
  if (op === 0xe8 || op === 0xe9) return true;
  return code[offset - 2] === 0x0f && op !== undefined && (op & 0xf0) === 0x80;
}

export interface AddressRedirect {
  /** The copy's name in the module. */
  name: string;
  /** Code or data offsets whose references were moved, as `section+offset`. */
  moved: string[];
}

export function redirectAddressUses(
  ko: Buffer,
  names: readonly string[],
  prefix: string,
  source = 'livepatch module',
): { ko: Buffer; redirects: AddressRedirect[] } {
  if (names.length === 0) return { ko, redirects: [] };
  const w = ElfWriter.load(ko, source);
  const copies = new Map<string, WriterSymbol>();
  for (const n of names) {
    const found = w.symbols.filter((x) => x.name === n && x.type === STT_FUNC && x.shndx !== 0);
    // Two files' copies of one name: which kernel function each stands for is not known here.
    if (found.length === 1) copies.set(n, found[0] as WriterSymbol);
  }
  const targets = new Map<string, WriterSymbol>();
  const redirects: AddressRedirect[] = [];
  /** The copy a reference reaches: its symbol, or its section's symbol at its offset. */
  const reached = (sym: WriterSymbol | null, addend: bigint, pcRelative: boolean): WriterSymbol | undefined => {
    if (!sym) return undefined;
    for (const c of copies.values()) {
      if (sym === c) return c;
      // A PC-relative field is 4 bytes before the instruction's end: the addend is biased by -4.
      if (sym.type === STT_SECTION && sym.shndx === c.shndx && addend + (pcRelative ? 4n : 0n) === c.value) return c;
    }
    return undefined;
  };
  for (const sec of w.sections) {
    if (sec.type !== SHT_RELA) continue;
    const applies = w.sections[sec.info];
    // Code and the program's data; not the kernel's tables about the code (__mcount_loc and
    // .orc_unwind_ip name the copy's first byte as a place, not as a function to call).
    if (!applies || !((applies.flags & SHF_EXECINSTR) !== 0 || /^\.(data|rodata)(\.|$)/.test(applies.name))) continue;
    const code = w.sectionData(applies);
    let changed = false;
    const entries = w.relocations(sec).map((r) => {
      const pcRelative = r.type === R_X86_64_PC32 || r.type === R_X86_64_PLT32;
      const c = reached(r.symbol, r.addend, pcRelative);
      if (!c) return r;
      if (pcRelative && isBranchTarget(code, Number(r.offset))) return r;
      let t = targets.get(c.name);
      if (!t) {
        t = w.addSymbol({ name: `${prefix}${c.name}`, bind: STB_GLOBAL, type: STT_NOTYPE, shndx: 0 });
        targets.set(c.name, t);
      }
      let entry = redirects.find((x) => x.name === c.name);
      if (!entry) redirects.push((entry = { name: c.name, moved: [] }));
      entry.moved.push(`${applies.name}+0x${r.offset.toString(16)}`);
      changed = true;
      // Through the section symbol, the addend also carried the copy's offset in its section.
      return { ...r, symbol: t, addend: r.symbol === c ? r.addend : r.addend - c.value };
    });
    if (changed) w.setRelocations(sec, entries);
  }
  if (redirects.length === 0) return { ko, redirects };
  const out = w.serialize();
  if (!out.length) throw new KlpgenError(`${source}: could not rewrite the address references`);
  return { ko: out, redirects: redirects.sort((a, b) => a.name.localeCompare(b.name)) };
}

/**
 * Static variables the module declares static, so its compiler sees them as the patched
 * build's did (only this file's code reaches them): stand-ins for the running kernel's. Every
 * reference to one, from code or data, moves to an undefined symbol `<prefix><name>` that
 * klp-convert resolves to the kernel's variable; one left behind would be state of its own,
 * so none may be.
 */
export function redirectStandIns(
  ko: Buffer,
  names: readonly string[],
  prefix: string,
  source = 'livepatch module',
): { ko: Buffer; moved: Map<string, number> } {
  const moved = new Map<string, number>();
  if (names.length === 0) return { ko, moved };
  const w = ElfWriter.load(ko, source);
  const objects = w.symbols.filter((x) => x.type === STT_OBJECT && x.shndx !== 0 && x.shndx < 0xff00);
  const standIns: WriterSymbol[] = [];
  for (const n of names) {
    const found = objects.filter((x) => x.name === n);
    if (found.length !== 1)
      throw new KlpgenError(`${source}: stand-in ${n} is ${found.length ? 'defined twice' : 'missing'}`);
    standIns.push(found[0] as WriterSymbol);
  }
  /** Sections holding nothing but one stand-in (-fdata-sections): any reference to them is to it. */
  const alone = new Map<number, WriterSymbol>();
  for (const c of standIns) if (objects.filter((x) => x.shndx === c.shndx).length === 1) alone.set(c.shndx, c);
  const reached = (sym: WriterSymbol | null, addend: bigint, bias: bigint | undefined): WriterSymbol | undefined => {
    if (!sym) return undefined;
    if (standIns.includes(sym)) return sym;
    if (sym.type !== STT_SECTION) return undefined;
    const only = alone.get(sym.shndx);
    if (only) return only;
    const at = addend + (bias ?? 0n);
    return standIns.find((c) => c.shndx === sym.shndx && c.value <= at && at < c.value + (c.size || 1n));
  };
  const targets = new Map<string, WriterSymbol>();
  for (const sec of w.sections) {
    if (sec.type !== SHT_RELA) continue;
    const applies = w.sections[sec.info];
    if (!applies || (applies.flags & SHF_ALLOC) === 0) continue;
    const code = w.sectionData(applies);
    const exec = (applies.flags & SHF_EXECINSTR) !== 0;
    let changed = false;
    const entries = w.relocations(sec).map((r) => {
      const pcRelative = r.type === R_X86_64_PC32 || r.type === R_X86_64_PLT32;
      const c = reached(
        r.symbol,
        r.addend,
        pcRelative ? (exec ? (pcRelativeBias(code, Number(r.offset)) ?? 4n) : 4n) : 0n,
      );
      if (!c) return r;
      let t = targets.get(c.name);
      if (!t) {
        t = w.addSymbol({ name: `${prefix}${c.name}`, bind: STB_GLOBAL, type: STT_NOTYPE, shndx: 0 });
        targets.set(c.name, t);
      }
      moved.set(c.name, (moved.get(c.name) ?? 0) + 1);
      changed = true;
      return { ...r, symbol: t, addend: r.symbol === c ? r.addend : r.addend - c.value };
    });
    if (changed) w.setRelocations(sec, entries);
  }
  // A reference not recognised would silently use the stand-in: refuse that.
  for (const sec of w.sections) {
    if (sec.type !== SHT_RELA) continue;
    const applies = w.sections[sec.info];
    if (!applies || (applies.flags & SHF_ALLOC) === 0) continue;
    for (const r of w.relocations(sec)) {
      const left =
        r.symbol &&
        (standIns.includes(r.symbol)
          ? r.symbol
          : r.symbol.type === STT_SECTION
            ? alone.get(r.symbol.shndx)
            : undefined);
      if (left)
        throw new KlpgenError(
          `${source}: a reference in ${applies.name} to the stand-in of ${left.name} could not be moved to the kernel's variable`,
        );
    }
  }
  return { ko: moved.size ? w.serialize() : ko, moved };
}
