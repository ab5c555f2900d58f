import {
  SHF_EXECINSTR,
  SHF_MERGE,
  SHF_STRINGS,
  SHF_WRITE,
  SHN_UNDEF,
  SHT_NOBITS,
  SHT_PROGBITS,
  STB_GLOBAL,
  STB_LOCAL,
  STT_FUNC,
  STT_NOTYPE,
  STT_OBJECT,
  STT_SECTION,
  parseElf,
  relocTypeName,
  type ElfFile,
  type ElfRelocation,
  type ElfSection,
  type ElfSymbol,
} from '../elf/elf64.js';
import { ObjectBuilder, type SymbolRef } from '../elf/build.js';
import { compareCode, foldNumbers, pcRelativeBias, readObjectCode, type ObjectCode } from '../analyze/objdiff.js';
import { isCompilerLocal, isNumberedLocal, isPieceOf } from '../gcc/names.js';

/**
 * The replaced functions taken from the patched TU's own object (after objtool, as Kbuild
 * leaves it), as kpatch-build's create-diff-object and objtool's `klp diff` take them from
 * their builds: the bytes, every relocation, and their entries in the kernel's special
 * sections (ORC, jump labels, static calls, exception and bug tables, alternatives, return
 * and retpoline sites, mcount). Nothing is compiled again, so the module's code is the
 * patched build's by construction. Every relocation is resolved one of these ways:
 *  - code the module carries (the replaced functions, their `.cold`/`.part` pieces, compiler
 *    clones they call, functions the running kernel has not or whose code changed);
 *  - the running kernel's symbol: an undefined symbol by name for a global one (exported, or
 *    a KLP relocation later), `klpgen_addr_NAME` for a local one (a KLP relocation with the
 *    sympos of our TU's instance);
 *  - data the module carries: strings and other read-only data, static locals (tied to the
 *    kernel's instance afterwards, or fresh), special-section entries.
 * What cannot be carried safely is a refusal, never a silent drop.
 */
export interface ExtractInput {
  /** The patched TU's object after objtool (-ffunction-sections -fdata-sections). */
  object: Buffer;
  source: string;
  /** The original build of the TU: what the running kernel has. */
  original: ObjectCode;
  /** Functions whose code differs between the original and patched builds. */
  codeChanged: ReadonlySet<string>;
  /** The replaced functions and their names in the module. */
  installs: readonly { symbol: string; as: string }[];
  /**
   * Functions new in the fix that another TU's new code of the same fix calls: carried under
   * their own names and global in the module, so that TU's object links to them.
   */
  provides?: readonly string[];
  /** Built into a module: THIS_MODULE (`__this_module`) is the patched module's. */
  isModule: boolean;
  /** Name a module TU's `__this_module` becomes (a KLP relocation to the patched module's). */
  thisModule: string;
  /** Prefix of a kernel-local symbol's undefined name. */
  kernelPrefix: string;
}

export type ExtractRefusalKind =
  | 'not-in-patched-build'
  | 'shared-section'
  | 'new-data'
  | 'unknown-relocation'
  | 'unknown-section'
  | 'special-section-layout'
  | 'bad-reference'
  | 'no-objtool';

export interface ExtractRefusal {
  kind: ExtractRefusalKind;
  /** The function (or section) it concerns. */
  subject: string;
  reason: string;
}

export interface CarriedFunction {
  /** Name in the patched build. */
  name: string;
  /** Name in the module. */
  as: string;
  why: string;
}

export interface KernelReference {
  /** The undefined symbol in the module. */
  name: string;
  /** The running kernel's symbol it stands for. */
  target: string;
  kind: 'function' | 'data';
}

export interface Extracted {
  object: Buffer;
  functions: CarriedFunction[];
  /** Local symbols of the TU reached in the running kernel (`klpgen_addr_NAME`). */
  kernelReferences: KernelReference[];
  /** Data the module carries: `name (section): why`. */
  data: string[];
  /** Special-section entries carried, by section. */
  specialEntries: Record<string, number>;
}

export type ExtractResult = ({ ok: true } & Extracted) | { ok: false; refusal: ExtractRefusal };

/**
 * The kernel's tables of code places, with their entry size and where in an entry the
 * relocation to the code place is. An entry is carried when that place is in carried code.
 */
export const SPECIAL_SECTIONS: ReadonlyMap<
  string,
  { entsize: number; anchor: number; parallel?: { name: string; entsize: number } }
> = new Map([
  ['__mcount_loc', { entsize: 8, anchor: 0 }],
  ['__jump_table', { entsize: 16, anchor: 0 }],
  ['__bug_table', { entsize: 12, anchor: 0 }],
  ['__ex_table', { entsize: 12, anchor: 0 }],
  ['.altinstructions', { entsize: 12, anchor: 0 }],
  ['.parainstructions', { entsize: 16, anchor: 0 }],
  ['.static_call_sites', { entsize: 8, anchor: 0 }],
  ['.retpoline_sites', { entsize: 4, anchor: 0 }],
  ['.return_sites', { entsize: 4, anchor: 0 }],
  ['.call_sites', { entsize: 4, anchor: 0 }],
  ['.ibt_endbr_seal', { entsize: 4, anchor: 0 }],
  ['.smp_locks', { entsize: 4, anchor: 0 }],
  ['.orc_unwind_ip', { entsize: 4, anchor: 0, parallel: { name: '.orc_unwind', entsize: 6 } }],
]);

/** Code sections of pieces that belong to the functions that jump to them (no symbols of their own). */
const AUX_CODE = new Set(['.altinstr_replacement', '.altinstr_aux']);

/** Sections whose references to carried code need nothing of the module. */
const IGNORED_REFERRERS =
  /^(\.debug|\.discard|\.eh_frame|\.comment|\.note|___ksymtab|__ksymtab|\.init\.|\.exit\.|\.initcall|\.ref\.|\.export_symbol)/;

const R_X86_64_NONE = 0;

const KNOWN_RELOCATIONS = new Set([
  'R_X86_64_64',
  'R_X86_64_PC32',
  'R_X86_64_PLT32',
  'R_X86_64_32',
  'R_X86_64_32S',
  'R_X86_64_PC64',
]);

class Refused extends Error {
  constructor(readonly refusal: ExtractRefusal) {
    super(refusal.reason);
  }
}

function refuse(kind: ExtractRefusalKind, subject: string, reason: string): never {
  throw new Refused({ kind, subject, reason });
}

/** A rel32 field right after a call (e8), jmp (e9) or conditional jump (0f 8x) opcode. */
function isBranchField(code: Buffer, offset: number): boolean {
  const op = code[offset - 1];
  if (op === 0xe8 || op === 0xe9) return true;
  return code[offset - 2] === 0x0f && op !== undefined && (op & 0xf0) === 0x80;
}

export function extractFunctions(input: ExtractInput): ExtractResult {
  try {
    return { ok: true, ...new Extraction(input).run() };
  } catch (e) {
    if (e instanceof Refused) return { ok: false, refusal: e.refusal };
    throw e;
  }
}

class Extraction {
  private readonly elf: ElfFile;
  private readonly symbols: ElfSymbol[];
  private readonly relocs = new Map<number, readonly ElfRelocation[]>();
  private readonly functionsIn = new Map<number, ElfSymbol[]>();
  private readonly objectsIn = new Map<number, ElfSymbol[]>();
  private readonly functionByName = new Map<string, ElfSymbol>();
  private readonly out = new ObjectBuilder();
  /** Old section index → new section id, for sections copied whole (code, strings, anonymous data). */
  private readonly sectionCopies = new Map<number, number>();
  /** Old object symbol → its copy (a section of its own, the object at offset 0). */
  private readonly objectCopies = new Map<ElfSymbol, { section: number; symbol: SymbolRef }>();
  /** Old function symbol → its symbol in the module. */
  private readonly functionSymbols = new Map<ElfSymbol, SymbolRef>();
  private readonly carried = new Map<string, CarriedFunction>();
  private readonly externals = new Map<string, SymbolRef>();
  private readonly kernelRefs = new Map<string, KernelReference>();
  private readonly dataNotes: string[] = [];
  /** Work: sections whose relocations are still to be resolved (old index, new id, byte range). */
  private readonly pending: { old: number; id: number; from: number; to: number; delta: number }[] = [];
  /** Pieces of aux code sections referenced from carried code: old section → start offsets. */
  private readonly auxPieces = new Map<number, Set<number>>();
  private readonly installAs: Map<string, string>;
  private readonly original: ObjectCode;
  private readonly originalData = new Map<string, string[]>();
  private patchedCode: ObjectCode | undefined;

  constructor(private readonly input: ExtractInput) {
    this.elf = parseElf(input.object, input.source);
    this.symbols = this.elf.symbols();
    this.installAs = new Map(input.installs.map((i) => [i.symbol, i.as]));
    this.original = input.original;
    for (const rs of this.elf.relocations()) if (rs.target) this.relocs.set(rs.target.index, rs.entries);
    for (const s of this.symbols) {
      if (s.shndx === SHN_UNDEF || s.shndx >= 0xff00) continue;
      const into = s.type === STT_FUNC ? this.functionsIn : s.type === STT_OBJECT ? this.objectsIn : undefined;
      if (!into) continue;
      const list = into.get(s.shndx);
      if (list) list.push(s);
      else into.set(s.shndx, [s]);
      if (s.type === STT_FUNC && !this.functionByName.has(s.name)) this.functionByName.set(s.name, s);
    }
    for (const name of this.original.data.keys()) {
      const k = foldNumbers(name);
      this.originalData.set(k, [...(this.originalData.get(k) ?? []), name]);
    }
  }

  run(): Extracted {
    for (const i of this.input.installs) this.carryFunction(i.symbol, 'replaced');
    for (const name of this.input.provides ?? [])
      this.carryFunction(name, 'new in the fix, called by new code of another file of the fix');
    this.drain();
    const closed = this.carried.size;
    const specialEntries = this.carrySpecialSections();
    this.drain();
    this.carryAuxRelocations();
    // A function reached only from a table entry or an alternative has had no entries of its own carried.
    if (this.carried.size !== closed) {
      const late = [...this.carried.keys()].slice(closed);
      refuse(
        'bad-reference',
        late[0] as string,
        `${late.join(', ')} reached only from special-section entries or alternatives`,
      );
    }
    this.checkReferrers();
    this.out.addSection({ name: '.note.GNU-stack', type: SHT_PROGBITS, flags: 0, addralign: 1, data: Buffer.alloc(0) });
    return {
      object: this.out.serialize(),
      functions: [...this.carried.values()],
      kernelReferences: [...this.kernelRefs.values()].sort((a, b) => a.name.localeCompare(b.name)),
      data: this.dataNotes,
      specialEntries,
    };
  }

  // ---- what is carried ----

  /** Why the module must carry function `f` that carried code references; undefined: the kernel's serves. */
  private mustCarry(f: ElfSymbol): string | undefined {
    if (this.installAs.has(f.name)) return 'replaced';
    const owner = [...this.carried.keys()].find((c) => isPieceOf(f.name, c));
    if (owner) return `piece of ${owner}`;
    if (isCompilerLocal(f.name) && f.bind === STB_LOCAL) return 'compiler clone or piece: a private calling convention';
    if (!this.original.functions.has(f.name)) return 'not in the running kernel';
    if (this.input.codeChanged.has(f.name)) return 'its code changed (covered by the replaced callers)';
    return undefined;
  }

  private carryFunction(name: string, why: string): SymbolRef {
    const f = this.functionByName.get(name);
    if (!f) refuse('not-in-patched-build', name, `${name} has no body in the patched build`);
    const existing = this.functionSymbols.get(f);
    if (existing !== undefined) return existing;
    const sec = this.elf.sections[f.shndx] as ElfSection;
    const others = (this.functionsIn.get(f.shndx) ?? []).filter((g) => g.value !== f.value || g.size !== f.size);
    if (others.length) {
      refuse(
        'shared-section',
        name,
        `${name} shares section ${sec.name} with ${others
          .map((g) => g.name)
          .slice(0, 3)
          .join(', ')}: calls between them may have no relocation`,
      );
    }
    const id = this.copySection(sec, this.sectionNameFor(sec.name));
    // The function and its aliases (identical code folding) at the same place.
    for (const g of this.functionsIn.get(f.shndx) ?? []) {
      const as = this.moduleName(g.name);
      const global = this.installAs.has(g.name) || (this.input.provides ?? []).includes(g.name);
      const ref = this.out.addSymbol({
        name: as,
        bind: global ? STB_GLOBAL : STB_LOCAL,
        type: STT_FUNC,
        section: id,
        value: g.value,
        size: BigInt(g.size),
      });
      this.functionSymbols.set(g, ref);
      this.carried.set(g.name, { name: g.name, as, why: g === f ? why : `alias of ${f.name}` });
    }
    this.pending.push({ old: sec.index, id, from: 0, to: sec.size, delta: 0 });
    return this.functionSymbols.get(f) as SymbolRef;
  }

  /** `foo` → its install name; `foo.cold` of an installed foo → `livepatch_foo.cold`. */
  private moduleName(name: string): string {
    const as = this.installAs.get(name);
    if (as) return as;
    for (const [symbol, a] of this.installAs) if (isPieceOf(name, symbol)) return `${a}${name.slice(symbol.length)}`;
    return name;
  }

  private sectionNameFor(section: string): string {
    for (const prefix of ['.text.unlikely.', '.text.hot.', '.text.']) {
      if (section.startsWith(prefix)) {
        const rest = section.slice(prefix.length);
        // `.text.foo` of foo, `.text.unlikely.foo` of foo.cold
        const owner = this.installAs.has(rest) ? rest : undefined;
        if (owner) return `${prefix}${this.installAs.get(owner)}`;
        return section;
      }
    }
    return section;
  }

  private copySection(sec: ElfSection, name = sec.name): number {
    const hit = this.sectionCopies.get(sec.index);
    if (hit !== undefined) return hit;
    const id = this.out.addSection(
      sec.type === SHT_NOBITS
        ? { name, type: sec.type, flags: sec.flags, addralign: sec.addralign, entsize: sec.entsize, size: sec.size }
        : {
            name,
            type: sec.type,
            flags: sec.flags,
            addralign: sec.addralign,
            entsize: sec.entsize,
            data: Buffer.from(this.elf.sectionData(sec)),
          },
    );
    this.sectionCopies.set(sec.index, id);
    return id;
  }

  private copyObject(o: ElfSymbol, why: string, global = false): { section: number; symbol: SymbolRef } {
    const hit = this.objectCopies.get(o);
    if (hit) return hit;
    const sec = this.elf.sections[o.shndx] as ElfSection;
    const start = Number(o.value);
    const id = this.out.addSection(
      sec.type === SHT_NOBITS
        ? { name: sec.name, type: sec.type, flags: sec.flags, addralign: sec.addralign, size: o.size }
        : {
            name: sec.name,
            type: sec.type,
            flags: sec.flags,
            addralign: sec.addralign,
            data: Buffer.from(this.elf.sectionData(sec).subarray(start, start + o.size)),
          },
    );
    const symbol = this.out.addSymbol({
      name: o.name,
      bind: global ? STB_GLOBAL : STB_LOCAL,
      type: STT_OBJECT,
      section: id,
      value: 0n,
      size: BigInt(o.size),
    });
    const copy = { section: id, symbol };
    this.objectCopies.set(o, copy);
    this.dataNotes.push(`${o.name} (${sec.name}): ${why}`);
    if (sec.type !== SHT_NOBITS)
      this.pending.push({ old: sec.index, id, from: start, to: start + o.size, delta: start });
    return copy;
  }

  private readonly labels = new Map<ElfSymbol, SymbolRef>();

  /** A local symbol of a copied section, at the same place in the copy. */
  private label(s: ElfSymbol, section: number): SymbolRef {
    const hit = this.labels.get(s);
    if (hit !== undefined) return hit;
    const ref = this.out.addSymbol({
      name: s.name,
      bind: STB_LOCAL,
      type: s.type,
      section,
      value: s.value,
      size: BigInt(s.size),
    });
    this.labels.set(s, ref);
    return ref;
  }

  private external(name: string): SymbolRef {
    const hit = this.externals.get(name);
    if (hit !== undefined) return hit;
    const ref = this.out.addSymbol({ name, bind: STB_GLOBAL, type: STT_NOTYPE });
    this.externals.set(name, ref);
    return ref;
  }

  private kernelLocal(target: string, kind: KernelReference['kind']): SymbolRef {
    const name = `${this.input.kernelPrefix}${target}`;
    this.kernelRefs.set(name, { name, target, kind });
    return this.external(name);
  }

  // ---- relocations ----

  private drain(): void {
    for (let job = this.pending.shift(); job; job = this.pending.shift()) {
      const sec = this.elf.sections[job.old] as ElfSection;
      const code = (sec.flags & SHF_EXECINSTR) !== 0 ? this.elf.sectionData(sec) : undefined;
      for (const r of this.relocs.get(job.old) ?? []) {
        const off = Number(r.offset);
        if (off < job.from || off >= job.to) continue;
        // objtool's mark on a jump it made a nop (a jump label's default): nothing to apply.
        if (r.type === R_X86_64_NONE && code !== undefined) continue;
        if (code !== undefined && !KNOWN_RELOCATIONS.has(relocTypeName(r.type))) {
          // Named by the function it is in: that is what falls back to the emitted C.
          const fn = (this.functionsIn.get(job.old) ?? []).find(
            (g) => g.value <= r.offset && r.offset < g.value + BigInt(g.size),
          )?.name;
          refuse(
            'unknown-relocation',
            fn ?? sec.name,
            `relocation type ${relocTypeName(r.type)} in ${fn ?? sec.name} at ${sec.name}+0x${r.offset.toString(16)}`,
          );
        }
        const { symbol, addend } = this.resolve(r, code, sec.name, false);
        this.out.addReloc(job.id, { offset: off - job.delta, type: r.type, symbol, addend });
      }
    }
  }

  /** Where a relocation in `code` (undefined: in data) points, as a module symbol and addend. */
  private resolve(
    r: ElfRelocation,
    code: Buffer | undefined,
    where: string,
    special: boolean,
  ): { symbol: SymbolRef; addend: bigint } {
    const type = relocTypeName(r.type);
    if (!KNOWN_RELOCATIONS.has(type))
      refuse('unknown-relocation', where, `relocation type ${type} at ${where}+0x${r.offset.toString(16)}`);
    const s = r.symbol;
    if (!s) refuse('bad-reference', where, `relocation without a symbol at ${where}+0x${r.offset.toString(16)}`);
    if (s.shndx === SHN_UNDEF) {
      const name = this.input.isModule && s.name === '__this_module' ? this.input.thisModule : s.name;
      return { symbol: this.external(name), addend: r.addend };
    }
    if (s.shndx >= 0xff00)
      refuse(
        'bad-reference',
        where,
        `relocation against absolute symbol ${s.name} at ${where}+0x${r.offset.toString(16)}`,
      );
    const sec = this.elf.sections[s.shndx] as ElfSection;
    const viaSection = s.type === STT_SECTION || (s.bind === STB_LOCAL && s.type === STT_NOTYPE);
    // PC-relative fields in code are biased by the distance to the instruction's end.
    const off = Number(r.offset);
    const bias =
      code && (type === 'R_X86_64_PC32' || type === 'R_X86_64_PLT32')
        ? isBranchField(code, off)
          ? 4n
          : pcRelativeBias(code, off)
        : 0n;
    if ((sec.flags & SHF_EXECINSTR) !== 0)
      return this.resolveCode(
        s,
        sec,
        viaSection,
        r.addend,
        bias,
        special || (code ? isBranchField(code, off) : false),
        where,
      );
    return this.resolveData(s, sec, viaSection, r.addend, bias, where);
  }

  /** `intoCode`: a call or jump, or a table entry of a code place (mcount, ORC): the module's code, never the kernel's address. */
  private resolveCode(
    s: ElfSymbol,
    sec: ElfSection,
    viaSection: boolean,
    addend: bigint,
    bias: bigint | undefined,
    intoCode: boolean,
    where: string,
  ): { symbol: SymbolRef; addend: bigint } {
    if (AUX_CODE.has(sec.name)) {
      // Alternative replacements and static_cpu_has() tests: copied whole, their relocations
      // resolved only for the pieces carried code uses.
      const id = this.copySection(sec);
      const at = s.value + addend + (bias ?? 4n);
      const pieces = this.auxPieces.get(sec.index) ?? new Set<number>();
      pieces.add(Number(at));
      this.auxPieces.set(sec.index, pieces);
      return {
        symbol: viaSection
          ? this.out.sectionSymbol(id)
          : refuse('bad-reference', where, `symbol ${s.name} in ${sec.name}`),
        addend: viaSection ? s.value + addend : addend,
      };
    }
    const f = s.type === STT_FUNC ? s : this.functionAt(sec, s.value + addend, bias, where);
    const inFunction = s.type === STT_FUNC ? addend : s.value + addend - f.value;
    const why = this.mustCarry(f);
    // A carried function that the running kernel has: an address taken of it (not a call or
    // jump) is the kernel's, which outlives the livepatch and reaches the new code through ftrace.
    const kernelHasIt = this.original.functions.has(f.name) && this.installAs.has(f.name);
    if (why && !(kernelHasIt && !intoCode && inFunction <= 0n && inFunction >= -8n)) {
      const ref = this.carryFunction(f.name, why);
      return viaSection
        ? { symbol: this.out.sectionSymbol(this.sectionCopies.get(f.shndx) as number), addend: s.value + addend }
        : { symbol: ref, addend };
    }
    if (f.bind === STB_LOCAL) return { symbol: this.kernelLocal(f.name, 'function'), addend: inFunction };
    return { symbol: this.external(f.name), addend: inFunction };
  }

  private functionAt(sec: ElfSection, at: bigint, bias: bigint | undefined, where: string): ElfSymbol {
    const list = this.functionsIn.get(sec.index) ?? [];
    if (list.length > 0 && list.every((g) => g.value === list[0]!.value)) return list[0] as ElfSymbol;
    for (const b of bias !== undefined ? [bias] : [0n, 4n, 5n, 6n, 8n]) {
      const hits = list.filter((g) => g.value <= at + b && at + b <= g.value + BigInt(g.size));
      if (hits.length >= 1 && hits.every((h) => h.value === hits[0]!.value)) return hits[0] as ElfSymbol;
    }
    return refuse('bad-reference', where, `a reference into ${sec.name}+0x${at.toString(16)} reaches no function`);
  }

  private resolveData(
    s: ElfSymbol,
    sec: ElfSection,
    viaSection: boolean,
    addend: bigint,
    bias: bigint | undefined,
    where: string,
  ): { symbol: SymbolRef; addend: bigint } {
    const objects = this.objectsIn.get(sec.index) ?? [];
    const strings = (sec.flags & SHF_MERGE) !== 0;
    if (objects.length === 0 || (strings && s.type !== STT_OBJECT)) {
      // Strings and constants (merged by the linker), anonymous data: copied whole, offsets kept.
      const id = this.copySection(sec);
      if (!this.dataNotes.some((n) => n.startsWith(`${sec.name}:`)))
        this.dataNotes.push(
          `${sec.name}: ${strings ? (sec.flags & SHF_STRINGS ? 'strings' : 'constants') : 'anonymous data'}, copied`,
        );
      // gas refers to merged constants through a local label (.LC0): so does the copy, the linker merges by it.
      if (s.type !== STT_SECTION) return { symbol: this.label(s, id), addend };
      return { symbol: this.out.sectionSymbol(id), addend };
    }
    const o = s.type === STT_OBJECT ? s : this.objectAt(objects, s.value + addend, bias, sec, where);
    const inObject = s.type === STT_OBJECT ? addend : s.value + addend - o.value;
    const place = this.placeData(o, sec, where);
    if (place.copy)
      return viaSection
        ? { symbol: this.out.sectionSymbol(place.copy.section), addend: inObject }
        : { symbol: place.copy.symbol, addend };
    return { symbol: place.kernel as SymbolRef, addend: inObject };
  }

  private objectAt(
    objects: ElfSymbol[],
    at: bigint,
    bias: bigint | undefined,
    sec: ElfSection,
    where: string,
  ): ElfSymbol {
    if (objects.length === 1 && Number(objects[0]!.value) === 0 && objects[0]!.size >= sec.size)
      return objects[0] as ElfSymbol;
    for (const b of bias !== undefined ? [bias] : [0n, 4n, 5n, 6n, 8n]) {
      const hits = objects.filter((x) => x.value <= at + b && at + b < x.value + BigInt(Math.max(1, x.size)));
      if (hits.length === 1) return hits[0] as ElfSymbol;
    }
    for (const b of bias !== undefined ? [bias] : [0n, 4n, 5n, 6n, 8n]) {
      const ends = objects.filter((x) => x.size > 0 && x.value + BigInt(x.size) === at + b);
      if (ends.length === 1) return ends[0] as ElfSymbol;
    }
    return refuse('bad-reference', where, `a reference into ${sec.name}+0x${at.toString(16)} reaches no variable`);
  }

  /** A variable the new code uses: the module's copy, or the running kernel's. */
  private placeData(
    o: ElfSymbol,
    sec: ElfSection,
    where: string,
  ): { copy?: { section: number; symbol: SymbolRef }; kernel?: SymbolRef } {
    const writable = (sec.flags & SHF_WRITE) !== 0;
    const numbered = isNumberedLocal(o.name);
    const inOriginal = this.original.data.get(o.name);
    if (!writable) {
      // Constants hold no state; one with pointers that the kernel has unchanged stays the kernel's
      // (its address may be stored in kernel data that outlives the livepatch).
      this.patchedCode ??= readObjectCode(this.elf);
      const patched = this.patchedCode.data.get(o.name);
      if (inOriginal && patched && patched.relocs.length > 0 && !compareCode(inOriginal, patched) && !numbered) {
        return { kernel: o.bind === STB_LOCAL ? this.kernelLocal(o.name, 'data') : this.external(o.name) };
      }
      return { copy: this.copyObject(o, 'read-only data, copied') };
    }
    // A function's static local (`count.3`), or a table the kernel registers per module
    // (`__dyndbg` descriptors): carried here; the create stage ties static locals to the kernel's.
    if (numbered || !sec.name.startsWith('.'))
      return { copy: this.copyObject(o, numbered ? 'static local' : `entry of ${sec.name}`) };
    // New in the fix (the original object, which is the running kernel's, has none of that
    // name): the module's own, with the fix's initializer; nothing of the kernel to share.
    if (!inOriginal && !this.originalData.get(foldNumbers(o.name))?.length)
      return {
        copy: this.copyObject(o, "new in the fix: the module's own, initialised as the fix says", o.bind !== STB_LOCAL),
      };
    return { kernel: o.bind === STB_LOCAL ? this.kernelLocal(o.name, 'data') : this.external(o.name) };
  }

  // ---- special sections ----

  /** The carried function section and offset a location in old section `shndx` is, if carried. */
  private carriedPlace(shndx: number, at: bigint): boolean {
    const id = this.sectionCopies.get(shndx);
    if (id === undefined) return false;
    const sec = this.elf.sections[shndx] as ElfSection;
    if (AUX_CODE.has(sec.name)) return this.auxPieceHas(shndx, Number(at));
    return (sec.flags & SHF_EXECINSTR) !== 0 && at >= 0n && at <= BigInt(sec.size);
  }

  private carrySpecialSections(): Record<string, number> {
    const counts: Record<string, number> = {};
    // Alternatives first: the replacement pieces they carry may hold entries of the other tables.
    const order = [...this.elf.sections].sort(
      (a, b) => Number(b.name === '.altinstructions') - Number(a.name === '.altinstructions') || a.index - b.index,
    );
    for (const sec of order) {
      const spec = SPECIAL_SECTIONS.get(sec.name);
      if (!spec) continue;
      const relocs = [...(this.relocs.get(sec.index) ?? [])].sort((a, b) => Number(a.offset - b.offset));
      if (sec.size % spec.entsize !== 0)
        refuse(
          'special-section-layout',
          sec.name,
          `${sec.name} is ${sec.size} bytes, not a whole number of ${spec.entsize}-byte entries`,
        );
      const anchors = new Map<number, ElfRelocation>();
      for (const r of relocs) if (Number(r.offset) % spec.entsize === spec.anchor) anchors.set(Number(r.offset), r);
      const selected: number[] = [];
      for (let at = 0; at < sec.size; at += spec.entsize) {
        const a = anchors.get(at + spec.anchor);
        if (!a || !a.symbol)
          refuse(
            'special-section-layout',
            sec.name,
            `${sec.name} entry at +0x${at.toString(16)} has no relocation to its code place`,
          );
        if (a.symbol.shndx === SHN_UNDEF || a.symbol.shndx >= 0xff00) continue;
        if (this.carriedPlace(a.symbol.shndx, a.symbol.value + a.addend)) selected.push(at);
      }
      if (selected.length === 0) continue;
      counts[sec.name] = selected.length;
      const data = Buffer.concat(selected.map((at) => this.elf.sectionData(sec).subarray(at, at + spec.entsize)));
      const id = this.out.addSection({
        name: sec.name,
        type: sec.type,
        flags: sec.flags,
        addralign: sec.addralign,
        entsize: sec.entsize,
        data,
      });
      selected.forEach((at, i) => {
        for (const r of relocs) {
          const off = Number(r.offset);
          if (off < at || off >= at + spec.entsize) continue;
          const { symbol, addend } = this.resolve(r, undefined, sec.name, true);
          this.out.addReloc(id, { offset: i * spec.entsize + (off - at), type: r.type, symbol, addend });
        }
      });
      if (spec.parallel) {
        const other = this.elf.sections.find((s) => s.name === spec.parallel!.name);
        if (!other || other.size / spec.parallel.entsize !== sec.size / spec.entsize) {
          refuse(
            'special-section-layout',
            sec.name,
            `${spec.parallel.name} does not have one entry per ${sec.name} entry`,
          );
        }
        const pe = spec.parallel.entsize;
        const pdata = Buffer.concat(
          selected.map((at) =>
            this.elf.sectionData(other).subarray((at / spec.entsize) * pe, (at / spec.entsize + 1) * pe),
          ),
        );
        this.out.addSection({
          name: other.name,
          type: other.type,
          flags: other.flags,
          addralign: other.addralign,
          entsize: other.entsize,
          data: pdata,
        });
        counts[other.name] = selected.length;
      }
    }
    return counts;
  }

  private auxPieceHas(shndx: number, at: number): boolean {
    const starts = [...(this.auxPieces.get(shndx) ?? [])];
    const all = this.auxStarts(shndx);
    // The piece holding `at` starts at the greatest start not after it.
    const start = all.filter((s) => s <= at).pop();
    return start !== undefined && starts.includes(start);
  }

  /** Every offset of an aux code section that something refers to: where its pieces start. */
  private readonly auxStartsCache = new Map<number, number[]>();

  private auxStarts(shndx: number): number[] {
    const hit = this.auxStartsCache.get(shndx);
    if (hit) return hit;
    const starts = this.findAuxStarts(shndx);
    this.auxStartsCache.set(shndx, starts);
    return starts;
  }

  private findAuxStarts(shndx: number): number[] {
    const out = new Set<number>();
    for (const [from, rs] of this.relocs) {
      const fsec = this.elf.sections[from] as ElfSection;
      if (fsec.name.startsWith('.debug')) continue;
      const code = (fsec.flags & SHF_EXECINSTR) !== 0 ? this.elf.sectionData(fsec) : undefined;
      for (const r of rs) {
        if (!r.symbol || r.symbol.shndx !== shndx || from === shndx) continue;
        const off = Number(r.offset);
        const type = relocTypeName(r.type);
        const bias =
          code && (type === 'R_X86_64_PC32' || type === 'R_X86_64_PLT32')
            ? isBranchField(code, off)
              ? 4n
              : (pcRelativeBias(code, off) ?? 4n)
            : 0n;
        out.add(Number(r.symbol.value + r.addend + bias));
      }
    }
    return [...out].sort((a, b) => a - b);
  }

  /** Relocations inside the aux code pieces carried code uses (their jumps back, their operands). */
  private carryAuxRelocations(): void {
    for (const [shndx, used] of this.auxPieces) {
      const id = this.sectionCopies.get(shndx) as number;
      const sec = this.elf.sections[shndx] as ElfSection;
      const starts = this.auxStarts(shndx);
      for (const start of [...used].sort((a, b) => a - b)) {
        const next = starts.find((s) => s > start) ?? sec.size;
        this.pending.push({ old: shndx, id, from: start, to: next, delta: 0 });
      }
      this.drain();
      // What the pieces' relocations pulled in must be complete too.
    }
    if (this.pending.length) this.drain();
  }

  /**
   * Every section that refers to carried code is handled: the special sections above, code
   * and data of the kernel (their references reach the new code through ftrace), or sections
   * without effect at run time. Anything else could hold a table the kernel reads: refused.
   */
  private checkReferrers(): void {
    const carriedCode = new Set(
      [...this.sectionCopies.keys()].filter((i) => ((this.elf.sections[i] as ElfSection).flags & SHF_EXECINSTR) !== 0),
    );
    for (const [from, rs] of this.relocs) {
      const sec = this.elf.sections[from] as ElfSection;
      if (
        SPECIAL_SECTIONS.has(sec.name) ||
        IGNORED_REFERRERS.test(sec.name) ||
        (sec.flags & SHF_EXECINSTR) !== 0 ||
        this.objectsIn.has(from)
      )
        continue;
      if (this.sectionCopies.has(from)) continue;
      const hit = rs.find((r) => r.symbol && carriedCode.has(r.symbol.shndx));
      if (hit) {
        const fn =
          [...this.carried.values()].find((c) => this.functionByName.get(c.name)?.shndx === hit.symbol!.shndx)?.name ??
          hit.symbol!.name;
        refuse(
          'unknown-section',
          sec.name,
          `section ${sec.name} holds entries for ${fn}, which klpgen does not know how to carry`,
        );
      }
    }
  }
}
