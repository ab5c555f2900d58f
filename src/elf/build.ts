/**
 * A new ELF64 relocatable object (x86-64), built from sections, symbols and
 * relocations. The editor (writer.ts) changes objects that exist; this makes
 * one from parts, as the extraction of functions from a patched build needs.
 *
 * Layout: ELF header, the sections in the order they were added (each at its
 * alignment), their `.rela` sections, `.symtab`, `.strtab`, `.shstrtab`, then
 * the section header table. Every section gets a section symbol (STT_SECTION,
 * LOCAL), as gas writes them. Symbols are written LOCAL first, then the
 * others, in the order they were added: the same parts give the same bytes.
 */
import { KlpgenError } from '../util/errors.js';
import { SHF_INFO_LINK, SHT_NOBITS, SHT_RELA, SHT_STRTAB, SHT_SYMTAB, STB_LOCAL, STT_SECTION } from './elf64.js';

export interface SectionSpec {
  name: string;
  type: number;
  flags: number;
  addralign: number;
  entsize?: number;
  /** Contents (not for SHT_NOBITS). */
  data?: Buffer;
  /** Size of an SHT_NOBITS section. */
  size?: number;
}

export interface SymbolSpec {
  name: string;
  bind: number;
  type: number;
  /** A section id from addSection, or undefined for an undefined symbol. */
  section?: number;
  value?: bigint;
  size?: bigint;
  other?: number;
}

/** A symbol of the object being built. */
export type SymbolRef = number;

export interface RelocSpec {
  offset: number;
  type: number;
  symbol: SymbolRef;
  addend: bigint;
}

interface Section extends SectionSpec {
  relocs: RelocSpec[];
  symbol: SymbolRef;
}

export class ObjectBuilder {
  private readonly sections: Section[] = [];
  private readonly symbols: SymbolSpec[] = [];

  addSection(spec: SectionSpec): number {
    if (spec.type === SHT_NOBITS ? spec.data !== undefined : spec.data === undefined) {
      throw new KlpgenError(
        `section ${spec.name}: ${spec.type === SHT_NOBITS ? 'NOBITS takes a size, not data' : 'needs its data'}`,
      );
    }
    const id = this.sections.length;
    const symbol = this.addSymbol({ name: '', bind: STB_LOCAL, type: STT_SECTION, section: id });
    this.sections.push({ ...spec, relocs: [], symbol });
    return id;
  }

  addSymbol(spec: SymbolSpec): SymbolRef {
    if (
      spec.section !== undefined &&
      (spec.section < 0 || spec.section >= this.sections.length + (spec.type === STT_SECTION ? 1 : 0))
    ) {
      throw new KlpgenError(`symbol ${spec.name}: no section ${spec.section}`);
    }
    if (spec.name.includes('\0')) throw new KlpgenError(`symbol name ${JSON.stringify(spec.name)} contains a NUL byte`);
    this.symbols.push(spec);
    return this.symbols.length - 1;
  }

  sectionSymbol(section: number): SymbolRef {
    const s = this.sections[section];
    if (!s) throw new KlpgenError(`no section ${section}`);
    return s.symbol;
  }

  sectionName(section: number): string {
    return this.sections[section]?.name ?? '';
  }

  sectionSize(section: number): number {
    const s = this.sections[section];
    return s ? (s.data?.length ?? s.size ?? 0) : 0;
  }

  addReloc(section: number, r: RelocSpec): void {
    const s = this.sections[section];
    if (!s) throw new KlpgenError(`relocation in section ${section}, which does not exist`);
    if (s.type === SHT_NOBITS) throw new KlpgenError(`relocation in NOBITS section ${s.name}`);
    if (r.symbol < 0 || r.symbol >= this.symbols.length)
      throw new KlpgenError(`relocation in ${s.name} against symbol ${r.symbol}, which does not exist`);
    if (r.offset < 0 || r.offset >= (s.data?.length ?? 0))
      throw new KlpgenError(`relocation at ${s.name}+0x${r.offset.toString(16)}: outside the section`);
    s.relocs.push(r);
  }

  serialize(): Buffer {
    // Symbol order: the null symbol, LOCAL ones, then the rest; each keeps its order of addition.
    const order = [...this.symbols.keys()].sort(
      (a, b) => Number(this.symbols[a]!.bind !== STB_LOCAL) - Number(this.symbols[b]!.bind !== STB_LOCAL) || a - b,
    );
    const indexOf = new Map(order.map((ref, i) => [ref, i + 1]));
    const firstGlobal = 1 + order.filter((ref) => this.symbols[ref]!.bind === STB_LOCAL).length;

    const strtab = new StringTable();
    const shstrtab = new StringTable();
    // Section indices: 1.. for ours, then a .rela per section with relocations, then the tables.
    const secIndex = (id: number) => id + 1;
    const relaOf = this.sections.map((s, id) => ({ s, id })).filter(({ s }) => s.relocs.length > 0);
    const symtabIndex = 1 + this.sections.length + relaOf.length;

    const symtab = Buffer.alloc(24 * (order.length + 1));
    order.forEach((ref, i) => {
      const s = this.symbols[ref]!;
      const p = 24 * (i + 1);
      symtab.writeUInt32LE(strtab.add(s.name), p);
      symtab[p + 4] = (s.bind << 4) | (s.type & 0xf);
      symtab[p + 5] = s.other ?? 0;
      symtab.writeUInt16LE(s.section === undefined ? 0 : secIndex(s.section), p + 6);
      symtab.writeBigUInt64LE(s.value ?? 0n, p + 8);
      symtab.writeBigUInt64LE(s.size ?? 0n, p + 16);
    });

    interface Header {
      name: number;
      type: number;
      flags: bigint;
      data?: Buffer;
      size: number;
      link: number;
      info: number;
      addralign: number;
      entsize: number;
    }
    const headers: Header[] = [{ name: 0, type: 0, flags: 0n, size: 0, link: 0, info: 0, addralign: 0, entsize: 0 }];
    for (const s of this.sections) {
      headers.push({
        name: shstrtab.add(s.name),
        type: s.type,
        flags: BigInt(s.flags),
        ...(s.data ? { data: s.data } : {}),
        size: s.data?.length ?? s.size ?? 0,
        link: 0,
        info: 0,
        addralign: s.addralign,
        entsize: s.entsize ?? 0,
      });
    }
    for (const { s, id } of relaOf) {
      const rela = Buffer.alloc(24 * s.relocs.length);
      [...s.relocs]
        .sort((a, b) => a.offset - b.offset)
        .forEach((r, i) => {
          rela.writeBigUInt64LE(BigInt(r.offset), 24 * i);
          rela.writeBigUInt64LE((BigInt(indexOf.get(r.symbol)!) << 32n) | BigInt(r.type), 24 * i + 8);
          rela.writeBigInt64LE(r.addend, 24 * i + 16);
        });
      headers.push({
        name: shstrtab.add(`.rela${s.name}`),
        type: SHT_RELA,
        flags: BigInt(SHF_INFO_LINK),
        data: rela,
        size: rela.length,
        link: symtabIndex,
        info: secIndex(id),
        addralign: 8,
        entsize: 24,
      });
    }
    const strtabName = shstrtab.add('.strtab');
    headers.push({
      name: shstrtab.add('.symtab'),
      type: SHT_SYMTAB,
      flags: 0n,
      data: symtab,
      size: symtab.length,
      link: symtabIndex + 1,
      info: firstGlobal,
      addralign: 8,
      entsize: 24,
    });
    const strData = strtab.bytes();
    headers.push({
      name: strtabName,
      type: SHT_STRTAB,
      flags: 0n,
      data: strData,
      size: strData.length,
      link: 0,
      info: 0,
      addralign: 1,
      entsize: 0,
    });
    const shstrName = shstrtab.add('.shstrtab');
    const shstrData = shstrtab.bytes();
    headers.push({
      name: shstrName,
      type: SHT_STRTAB,
      flags: 0n,
      data: shstrData,
      size: shstrData.length,
      link: 0,
      info: 0,
      addralign: 1,
      entsize: 0,
    });

    const parts: Buffer[] = [];
    let at = 64;
    const offsets: number[] = [0];
    for (const h of headers.slice(1)) {
      const pad = h.addralign > 1 ? (h.addralign - (at % h.addralign)) % h.addralign : 0;
      if (pad) parts.push(Buffer.alloc(pad));
      at += pad;
      offsets.push(at);
      if (h.data && h.type !== SHT_NOBITS) {
        parts.push(h.data);
        at += h.data.length;
      }
    }
    const shoffPad = (8 - (at % 8)) % 8;
    parts.push(Buffer.alloc(shoffPad));
    at += shoffPad;
    const shoff = at;
    const shdrs = Buffer.alloc(64 * headers.length);
    headers.forEach((h, i) => {
      const p = 64 * i;
      shdrs.writeUInt32LE(h.name, p);
      shdrs.writeUInt32LE(h.type, p + 4);
      shdrs.writeBigUInt64LE(h.flags, p + 8);
      shdrs.writeBigUInt64LE(0n, p + 16);
      shdrs.writeBigUInt64LE(BigInt(i === 0 ? 0 : offsets[i]!), p + 24);
      shdrs.writeBigUInt64LE(BigInt(h.size), p + 32);
      shdrs.writeUInt32LE(h.link, p + 40);
      shdrs.writeUInt32LE(h.info, p + 44);
      shdrs.writeBigUInt64LE(BigInt(h.addralign), p + 48);
      shdrs.writeBigUInt64LE(BigInt(h.entsize), p + 56);
    });
    const ehdr = Buffer.alloc(64);
    Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(ehdr, 0);
    ehdr.writeUInt16LE(1, 16); // ET_REL
    ehdr.writeUInt16LE(62, 18); // EM_X86_64
    ehdr.writeUInt32LE(1, 20);
    ehdr.writeBigUInt64LE(BigInt(shoff), 40);
    ehdr.writeUInt16LE(64, 52);
    ehdr.writeUInt16LE(64, 58);
    ehdr.writeUInt16LE(headers.length, 60);
    ehdr.writeUInt16LE(headers.length - 1, 62);
    if (headers.length >= 0xff00)
      throw new KlpgenError(`${headers.length} sections: more than an object without extended numbering holds`);
    return Buffer.concat([ehdr, ...parts, shdrs]);
  }
}

class StringTable {
  private readonly parts: Buffer[] = [Buffer.from([0])];
  private length = 1;
  private readonly seen = new Map<string, number>();

  add(s: string): number {
    if (s === '') return 0;
    const hit = this.seen.get(s);
    if (hit !== undefined) return hit;
    const at = this.length;
    const b = Buffer.from(`${s}\0`, 'utf8');
    this.parts.push(b);
    this.length += b.length;
    this.seen.set(s, at);
    return at;
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}
