/**
 * Small ELF64 little-endian writer/editor for relocatable objects (.o, .ko).
 *
 * load() decodes a file (validated by parseElf first), the edit methods
 * change the in-memory model, serialize() lays the file out again. The
 * model is deliberately close to the bytes so that an unedited file comes
 * back unchanged:
 *
 *  - Sections keep their index and order; new sections are appended.
 *  - Section and symbol names keep their original string-table offsets;
 *    new or changed names are appended to the string table (or reuse an
 *    identical NUL-terminated string already in it). Old strings stay.
 *  - The symbol table, its string table, .shstrtab, every SHT_RELA/SHT_REL
 *    section linked to the symbol table and every SHT_GROUP section are
 *    "managed": they are regenerated from the model on serialize(), so
 *    relocations and group signatures refer to symbol objects, not indices,
 *    and survive renumbering. All other sections are copied byte for byte.
 *  - Symbols are kept partitioned, LOCAL first (stable order), and the
 *    symbol table's sh_info is set to the first non-local index, as the ELF
 *    spec requires.
 *  - Layout: ELF header, then the sections in their original file order
 *    (new ones last), each at the next offset that satisfies its sh_addralign
 *    (SHT_NOBITS sections take no space), then the section header table,
 *    8-aligned. This is the layout GNU as and ld produce, so an unedited
 *    object is reproduced byte for byte. Bytes that belong to no section
 *    (e.g. an appended module signature) are dropped.
 *
 * Not supported (KlpgenError on load): non-relocatable files, program
 * headers, extended section numbering (>= 0xff00 sections, SHT_SYMTAB_SHNDX)
 * and more than one symbol table.
 */
import { KlpgenError } from '../util/errors.js';
import {
  parseElf,
  ET_REL,
  SHN_UNDEF,
  SHN_LORESERVE,
  SHN_XINDEX,
  STB_LOCAL,
  SHT_NULL,
  SHT_NOBITS,
  SHT_SYMTAB,
  SHT_STRTAB,
  SHT_RELA,
  SHT_REL,
  SHT_GROUP,
  SHT_SYMTAB_SHNDX,
  SHT_DYNSYM,
} from './elf64.js';

const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;
const RELA_SIZE = 24;
const REL_SIZE = 16;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export interface WriterSection {
  /** Index in the section header table (stable: sections are never removed or reordered). */
  readonly index: number;
  readonly name: string;
  readonly type: number;
  /** Full sh_flags (all defined flags, including SHF_RELA_LIVEPATCH, fit a number). */
  readonly flags: number;
  readonly addr: bigint;
  readonly link: number;
  readonly info: number;
  readonly addralign: number;
  readonly entsize: number;
  /** sh_size; for managed sections it is the size serialize() will write. */
  readonly size: number;
}

export interface WriterSymbol {
  readonly name: string;
  readonly value: bigint;
  readonly size: bigint;
  /** st_info >> 4 (STB_*). */
  readonly bind: number;
  /** st_info & 0xf (STT_*). */
  readonly type: number;
  /** Raw st_other (visibility in the low 2 bits). */
  readonly other: number;
  /** Raw st_shndx: a section index or a special value (SHN_UNDEF, SHN_ABS, SHN_LIVEPATCH...). */
  readonly shndx: number;
}

export interface WriterReloc {
  offset: bigint;
  type: number;
  /** null for symbol index 0 (a relocation that needs no symbol). */
  symbol: WriterSymbol | null;
  /** Always 0n for SHT_REL sections (the addend is in the section data). */
  addend: bigint;
}

export interface NewSymbol {
  name: string;
  value?: bigint;
  size?: bigint;
  bind: number;
  type: number;
  other?: number;
  shndx: number;
}

export interface NewSection {
  name: string;
  type: number;
  flags?: number;
  addr?: bigint;
  link?: number;
  info?: number;
  addralign?: number;
  entsize?: number;
  /** Contents; for SHT_NOBITS give `size` instead. For a relocation section linked to the symbol table, prefer `relocations`. */
  data?: Buffer;
  /** sh_size of an SHT_NOBITS section. */
  size?: number;
  /** Entries of an SHT_RELA/SHT_REL section linked to the symbol table. */
  relocations?: readonly WriterReloc[];
}

export interface SectionUpdate {
  name?: string;
  flags?: number;
  addr?: bigint;
  info?: number;
  addralign?: number;
  entsize?: number;
}

class Sym implements WriterSymbol {
  constructor(
    public name: string,
    /** st_name: the original offset, or where a new name was placed in the string table. */
    public nameOff: number,
    public value: bigint,
    public size: bigint,
    public bind: number,
    public type: number,
    public other: number,
    public shndx: number,
  ) {}
}

class Sec implements WriterSection {
  /** Raw contents of unmanaged sections (empty for NOBITS/NULL). */
  data: Buffer = Buffer.alloc(0);
  /** sh_size of SHT_NOBITS sections. */
  nobitsSize = 0;
  /** Relocation entries of managed SHT_RELA/SHT_REL sections. */
  relocs: WriterReloc[] | undefined;
  /** Signature symbol of a managed SHT_GROUP section (its sh_info). */
  groupSig: Sym | null | undefined;
  /** Original file offset (for ordering the layout); Infinity for new sections. */
  readonly origOffset: number;
  constructor(
    readonly index: number,
    public name: string,
    /** sh_name, like Sym.nameOff. */
    public nameOff: number,
    readonly type: number,
    public flags: number,
    public addr: bigint,
    public link: number,
    public info: number,
    public addralign: number,
    public entsize: number,
    origOffset: number,
    /** Called to compute the size of managed sections. */
    private readonly sizer: (s: Sec) => number,
  ) {
    this.origOffset = origOffset;
  }

  get size(): number {
    return this.sizer(this);
  }
}

/** A string table: its original bytes plus strings appended by edits. */
class StrtabBuilder {
  private readonly extra: string[] = [];
  private readonly extraOff = new Map<string, number>();
  private length: number;
  constructor(private readonly base: Buffer) {
    this.length = base.length;
  }

  offsetOf(s: string): number {
    if (s === '') return 0;
    const hit = this.extraOff.get(s);
    if (hit !== undefined) return hit;
    // Any existing "s\0" works: names are read from the offset up to the NUL.
    const needle = Buffer.from(`${s}\0`, 'utf8');
    const at = this.base.indexOf(needle);
    if (at >= 0 && !s.includes('\0')) return at;
    const off = this.length;
    this.extra.push(s);
    this.extraOff.set(s, off);
    this.length += needle.length;
    return off;
  }

  bytes(): Buffer {
    if (this.extra.length === 0) return this.base;
    return Buffer.concat([this.base, ...this.extra.map((s) => Buffer.from(`${s}\0`, 'utf8'))]);
  }
}

function align(n: number, a: number): number {
  return a > 1 ? Math.ceil(n / a) * a : n;
}

function u64(buf: Buffer, pos: number, what: string, src: string): number {
  const v = buf.readBigUInt64LE(pos);
  if (v > MAX_SAFE) throw new KlpgenError(`${src}: ${what} 0x${v.toString(16)} is out of range`);
  return Number(v);
}

function assertU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff)
    throw new KlpgenError(`${what} ${v} is not a 32-bit unsigned value`);
}

export class ElfWriter {
  private readonly secs: Sec[] = [];
  private syms: Sym[] = [];
  private readonly symtabIndex: number | undefined;
  private readonly header: Buffer;
  private readonly shstrndx: number;
  /** String tables that managed names point into (.shstrtab, the symbols' .strtab), by section index. */
  private readonly strtabs = new Map<number, StrtabBuilder>();

  private constructor(
    buf: Buffer,
    readonly source: string,
  ) {
    const elf = parseElf(buf, source);
    const fail: (msg: string) => never = (msg) => {
      throw new KlpgenError(`${source}: ${msg}`);
    };
    if (elf.type !== ET_REL) fail(`not a relocatable object (e_type ${elf.type}); only .o/.ko files can be edited`);
    if (buf.readUInt16LE(56) !== 0) fail('has program headers; only relocatable objects without them can be edited');
    const shoff = Number(buf.readBigUInt64LE(40));
    if (shoff === 0 || buf.readUInt16LE(60) === 0)
      fail('has no section header table (or uses extended section numbering)');
    if (buf.readUInt16LE(62) === SHN_XINDEX) fail('uses extended section numbering, which is not supported');
    this.header = Buffer.from(buf.subarray(0, EHDR_SIZE));
    this.shstrndx = buf.readUInt16LE(62);
    if (elf.sections.some((s) => s.type === SHT_SYMTAB_SHNDX))
      fail('has SHT_SYMTAB_SHNDX (extended section indices), which is not supported');
    const symtabs = elf.sections.filter((s) => s.type === SHT_SYMTAB);
    if (symtabs.length > 1) fail(`has ${symtabs.length} symbol tables; only one is supported`);
    const symtab = symtabs[0];
    this.symtabIndex = symtab?.index;

    const sizer = (s: Sec): number => this.sizeOf(s);
    for (const s of elf.sections) {
      const p = shoff + s.index * SHDR_SIZE;
      const sec = new Sec(
        s.index,
        s.name,
        buf.readUInt32LE(p),
        s.type,
        u64(buf, p + 8, `section ${s.index} flags`, source),
        s.addr,
        s.link,
        s.info,
        s.addralign,
        s.entsize,
        s.type === SHT_NULL ? -1 : s.offset,
        sizer,
      );
      if (s.type === SHT_NOBITS) sec.nobitsSize = s.size;
      else sec.data = elf.sectionData(s);
      this.secs.push(sec);
    }
    const shstr = this.secs[this.shstrndx];
    if (shstr !== undefined && shstr.type === SHT_STRTAB) this.strtabs.set(shstr.index, new StrtabBuilder(shstr.data));

    if (symtab !== undefined) {
      const strtab = this.secs[symtab.link]!; // validated by symbols() below
      const decoded = elf.symbols();
      const raw = elf.sectionData(symtab);
      if (!this.strtabs.has(strtab.index)) this.strtabs.set(strtab.index, new StrtabBuilder(strtab.data));
      this.syms = decoded.map((d, i) => {
        const p = i * SYM_SIZE;
        return new Sym(
          d.name,
          raw.readUInt32LE(p),
          d.value,
          raw.readBigUInt64LE(p + 16),
          d.bind,
          d.type,
          raw[p + 5]!,
          raw.readUInt16LE(p + 6),
        );
      });
      // Managed relocation sections: entries refer to symbol objects.
      for (const rs of elf.relocations()) {
        if (rs.section.link !== symtab.index) continue;
        this.secs[rs.section.index]!.relocs = rs.entries.map((r) => ({
          offset: r.offset,
          type: r.type,
          symbol: r.symIndex === 0 ? null : this.syms[r.symIndex]!,
          addend: r.addend,
        }));
      }
      for (const s of this.secs) {
        if (s.type === SHT_REL && s.link === symtab.index) s.relocs = this.decodeRel(s, s.data);
        if (s.type === SHT_GROUP && s.link === symtab.index) {
          const sig = this.syms[s.info];
          if (sig === undefined) fail(`group section ${s.name} has invalid signature symbol ${s.info}`);
          s.groupSig = s.info === 0 ? null : sig;
        }
      }
      this.partition();
    }
  }

  /**
   * Decodes `buf` as an object file that can be edited and written back.
   * Unedited section contents are views of `buf`: keep it unmodified.
   */
  static load(buf: Buffer, source = 'ELF input'): ElfWriter {
    return new ElfWriter(buf, source);
  }

  private fail(msg: string): never {
    throw new KlpgenError(`${this.source}: ${msg}`);
  }

  // ------------------------------------------------------------ queries

  get sections(): readonly WriterSection[] {
    return this.secs;
  }

  /** Symbols in output order (index i here is symbol index i in the written file). */
  get symbols(): readonly WriterSymbol[] {
    return this.syms;
  }

  /** The SHT_SYMTAB section, if the object has one. */
  get symtab(): WriterSection | undefined {
    return this.symtabIndex === undefined ? undefined : this.secs[this.symtabIndex];
  }

  sectionByName(name: string): WriterSection | undefined {
    return this.secs.find((s) => s.name === name);
  }

  /** Current contents of a section as serialize() would write them. */
  sectionData(sec: WriterSection): Buffer {
    const s = this.own(sec);
    if (s.index === this.symtabIndex) return this.encodeSymtab().data;
    const strtab = this.strtabs.get(s.index);
    if (strtab !== undefined) return strtab.bytes();
    if (s.relocs !== undefined) return this.encodeRelocs(s, this.symbolIndexMap());
    return s.data;
  }

  /** Current index of a symbol (changes when symbols are added or rebound). */
  symbolIndex(sym: WriterSymbol): number {
    const i = this.syms.indexOf(sym as Sym);
    if (i < 0) this.fail(`symbol ${sym.name} does not belong to this object`);
    return i;
  }

  findSymbols(name: string): WriterSymbol[] {
    return this.syms.filter((s, i) => i > 0 && s.name === name);
  }

  /** Entries of a relocation section linked to the symbol table. */
  relocations(sec: WriterSection): readonly WriterReloc[] {
    const s = this.own(sec);
    if (s.relocs === undefined) this.fail(`${s.name} is not a relocation section linked to the symbol table`);
    return s.relocs;
  }

  // ------------------------------------------------------------ symbol edits

  renameSymbol(sym: WriterSymbol, name: string): void {
    const s = this.ownSym(sym);
    if (name.includes('\0')) this.fail(`symbol name ${JSON.stringify(name)} contains a NUL byte`);
    if (s.name === name) return;
    s.name = name;
    s.nameOff = this.symName(name);
  }

  setSymbolShndx(sym: WriterSymbol, shndx: number): void {
    const s = this.ownSym(sym);
    this.checkShndx(shndx);
    s.shndx = shndx;
  }

  setSymbolInfo(sym: WriterSymbol, bind: number, type: number): void {
    const s = this.ownSym(sym);
    this.checkInfo(bind, type);
    const moved = (s.bind === STB_LOCAL) !== (bind === STB_LOCAL);
    s.bind = bind;
    s.type = type;
    if (moved) this.partition();
  }

  setSymbolValue(sym: WriterSymbol, value: bigint, size?: bigint): void {
    const s = this.ownSym(sym);
    s.value = BigInt.asUintN(64, value);
    if (size !== undefined) s.size = BigInt.asUintN(64, size);
  }

  /** Appends a symbol: after the last LOCAL one if it is local, else at the end. */
  addSymbol(spec: NewSymbol): WriterSymbol {
    if (this.symtabIndex === undefined) this.fail('has no symbol table to add symbols to');
    if (spec.name.includes('\0')) this.fail(`symbol name ${JSON.stringify(spec.name)} contains a NUL byte`);
    this.checkInfo(spec.bind, spec.type);
    this.checkShndx(spec.shndx);
    const other = spec.other ?? 0;
    if (!Number.isInteger(other) || other < 0 || other > 0xff) this.fail(`st_other ${other} is not a byte`);
    const s = new Sym(
      spec.name,
      this.symName(spec.name),
      BigInt.asUintN(64, spec.value ?? 0n),
      BigInt.asUintN(64, spec.size ?? 0n),
      spec.bind,
      spec.type,
      other,
      spec.shndx,
    );
    this.syms.push(s);
    if (s.bind === STB_LOCAL) this.partition();
    return s;
  }

  // ------------------------------------------------------------ section edits

  /** Appends a section (it gets the next index; its name goes into .shstrtab). */
  addSection(spec: NewSection): WriterSection {
    if (this.secs.length + 1 >= SHN_LORESERVE)
      this.fail('too many sections (extended section numbering is not supported)');
    if (spec.type === SHT_NULL) this.fail('cannot add an SHT_NULL section');
    if (spec.type === SHT_SYMTAB || spec.type === SHT_SYMTAB_SHNDX || spec.type === SHT_DYNSYM) {
      this.fail(`cannot add a symbol table section (${spec.name})`);
    }
    if (spec.name.includes('\0')) this.fail(`section name ${JSON.stringify(spec.name)} contains a NUL byte`);
    const link = spec.link ?? 0;
    const info = spec.info ?? 0;
    const addralign = spec.addralign ?? 1;
    const entsize = spec.entsize ?? 0;
    const flags = spec.flags ?? 0;
    assertU32(link, 'sh_link');
    assertU32(info, 'sh_info');
    if (!Number.isSafeInteger(flags) || flags < 0) this.fail(`sh_flags ${flags} is invalid`);
    if (!ElfWriter.validAlign(addralign)) this.fail(`sh_addralign ${addralign} is not a power of two`);
    if (!Number.isSafeInteger(entsize) || entsize < 0) this.fail(`sh_entsize ${entsize} is invalid`);
    if (link >= this.secs.length + 1) this.fail(`sh_link ${link} of ${spec.name} is not a section index`);
    const sec = new Sec(
      this.secs.length,
      spec.name,
      this.secName(spec.name),
      spec.type,
      flags,
      spec.addr ?? 0n,
      link,
      info,
      addralign,
      entsize,
      Number.POSITIVE_INFINITY,
      (x) => this.sizeOf(x),
    );
    const managedRel =
      (spec.type === SHT_RELA || spec.type === SHT_REL) && link === this.symtabIndex && link !== undefined;
    if (spec.type === SHT_NOBITS) {
      if (spec.data !== undefined) this.fail(`SHT_NOBITS section ${spec.name} cannot have data`);
      sec.nobitsSize = spec.size ?? 0;
    } else if (managedRel) {
      if (spec.relocations !== undefined && spec.data !== undefined)
        this.fail(`give ${spec.name} either data or relocations`);
      sec.relocs = [];
      if (spec.relocations !== undefined) sec.relocs = this.checkRelocs(sec, spec.relocations);
      else if (spec.data !== undefined) sec.relocs = this.decodeCurrent(sec, spec.data);
    } else {
      if (spec.relocations !== undefined)
        this.fail(`${spec.name} is not a relocation section linked to the symbol table`);
      if (spec.type === SHT_GROUP && link === this.symtabIndex && link !== undefined) {
        const sig = this.syms[info];
        if (sig === undefined) this.fail(`group section ${spec.name}: no symbol ${info}`);
        sec.groupSig = info === 0 ? null : sig;
      }
      sec.data = Buffer.from(spec.data ?? Buffer.alloc(0));
    }
    this.secs.push(sec);
    return sec;
  }

  /** Changes header fields of a section (not its type or sh_link, which decide how it is managed). */
  updateSection(sec: WriterSection, upd: SectionUpdate): void {
    const s = this.own(sec);
    if (upd.name !== undefined && upd.name !== s.name) {
      if (upd.name.includes('\0')) this.fail(`section name ${JSON.stringify(upd.name)} contains a NUL byte`);
      s.name = upd.name;
      s.nameOff = this.secName(upd.name);
    }
    if (upd.flags !== undefined) {
      if (!Number.isSafeInteger(upd.flags) || upd.flags < 0) this.fail(`sh_flags ${upd.flags} is invalid`);
      s.flags = upd.flags;
    }
    if (upd.addr !== undefined) s.addr = BigInt.asUintN(64, upd.addr);
    if (upd.info !== undefined) {
      assertU32(upd.info, 'sh_info');
      if (s.index === this.symtabIndex) this.fail("the symbol table's sh_info is computed on output");
      if (s.groupSig !== undefined) {
        const sig = this.syms[upd.info];
        if (sig === undefined) this.fail(`group section ${s.name}: no symbol ${upd.info}`);
        s.groupSig = upd.info === 0 ? null : sig;
      }
      s.info = upd.info;
    }
    if (upd.addralign !== undefined) {
      if (!ElfWriter.validAlign(upd.addralign)) this.fail(`sh_addralign ${upd.addralign} is not a power of two`);
      s.addralign = upd.addralign;
    }
    if (upd.entsize !== undefined) {
      if (!Number.isSafeInteger(upd.entsize) || upd.entsize < 0) this.fail(`sh_entsize ${upd.entsize} is invalid`);
      s.entsize = upd.entsize;
    }
  }

  /**
   * Replaces a section's contents. For a relocation section linked to the
   * symbol table the bytes are decoded with the symbol indices as they are
   * now (see symbolIndex()); later symbol edits then renumber them.
   */
  setSectionData(sec: WriterSection, data: Buffer): void {
    const s = this.own(sec);
    if (s.index === this.symtabIndex) this.fail('the symbol table is generated from the symbols; edit those instead');
    if (s.type === SHT_NOBITS || s.type === SHT_NULL) this.fail(`${s.name || `section ${s.index}`} has no file data`);
    if (this.strtabs.has(s.index)) this.fail(`${s.name} is a string table that names are added to automatically`);
    if (s.relocs !== undefined) {
      s.relocs = this.decodeCurrent(s, data);
      return;
    }
    s.data = Buffer.from(data);
  }

  /** Replaces the entries of a relocation section linked to the symbol table. */
  setRelocations(sec: WriterSection, entries: readonly WriterReloc[]): void {
    const s = this.own(sec);
    if (s.relocs === undefined) this.fail(`${s.name} is not a relocation section linked to the symbol table`);
    s.relocs = this.checkRelocs(s, entries);
  }

  /** Changes the size of an SHT_NOBITS section. */
  setNobitsSize(sec: WriterSection, size: number): void {
    const s = this.own(sec);
    if (s.type !== SHT_NOBITS) this.fail(`${s.name} is not SHT_NOBITS`);
    if (!Number.isSafeInteger(size) || size < 0) this.fail(`size ${size} is invalid`);
    s.nobitsSize = size;
  }

  // ------------------------------------------------------------ output

  serialize(): Buffer {
    const symtab = this.symtabIndex === undefined ? undefined : this.encodeSymtab();
    const idx = this.symbolIndexMap();
    const contents: Buffer[] = this.secs.map((s) => {
      if (s.index === this.symtabIndex) return symtab!.data;
      if (s.relocs !== undefined) return this.encodeRelocs(s, idx);
      return this.strtabs.get(s.index)?.bytes() ?? s.data;
    });

    const order = [...this.secs].sort((a, b) => a.origOffset - b.origOffset || a.index - b.index);
    const offsets = new Array<number>(this.secs.length).fill(0);
    let pos = EHDR_SIZE;
    for (const s of order) {
      if (s.type === SHT_NULL) continue;
      pos = align(pos, s.addralign);
      offsets[s.index] = pos;
      if (s.type !== SHT_NOBITS) pos += contents[s.index]!.length;
    }
    const shoff = align(pos, 8);
    const out = Buffer.alloc(shoff + this.secs.length * SHDR_SIZE);
    this.header.copy(out, 0);
    out.writeBigUInt64LE(BigInt(shoff), 40);
    out.writeUInt16LE(this.secs.length, 60);
    for (const s of this.secs) {
      const data = contents[s.index]!;
      if (s.type !== SHT_NOBITS && s.type !== SHT_NULL) data.copy(out, offsets[s.index]!);
      const p = shoff + s.index * SHDR_SIZE;
      let info = s.info;
      if (s.index === this.symtabIndex) info = symtab!.firstGlobal;
      else if (s.groupSig !== undefined) info = s.groupSig === null ? 0 : idx.get(s.groupSig)!;
      out.writeUInt32LE(s.nameOff, p);
      out.writeUInt32LE(s.type, p + 4);
      out.writeBigUInt64LE(BigInt(s.flags), p + 8);
      out.writeBigUInt64LE(s.addr, p + 16);
      out.writeBigUInt64LE(BigInt(offsets[s.index]!), p + 24);
      out.writeBigUInt64LE(BigInt(s.type === SHT_NOBITS ? s.nobitsSize : data.length), p + 32);
      out.writeUInt32LE(s.link, p + 40);
      out.writeUInt32LE(info, p + 44);
      out.writeBigUInt64LE(BigInt(s.addralign), p + 48);
      out.writeBigUInt64LE(BigInt(s.entsize), p + 56);
    }
    return out;
  }

  // ------------------------------------------------------------ internals

  /** 0, 1 or a power of two (up to 2^30, plenty for any object file). */
  private static validAlign(a: number): boolean {
    return Number.isInteger(a) && a >= 0 && a <= 0x4000_0000 && (a & (a - 1)) === 0;
  }

  private own(sec: WriterSection): Sec {
    const s = this.secs[sec.index];
    if (s !== sec) this.fail(`section ${sec.name} does not belong to this object`);
    return s;
  }

  private ownSym(sym: WriterSymbol): Sym {
    const i = this.syms.indexOf(sym as Sym);
    if (i < 0) this.fail(`symbol ${sym.name} does not belong to this object`);
    if (i === 0) this.fail('symbol 0 (the null symbol) cannot be edited');
    return this.syms[i]!;
  }

  private checkShndx(shndx: number): void {
    if (!Number.isInteger(shndx) || shndx < 0 || shndx > 0xffff || shndx === SHN_XINDEX)
      this.fail(`st_shndx ${shndx} is invalid`);
    if (shndx !== SHN_UNDEF && shndx < SHN_LORESERVE && shndx >= this.secs.length)
      this.fail(`st_shndx ${shndx} is not a section index`);
  }

  private checkInfo(bind: number, type: number): void {
    if (!Number.isInteger(bind) || bind < 0 || bind > 15) this.fail(`symbol binding ${bind} is invalid`);
    if (!Number.isInteger(type) || type < 0 || type > 15) this.fail(`symbol type ${type} is invalid`);
  }

  /** Stable partition: LOCAL symbols first (the null symbol stays at 0). */
  private partition(): void {
    const locals = this.syms.filter((s, i) => i === 0 || s.bind === STB_LOCAL);
    if (locals.length === this.syms.length) return;
    this.syms = [...locals, ...this.syms.filter((s, i) => i !== 0 && s.bind !== STB_LOCAL)];
  }

  private symbolIndexMap(): Map<WriterSymbol, number> {
    return new Map(this.syms.map((s, i) => [s, i]));
  }

  private checkRelocs(sec: Sec, entries: readonly WriterReloc[]): WriterReloc[] {
    const known = new Set<WriterSymbol>(this.syms);
    return entries.map((r, i) => {
      if (r.symbol !== null && !known.has(r.symbol))
        this.fail(`relocation ${i} for ${sec.name} refers to a symbol of another object`);
      if (r.symbol === this.syms[0]) this.fail(`relocation ${i} for ${sec.name}: use null, not the null symbol`);
      assertU32(r.type, 'relocation type');
      if (sec.type === SHT_REL && r.addend !== 0n)
        this.fail(`relocation ${i} for SHT_REL section ${sec.name} has an addend`);
      return {
        offset: BigInt.asUintN(64, r.offset),
        type: r.type,
        symbol: r.symbol,
        addend: BigInt.asIntN(64, r.addend),
      };
    });
  }

  /** Decodes relocation bytes against the current symbol numbering. */
  private decodeCurrent(sec: Sec, data: Buffer): WriterReloc[] {
    if (sec.type === SHT_REL) return this.decodeRel(sec, data);
    if (data.length % RELA_SIZE !== 0) this.fail(`data for ${sec.name} is not a whole number of Elf64_Rela entries`);
    const out: WriterReloc[] = [];
    for (let p = 0; p < data.length; p += RELA_SIZE) {
      out.push({
        offset: data.readBigUInt64LE(p),
        type: data.readUInt32LE(p + 8),
        symbol: this.symAt(sec, data.readUInt32LE(p + 12)),
        addend: data.readBigInt64LE(p + 16),
      });
    }
    return out;
  }

  private decodeRel(sec: Sec, data: Buffer): WriterReloc[] {
    if (data.length % REL_SIZE !== 0) this.fail(`${sec.name} is not a whole number of Elf64_Rel entries`);
    const out: WriterReloc[] = [];
    for (let p = 0; p < data.length; p += REL_SIZE) {
      out.push({
        offset: data.readBigUInt64LE(p),
        type: data.readUInt32LE(p + 8),
        symbol: this.symAt(sec, data.readUInt32LE(p + 12)),
        addend: 0n,
      });
    }
    return out;
  }

  private symAt(sec: Sec, i: number): Sym | null {
    if (i === 0) return null;
    const s = this.syms[i];
    if (s === undefined) this.fail(`relocation in ${sec.name} refers to missing symbol ${i}`);
    return s;
  }

  private sizeOf(s: Sec): number {
    if (s.type === SHT_NOBITS) return s.nobitsSize;
    if (s.index === this.symtabIndex) return this.syms.length * SYM_SIZE;
    if (s.relocs !== undefined) return s.relocs.length * (s.type === SHT_REL ? REL_SIZE : RELA_SIZE);
    return this.sectionData(s).length;
  }

  /** Offset of a symbol name in the symbols' string table (appended if new). */
  private symName(name: string): number {
    const t = this.symtabIndex === undefined ? undefined : this.strtabs.get(this.secs[this.symtabIndex]!.link);
    if (t === undefined) this.fail('has no symbol string table');
    return t.offsetOf(name);
  }

  /** Offset of a section name in .shstrtab (appended if new). */
  private secName(name: string): number {
    const t = this.strtabs.get(this.shstrndx);
    if (t === undefined) this.fail('has no section name string table');
    return t.offsetOf(name);
  }

  private encodeSymtab(): { data: Buffer; firstGlobal: number } {
    const data = Buffer.alloc(this.syms.length * SYM_SIZE);
    let firstGlobal = this.syms.length;
    this.syms.forEach((s, i) => {
      const p = i * SYM_SIZE;
      if (i > 0 && s.bind !== STB_LOCAL && firstGlobal === this.syms.length) firstGlobal = i;
      data.writeUInt32LE(s.nameOff, p);
      data[p + 4] = (s.bind << 4) | s.type;
      data[p + 5] = s.other;
      data.writeUInt16LE(s.shndx, p + 6);
      data.writeBigUInt64LE(s.value, p + 8);
      data.writeBigUInt64LE(s.size, p + 16);
    });
    return { data, firstGlobal };
  }

  private encodeRelocs(s: Sec, idx: Map<WriterSymbol, number>): Buffer {
    const rel = s.type === SHT_REL;
    const size = rel ? REL_SIZE : RELA_SIZE;
    const relocs = s.relocs!;
    const data = Buffer.alloc(relocs.length * size);
    relocs.forEach((r, i) => {
      const p = i * size;
      let sym = 0;
      if (r.symbol !== null) {
        const n = idx.get(r.symbol);
        if (n === undefined)
          this.fail(`relocation ${i} in ${s.name} refers to a symbol that is not in the symbol table`);
        sym = n;
      }
      data.writeBigUInt64LE(r.offset, p);
      data.writeUInt32LE(r.type, p + 8);
      data.writeUInt32LE(sym, p + 12);
      if (!rel) data.writeBigInt64LE(r.addend, p + 16);
    });
    return data;
  }
}
