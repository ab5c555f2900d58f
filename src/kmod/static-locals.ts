import { KlpgenError } from '../util/errors.js';
import { ElfWriter, type WriterSymbol } from '../elf/writer.js';
import { pcRelativeBias } from '../analyze/objdiff.js';
import { isNumberedLocal } from '../gcc/names.js';

/**
 * Static local variables of a built livepatch module. A copied function's
 * `static int count` is a fresh instance in the module; when the original
 * function has it too, the new code must use the running kernel's instance
 * (its state carries over), so its references are redirected to an
 * undefined symbol named like the kernel's, which klp-convert then turns
 * into a KLP relocation.
 */
export interface StaticLocal {
  /** As GCC named it in the module (`count.3`). */
  name: string;
  size: number;
  /** Functions of the module whose code refers to it. */
  owners: string[];
  /** Where: the function and the offset of the relocation in it. */
  references: { fn: string; offset: number }[];
}

const SHF_WRITE = 0x1;
const SHF_ALLOC = 0x2;
const SHF_EXECINSTR = 0x4;
const STB_LOCAL = 0;
const STB_GLOBAL = 1;
const STT_NOTYPE = 0;
const STT_OBJECT = 1;
const STT_FUNC = 2;
const STT_SECTION = 3;
const R_X86_64_PC32 = 2;
const R_X86_64_PLT32 = 4;

/** Writable, loaded local objects named `base.N` in data sections (zero-size ones hold no state). */
function candidates(w: ElfWriter): WriterSymbol[] {
  return w.symbols.filter((s) => {
    if (s.bind !== STB_LOCAL || s.type !== STT_OBJECT || s.size === 0n || !isNumberedLocal(s.name)) return false;
    const sec = w.sections[s.shndx];
    // Kernel tables (__dyndbg descriptors, __tracepoints) are registered per module: not state to share.
    return (
      !!sec &&
      (sec.flags & SHF_WRITE) !== 0 &&
      (sec.flags & SHF_ALLOC) !== 0 &&
      sec.name.startsWith('.') &&
      !sec.name.startsWith('.discard')
    );
  });
}

/**
 * The static local a relocation reaches: the symbol itself, or its section's
 * symbol with an addend inside it (PC-relative addends are biased by the
 * distance to the instruction's end: 4 to 8 bytes).
 */
function reached(
  w: ElfWriter,
  statics: WriterSymbol[],
  sym: WriterSymbol | null,
  addend: bigint,
  b: bigint | undefined,
): WriterSymbol | undefined {
  if (!sym) return undefined;
  if (statics.includes(sym)) return sym;
  if (sym.type !== STT_SECTION) return undefined;
  const inSection = statics.filter((s) => s.shndx === sym.shndx);
  // The instruction tells the bias when it is recognised: 1-byte statics sit side by side.
  for (const bias of b !== undefined ? [b] : [0n, 4n, 5n, 6n, 8n]) {
    const at = addend + bias;
    const hit = inSection.filter((s) => s.value <= at && at < s.value + s.size);
    if (hit.length === 1) return hit[0];
  }
  return undefined;
}

/** A PC-relative reference's bias, read from its instruction where it is recognised. */
function instructionBias(code: Buffer, r: { type: number; offset: bigint }): bigint | undefined {
  return r.type === R_X86_64_PC32 || r.type === R_X86_64_PLT32 ? pcRelativeBias(code, Number(r.offset)) : undefined;
}

function functionAt(w: ElfWriter, shndx: number, offset: bigint): WriterSymbol | undefined {
  return w.symbols.find(
    (f) => f.type === STT_FUNC && f.shndx === shndx && f.value <= offset && offset < f.value + f.size,
  );
}

export function staticLocalsOf(ko: Buffer, source = 'livepatch module'): StaticLocal[] {
  const w = ElfWriter.load(ko, source);
  const statics = candidates(w);
  const owners = new Map<WriterSymbol, Set<string>>(statics.map((s) => [s, new Set()]));
  const references = new Map<WriterSymbol, { fn: string; offset: number }[]>(statics.map((s) => [s, []]));
  for (const sec of w.sections) {
    if (sec.type !== 4) continue; // SHT_RELA
    const target = w.sections[sec.info];
    if (!target || (target.flags & SHF_EXECINSTR) === 0) continue;
    const code = w.sectionData(target);
    for (const r of w.relocations(sec)) {
      const s = reached(w, statics, r.symbol, r.addend, instructionBias(code, r));
      const fn = s ? functionAt(w, target.index, r.offset) : undefined;
      if (s && fn) {
        owners.get(s)?.add(fn.name);
        references.get(s)?.push({ fn: fn.name, offset: Number(r.offset - fn.value) });
      }
    }
  }
  return statics.map((s) => ({
    name: s.name,
    size: Number(s.size),
    owners: [...(owners.get(s) ?? [])].sort(),
    references: (references.get(s) ?? []).sort((a, b) => a.fn.localeCompare(b.fn) || a.offset - b.offset),
  }));
}

/** Point every code reference to module static `from` at a new undefined symbol `to`. */
export function redirectStaticLocals(
  ko: Buffer,
  redirects: { from: string; to: string }[],
  source = 'livepatch module',
): Buffer {
  if (redirects.length === 0) return ko;
  const w = ElfWriter.load(ko, source);
  const statics = candidates(w);
  for (const { from, to } of redirects) {
    const s = statics.find((x) => x.name === from);
    if (!s) throw new KlpgenError(`${source}: no static local ${from} to redirect`);
    const target = w.addSymbol({ name: to, bind: STB_GLOBAL, type: STT_NOTYPE, shndx: 0 });
    let moved = 0;
    for (const sec of w.sections) {
      if (sec.type !== 4) continue;
      const applies = w.sections[sec.info];
      if (!applies || (applies.flags & SHF_EXECINSTR) === 0) continue;
      let here = 0;
      const code = w.sectionData(applies);
      const entries = w.relocations(sec).map((r) => {
        if (reached(w, [s], r.symbol, r.addend, instructionBias(code, r)) !== s) return r;
        here++;
        // A section-symbol reference carries the variable's offset in its addend.
        return { ...r, symbol: target, addend: r.symbol === s ? r.addend : r.addend - s.value };
      });
      if (here) w.setRelocations(sec, entries);
      moved += here;
    }
    if (moved === 0) throw new KlpgenError(`${source}: no code refers to static local ${from}`);
  }
  return w.serialize();
}
