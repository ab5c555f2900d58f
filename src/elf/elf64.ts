/**
 * Minimal ELF64 little-endian reader for x86-64 objects (.o, .ko) and
 * executables (vmlinux). Written in-house so we control error handling:
 * every malformed or truncated input becomes a KlpgenError, never a
 * RangeError from a Buffer read.
 *
 * Only the section header table is decoded eagerly; symbols and relocation
 * entries are decoded on first use and cached, because a debug vmlinux has
 * ~130k symbols and tens of millions of relocation entries (--emit-relocs),
 * most of which a caller never looks at.
 *
 * 64-bit fields that hold virtual addresses (sh_addr, st_value, r_offset,
 * r_addend) are bigint: kernel addresses (0xffffffff8...) exceed 2^53.
 * File offsets, sizes and counts are numbers (they are bounded by the file).
 */
import { KlpgenError } from '../util/errors.js';

// e_type
export const ET_NONE = 0;
export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;

// e_machine
export const EM_X86_64 = 62;

// sh_type
export const SHT_NULL = 0;
export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_RELA = 4;
export const SHT_HASH = 5;
export const SHT_DYNAMIC = 6;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_REL = 9;
export const SHT_DYNSYM = 11;
export const SHT_INIT_ARRAY = 14;
export const SHT_FINI_ARRAY = 15;
export const SHT_GROUP = 17;
export const SHT_SYMTAB_SHNDX = 18;
export const SHT_X86_64_UNWIND = 0x70000001;

// sh_flags
export const SHF_WRITE = 0x1;
export const SHF_ALLOC = 0x2;
export const SHF_EXECINSTR = 0x4;
export const SHF_MERGE = 0x10;
export const SHF_STRINGS = 0x20;
export const SHF_INFO_LINK = 0x40;
export const SHF_LINK_ORDER = 0x80;
export const SHF_GROUP = 0x200;
export const SHF_TLS = 0x400;

// Special section indices (st_shndx)
export const SHN_UNDEF = 0;
export const SHN_LORESERVE = 0xff00;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;
export const SHN_XINDEX = 0xffff;

// Symbol binding (st_info >> 4)
export const STB_LOCAL = 0;
export const STB_GLOBAL = 1;
export const STB_WEAK = 2;

// Symbol type (st_info & 0xf)
export const STT_NOTYPE = 0;
export const STT_OBJECT = 1;
export const STT_FUNC = 2;
export const STT_SECTION = 3;
export const STT_FILE = 4;
export const STT_COMMON = 5;
export const STT_TLS = 6;
export const STT_GNU_IFUNC = 10;

// Symbol visibility (st_other & 3)
export const STV_DEFAULT = 0;
export const STV_INTERNAL = 1;
export const STV_HIDDEN = 2;
export const STV_PROTECTED = 3;

// The x86-64 relocation types a live-patch generator has to reason about.
export const R_X86_64_NONE = 0;
export const R_X86_64_64 = 1;
export const R_X86_64_PC32 = 2;
export const R_X86_64_PLT32 = 4;
export const R_X86_64_GOTPCREL = 9;
export const R_X86_64_32 = 10;
export const R_X86_64_32S = 11;
export const R_X86_64_PC64 = 24;
export const R_X86_64_GOTPCRELX = 41;
export const R_X86_64_REX_GOTPCRELX = 42;

// Indexed by type number, as in the x86-64 psABI (39/40 are the retired BND variants).
const RELOC_NAMES: readonly string[] = [
  'NONE',
  '64',
  'PC32',
  'GOT32',
  'PLT32',
  'COPY',
  'GLOB_DAT',
  'JUMP_SLOT',
  'RELATIVE',
  'GOTPCREL',
  '32',
  '32S',
  '16',
  'PC16',
  '8',
  'PC8',
  'DTPMOD64',
  'DTPOFF64',
  'TPOFF64',
  'TLSGD',
  'TLSLD',
  'DTPOFF32',
  'GOTTPOFF',
  'TPOFF32',
  'PC64',
  'GOTOFF64',
  'GOTPC32',
  'GOT64',
  'GOTPCREL64',
  'GOTPC64',
  'GOTPLT64',
  'PLTOFF64',
  'SIZE32',
  'SIZE64',
  'GOTPC32_TLSDESC',
  'TLSDESC_CALL',
  'TLSDESC',
  'IRELATIVE',
  'RELATIVE64',
  'PC32_BND',
  'PLT32_BND',
  'GOTPCRELX',
  'REX_GOTPCRELX',
];

/** "R_X86_64_PLT32" for 4; unknown numbers still get a stable, greppable name. */
export function relocTypeName(type: number): string {
  const n = RELOC_NAMES[type];
  return n !== undefined ? `R_X86_64_${n}` : `R_X86_64_UNKNOWN_${type}`;
}

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  /** sh_flags; only the low 32 bits carry defined flags, so a number suffices. */
  flags: number;
  addr: bigint;
  /** File offset; validated against the buffer for every section that has file data. */
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
}

export interface ElfSymbol {
  index: number;
  name: string;
  value: bigint;
  size: number;
  bind: number;
  type: number;
  visibility: number;
  /** Real section index: SHN_XINDEX is already resolved through .symtab_shndx. */
  shndx: number;
  /** Name of the defining section, set only when shndx is a normal section index. */
  section?: string;
}

export interface ElfRelocation {
  /** Section offset in ET_REL files, virtual address in ET_EXEC/ET_DYN. */
  offset: bigint;
  type: number;
  symIndex: number;
  addend: bigint;
  /** Undefined for symbol index 0 (relocations that need no symbol). */
  symbol?: ElfSymbol;
}

export interface ElfRelocSection {
  /** The SHT_RELA section itself. */
  readonly section: ElfSection;
  /** Section the relocations apply to (sh_info); undefined when sh_info is 0 (dynamic relocs). */
  readonly target: ElfSection | undefined;
  /** Number of entries, known without decoding them. */
  readonly count: number;
  /** Decoded on first access and cached (vmlinux .rela.debug_info alone has ~11M entries). */
  readonly entries: readonly ElfRelocation[];
}

const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;
const RELA_SIZE = 24;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Every structural inconsistency reads `FILE: corrupt ELF object: ...` (one line). */
function corrupt(src: string, msg: string): never {
  throw new KlpgenError(`${src}: corrupt ELF object: ${msg}`);
}

/** Reads a u64 that must fit a JS number (offsets, sizes, counts). */
function u64num(buf: Buffer, pos: number, what: string, src: string): number {
  const v = buf.readBigUInt64LE(pos);
  if (v > MAX_SAFE) corrupt(src, `${what} 0x${v.toString(16)} is out of range`);
  return Number(v);
}

/** Largest sh_addralign taken as real: more is a damaged header (and would make a copy's padding gigabytes). */
const MAX_ALIGN = 1 << 30;

/** Bytes a relocation of `type` writes at its offset, for the bounds check in ET_REL files. */
function relocWidth(type: number): number {
  switch (type) {
    case R_X86_64_NONE:
      return 0;
    case R_X86_64_64:
    case R_X86_64_PC64:
    case 8: // RELATIVE
    case 16: // DTPMOD64
    case 17: // DTPOFF64
    case 18: // TPOFF64
    case 25: // GOTOFF64
    case 27: // GOT64
    case 28: // GOTPCREL64
    case 29: // GOTPC64
    case 30: // GOTPLT64
    case 31: // PLTOFF64
    case 33: // SIZE64
    case 38: // RELATIVE64
      return 8;
    case 12: // 16
    case 13: // PC16
      return 2;
    case 14: // 8
    case 15: // PC8
      return 1;
    default:
      return relocTypeName(type).includes('UNKNOWN') ? 1 : 4;
  }
}

class RelocSection implements ElfRelocSection {
  private cached: ElfRelocation[] | undefined;
  constructor(
    readonly section: ElfSection,
    readonly target: ElfSection | undefined,
    readonly count: number,
    private readonly decode: () => ElfRelocation[],
  ) {}

  get entries(): readonly ElfRelocation[] {
    this.cached ??= this.decode();
    return this.cached;
  }
}

export class ElfFile {
  readonly type: number;
  readonly machine: number;
  readonly sections: readonly ElfSection[];
  private byName: Map<string, ElfSection> | undefined;
  private readonly symCache = new Map<number, ElfSymbol[]>();
  private relocCache: ElfRelocSection[] | undefined;

  /** Use parseElf(); the constructor assumes the header was already validated. */
  constructor(
    readonly buf: Buffer,
    /** Prefix for error messages, usually the file name. */
    readonly source: string,
  ) {
    this.type = buf.readUInt16LE(16);
    this.machine = buf.readUInt16LE(18);
    this.sections = this.readSectionHeaders();
  }

  private fail(msg: string): never {
    corrupt(this.source, msg);
  }

  private readSectionHeaders(): ElfSection[] {
    const buf = this.buf;
    const shoffBig = buf.readBigUInt64LE(40);
    const shentsize = buf.readUInt16LE(58);
    let shnum = buf.readUInt16LE(60);
    let shstrndx = buf.readUInt16LE(62);
    if (shoffBig === 0n) return []; // no section header table (allowed for executables)
    if (shoffBig > BigInt(buf.length)) {
      this.fail(`section header table offset 0x${shoffBig.toString(16)} is beyond end of file (${buf.length} bytes)`);
    }
    const shoff = Number(shoffBig);
    if (shentsize !== SHDR_SIZE) this.fail(`unexpected section header size ${shentsize} (want ${SHDR_SIZE})`);
    if (shoff + SHDR_SIZE > buf.length)
      this.fail(`section header table at 0x${shoff.toString(16)} extends beyond end of file (${buf.length} bytes)`);
    // Extended numbering: with >= 0xff00 sections the real count and string
    // table index live in section header 0 (gcc -ffunction-sections can get there).
    if (shnum === 0) shnum = u64num(buf, shoff + 32, 'section count', this.source);
    if (shstrndx === SHN_XINDEX) shstrndx = buf.readUInt32LE(shoff + 40);
    if (shoff + shnum * SHDR_SIZE > buf.length) {
      this.fail(`section header table (${shnum} entries at 0x${shoff.toString(16)}) extends beyond end of file`);
    }

    const secs: ElfSection[] = [];
    const nameOffs: number[] = [];
    for (let i = 0; i < shnum; i++) {
      const p = shoff + i * SHDR_SIZE;
      const type = buf.readUInt32LE(p + 4);
      const offset = u64num(buf, p + 24, `section ${i} offset`, this.source);
      const size = u64num(buf, p + 32, `section ${i} size`, this.source);
      if (type !== SHT_NOBITS && type !== SHT_NULL && offset + size > buf.length) {
        this.fail(
          `section ${i} (offset 0x${offset.toString(16)}, size 0x${size.toString(16)}) extends beyond end of file`,
        );
      }
      const addralign = u64num(buf, p + 48, `section ${i} alignment`, this.source);
      if (addralign > MAX_ALIGN || (addralign & (addralign - 1)) !== 0) {
        this.fail(`section ${i} alignment 0x${addralign.toString(16)} is not a power of two up to 2^30`);
      }
      nameOffs.push(buf.readUInt32LE(p));
      secs.push({
        index: i,
        name: '',
        type,
        // Defined flags all sit in the low 32 bits; >>> 0 keeps the value unsigned.
        flags: buf.readUInt32LE(p + 8) >>> 0,
        addr: buf.readBigUInt64LE(p + 16),
        offset,
        size,
        link: buf.readUInt32LE(p + 40),
        info: buf.readUInt32LE(p + 44),
        addralign,
        entsize: u64num(buf, p + 56, `section ${i} entry size`, this.source),
      });
    }
    if (shstrndx !== SHN_UNDEF) {
      const strtab = secs[shstrndx];
      if (strtab === undefined || strtab.type !== SHT_STRTAB)
        this.fail(`section name table index ${shstrndx} is invalid`);
      for (const s of secs) s.name = this.str(strtab, nameOffs[s.index] ?? 0);
    }
    return secs;
  }

  /** NUL-terminated string at `off` inside string table `tab`; one toString call, no per-byte work. */
  private str(tab: ElfSection, off: number): string {
    if (off === 0) return ''; // by definition, and the common case for section symbols
    if (off >= tab.size) this.fail(`string offset ${off} is outside ${tab.name || `section ${tab.index}`}`);
    const start = tab.offset + off;
    const end = tab.offset + tab.size;
    const nul = this.buf.indexOf(0, start);
    if (nul < 0 || nul >= end) this.fail(`unterminated string in ${tab.name || `section ${tab.index}`}`);
    return this.buf.toString('utf8', start, nul);
  }

  sectionByName(name: string): ElfSection | undefined {
    if (this.byName === undefined) {
      this.byName = new Map();
      // First wins: names can repeat in .o files (e.g. several .rela.text with groups).
      for (const s of this.sections) if (!this.byName.has(s.name)) this.byName.set(s.name, s);
    }
    return this.byName.get(name);
  }

  /** Zero-copy view of a section's bytes (shares memory with the file buffer). */
  sectionData(sec: ElfSection): Buffer {
    if (sec.type === SHT_NOBITS || sec.type === SHT_NULL) return this.buf.subarray(0, 0);
    return this.buf.subarray(sec.offset, sec.offset + sec.size);
  }

  /** Symbols of .symtab (empty if the file is stripped). Decoded once, then cached. */
  symbols(): ElfSymbol[] {
    const symtab = this.sections.find((s) => s.type === SHT_SYMTAB);
    return symtab === undefined ? [] : this.symbolsOf(symtab);
  }

  private symbolsOf(symtab: ElfSection): ElfSymbol[] {
    const hit = this.symCache.get(symtab.index);
    if (hit !== undefined) return hit;
    const what = symtab.name || `section ${symtab.index}`;
    if (symtab.entsize !== SYM_SIZE) this.fail(`${what} has entry size ${symtab.entsize}, expected ${SYM_SIZE}`);
    if (symtab.size % SYM_SIZE !== 0) this.fail(`${what} size ${symtab.size} is not a multiple of ${SYM_SIZE}`);
    const strtab = this.sections[symtab.link];
    if (strtab === undefined || strtab.type !== SHT_STRTAB)
      this.fail(`${what} links to invalid string table ${symtab.link}`);
    const count = symtab.size / SYM_SIZE;
    const xindex = this.sections.find((s) => s.type === SHT_SYMTAB_SHNDX && s.link === symtab.index);
    if (xindex !== undefined && xindex.size < count * 4) this.fail(`${xindex.name} is too small for ${what}`);

    const buf = this.buf;
    const secs = this.sections;
    const relocatable = this.type === ET_REL;
    const out: ElfSymbol[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const p = symtab.offset + i * SYM_SIZE;
      const info = buf[p + 4]!;
      let shndx = buf.readUInt16LE(p + 6);
      // SHN_XINDEX: the real (possibly >= 0xff00) index is in .symtab_shndx.
      if (shndx === SHN_XINDEX && xindex === undefined) {
        this.fail(`symbol ${i} in ${what} has an extended section index but there is no SHT_SYMTAB_SHNDX section`);
      }
      const extended = shndx === SHN_XINDEX && xindex !== undefined;
      if (extended) shndx = buf.readUInt32LE(xindex.offset + i * 4);
      const sym: ElfSymbol = {
        index: i,
        name: this.str(strtab, buf.readUInt32LE(p)),
        value: buf.readBigUInt64LE(p + 8),
        // Two u32 halves avoid a bigint allocation per symbol; sizes never approach 2^53.
        size: buf.readUInt32LE(p + 20) * 0x1_0000_0000 + buf.readUInt32LE(p + 16),
        bind: info >> 4,
        type: info & 0xf,
        visibility: buf[p + 5]! & 3,
        shndx,
      };
      if (shndx !== SHN_UNDEF && (extended || shndx < SHN_LORESERVE)) {
        const sec = secs[shndx];
        if (sec === undefined) this.fail(`symbol ${i} in ${what} refers to missing section ${shndx}`);
        // In a relocatable object a symbol's value is an offset into its section: it lies inside.
        if (relocatable && (sym.value > BigInt(sec.size) || Number(sym.value) + sym.size > sec.size)) {
          this.fail(
            `symbol ${sym.name || i} in ${what} (offset 0x${sym.value.toString(16)}, size 0x${sym.size.toString(16)}) lies outside its section ${sec.name || shndx} (0x${sec.size.toString(16)} bytes)`,
          );
        }
        sym.section = sec.name;
      }
      out[i] = sym;
    }
    this.symCache.set(symtab.index, out);
    return out;
  }

  /**
   * Every SHT_RELA section with its target. Entries are decoded lazily per
   * section, so listing the sections of a vmlinux stays cheap.
   */
  relocations(): ElfRelocSection[] {
    if (this.relocCache !== undefined) return this.relocCache;
    const out: ElfRelocSection[] = [];
    for (const sec of this.sections) {
      if (sec.type !== SHT_RELA) continue;
      if (sec.entsize !== RELA_SIZE) this.fail(`${sec.name} has entry size ${sec.entsize}, expected ${RELA_SIZE}`);
      if (sec.size % RELA_SIZE !== 0) this.fail(`${sec.name} size ${sec.size} is not a multiple of ${RELA_SIZE}`);
      let target: ElfSection | undefined;
      if (sec.info !== 0) {
        target = this.sections[sec.info];
        if (target === undefined) this.fail(`${sec.name} applies to missing section ${sec.info}`);
      }
      if (this.type === ET_REL && target === undefined && sec.size > 0) {
        this.fail(`${sec.name} applies to no section (sh_info 0)`);
      }
      const count = sec.size / RELA_SIZE;
      out.push(new RelocSection(sec, target, count, () => this.decodeRela(sec, count)));
    }
    this.relocCache = out;
    return out;
  }

  private decodeRela(sec: ElfSection, count: number): ElfRelocation[] {
    let syms: ElfSymbol[] = [];
    if (sec.link !== 0) {
      const symtab = this.sections[sec.link];
      if (symtab === undefined || (symtab.type !== SHT_SYMTAB && symtab.type !== SHT_DYNSYM)) {
        this.fail(`${sec.name} links to invalid symbol table ${sec.link}`);
      }
      syms = this.symbolsOf(symtab);
    }
    const buf = this.buf;
    // In a relocatable object r_offset is an offset into the target section: the field lies inside.
    const target = this.type === ET_REL && sec.info !== 0 ? this.sections[sec.info] : undefined;
    const limit = target === undefined ? undefined : target.type === SHT_NOBITS ? 0n : BigInt(target.size);
    const out: ElfRelocation[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const p = sec.offset + i * RELA_SIZE;
      // r_info = (sym << 32) | type; read as two u32 halves.
      const type = buf.readUInt32LE(p + 8);
      const symIndex = buf.readUInt32LE(p + 12);
      const r: ElfRelocation = { offset: buf.readBigUInt64LE(p), type, symIndex, addend: buf.readBigInt64LE(p + 16) };
      if (limit !== undefined && r.offset + BigInt(relocWidth(type)) > limit) {
        this.fail(
          `relocation ${i} in ${sec.name} (${relocTypeName(type)} at 0x${r.offset.toString(16)}) lies outside ${target!.name || `section ${sec.info}`} (0x${limit.toString(16)} bytes)`,
        );
      }
      if (symIndex !== 0) {
        const s = syms[symIndex];
        if (s === undefined) this.fail(`relocation ${i} in ${sec.name} refers to missing symbol ${symIndex}`);
        r.symbol = s;
      }
      out[i] = r;
    }
    return out;
  }
}

/**
 * Validates the ELF identification and section header table of `buf` and
 * returns a reader over it. The buffer is not copied; keep it unmodified.
 * `source` (e.g. the file name) prefixes error messages.
 */
export function parseElf(buf: Buffer, source = 'ELF input'): ElfFile {
  if (buf.length < 4 || buf[0] !== 0x7f || buf[1] !== 0x45 || buf[2] !== 0x4c || buf[3] !== 0x46) {
    throw new KlpgenError(`${source}: not an ELF file (bad magic)`);
  }
  if (buf.length < EHDR_SIZE) corrupt(source, `truncated ELF header (${buf.length} bytes)`);
  if (buf[4] !== 2)
    throw new KlpgenError(`${source}: not a 64-bit ELF file (EI_CLASS=${buf[4]}); only ELF64 is supported`);
  if (buf[5] !== 1) throw new KlpgenError(`${source}: not a little-endian ELF file (EI_DATA=${buf[5]})`);
  if (buf[6] !== 1) throw new KlpgenError(`${source}: unsupported ELF version ${buf[6]}`);
  return new ElfFile(buf, source);
}

/**
 * Parses a kernel module's .modinfo: NUL-separated "key=value" strings.
 * Keys repeat (alias, depends, ...), so each maps to all values in file order.
 * A file without .modinfo yields an empty map; strings without '=' are skipped
 * (the kernel's own lookup ignores them too).
 */
export function readModinfo(elf: ElfFile): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const sec = elf.sectionByName('.modinfo');
  if (sec === undefined) return out;
  const data = elf.sectionData(sec);
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end < 0) end = data.length;
    if (end > start) {
      // Values are free text (author names, descriptions), hence utf8.
      const entry = data.toString('utf8', start, end);
      const eq = entry.indexOf('=');
      if (eq > 0) {
        const key = entry.slice(0, eq);
        const list = out.get(key);
        if (list === undefined) out.set(key, [entry.slice(eq + 1)]);
        else list.push(entry.slice(eq + 1));
      }
    }
    start = end + 1;
  }
  return out;
}
