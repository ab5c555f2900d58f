import {
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_MERGE,
  SHF_STRINGS,
  SHN_UNDEF,
  STB_GLOBAL,
  STB_LOCAL,
  STB_WEAK,
  STT_FUNC,
  STT_OBJECT,
  STT_SECTION,
  relocTypeName,
  type ElfFile,
  type ElfSection,
  type ElfSymbol,
} from '../elf/elf64.js';

/**
 * Per-function comparison of two objects of one translation unit, compiled
 * with -ffunction-sections -fdata-sections: the original (with the patched
 * file's line numbers, see analyze.ts) and the patched one. Code bytes are
 * compared as they are (relocated fields hold zero in RELA objects) and
 * relocations are compared as (offset, type, target, addend), where the
 * target is named so that unrelated layout changes do not show:
 *  - a string literal is its content, not its offset in .rodata.str;
 *  - a section symbol of .text.foo / .data.x / .bss.x / .rodata.x is foo / x;
 *  - numbered local names (static locals `count.3`, clones `f.constprop.2`)
 *    lose their number, which shifts when other functions change.
 */
export interface FunctionCode {
  name: string;
  section: string;
  /** Section index and offset: two names at one place are aliases (ICF). */
  sectionIndex: number;
  offset: number;
  bind: 'local' | 'global' | 'weak';
  size: number;
  bytes: Buffer;
  relocs: NormalizedReloc[];
}

export interface NormalizedReloc {
  offset: number;
  type: string;
  target: string;
  addend: bigint;
  /** The target's own name, numbers kept (`count.3`): which static local, exactly. */
  raw: string;
}

export interface DataObject {
  name: string;
  section: string;
  /** Its offset in that section. */
  offset: number;
  bind: 'local' | 'global' | 'weak';
  size: number;
  bytes: Buffer;
  relocs: NormalizedReloc[];
}

export interface ObjectCode {
  functions: Map<string, FunctionCode>;
  data: Map<string, DataObject>;
  /** Size of each allocated section, by name (tables the kernel collects: `.pci_fixup_*`, `__param`, ...). */
  sectionSizes: Map<string, number>;
}

/**
 * Sections the kernel reads as registration tables, filled by macros at file scope (PCI
 * fixups, module and boot parameters, initcalls, trace events, error injection): an entry
 * added or removed there changes what the kernel does without changing any function, and a
 * livepatch cannot add it to the running kernel's table.
 */
export const REGISTRATION_TABLES =
  /^(\.pci_fixup_\w+|__param|\.init\.setup|\.initcall\w*\.init|\.con_initcall\.init|_ftrace_events|__syscalls_metadata|_error_injection_whitelist|__kprobe_blacklist|\.x86_cpu_dev\.init|\.apicdrivers|__earlycon_table|__\w+_of_table|\.acpi_probe_table)$/;

/** Registration tables whose size differs between two builds, with both sizes. */
export function changedTables(
  orig: ObjectCode,
  patched: ObjectCode,
): { section: string; before: number; after: number }[] {
  const names = new Set(
    [...orig.sectionSizes.keys(), ...patched.sectionSizes.keys()].filter((n) => REGISTRATION_TABLES.test(n)),
  );
  return [...names]
    .sort()
    .map((section) => ({
      section,
      before: orig.sectionSizes.get(section) ?? 0,
      after: patched.sectionSizes.get(section) ?? 0,
    }))
    .filter((t) => t.before !== t.after);
}

/**
 * `count.3` → `count.*`, `f.constprop.2` → `f.constprop.*`, `f.isra.0.cold` →
 * `f.isra.*.cold`, `__UNIQUE_ID_ddebug412` → `__UNIQUE_ID_ddebug*` (__COUNTER__).
 */
export function foldNumbers(name: string): string {
  // __COUNTER__ first: `__UNIQUE_ID_ddebug318.12` → `__UNIQUE_ID_ddebug*.*`.
  return name.replace(/^(__UNIQUE_ID_\w*?)\d+(?=\.|$)/, '$1*').replace(/\.\d+(?=\.|$)/g, '.*');
}

function bindName(b: number): 'local' | 'global' | 'weak' {
  return b === STB_GLOBAL ? 'global' : b === STB_WEAK ? 'weak' : 'local';
}

export const PC_RELATIVE = new Set([
  'R_X86_64_PC32',
  'R_X86_64_PLT32',
  'R_X86_64_GOTPCREL',
  'R_X86_64_GOTPCRELX',
  'R_X86_64_REX_GOTPCRELX',
]);

export function readObjectCode(elf: ElfFile): ObjectCode {
  const symbols = elf.symbols();
  const relocsBySection = new Map<number, ReturnType<ElfFile['relocations']>[number]>();
  for (const rs of elf.relocations()) if (rs.target) relocsBySection.set(rs.target.index, rs);

  const sectionSymbolRaw = (sec: ElfSection): string => {
    const n = sec.name;
    // `.data..read_mostly` & co. are kernel sections holding many variables, not `.data.<name>`.
    const m = /^\.(text|data|bss|rodata)(?:\.unlikely|\.hot|\.startup|\.exit)?\.([^.].*)$/.exec(n);
    if (m && !n.startsWith('.rodata.str') && !n.startsWith('.rodata.cst')) return m[2] as string;
    return `section:${n}`;
  };
  const sectionSymbolName = (sec: ElfSection): string => {
    const raw = sectionSymbolRaw(sec);
    return raw.startsWith('section:') ? raw : foldNumbers(raw);
  };
  const rawName = (sym: ElfSymbol | undefined): string => {
    if (!sym) return '<none>';
    if (sym.type === STT_SECTION) {
      const sec = elf.sections[sym.shndx];
      return sec ? sectionSymbolRaw(sec) : '<bad section>';
    }
    return sym.name;
  };

  const bySection = new Map<number, ElfSymbol[]>();
  for (const x of symbols) {
    if ((x.type !== STT_OBJECT && x.type !== STT_FUNC) || x.shndx === SHN_UNDEF || x.shndx >= 0xff00) continue;
    const list = bySection.get(x.shndx);
    if (list) list.push(x);
    else bySection.set(x.shndx, [x]);
  }
  const symbolCovering = (
    shndx: number,
    type: string,
    addend: bigint,
    bias: bigint | undefined,
  ): ElfSymbol | undefined => {
    const list = bySection.get(shndx) ?? [];
    // PC-relative addends are biased by the distance to the instruction's end.
    const biases = !PC_RELATIVE.has(type) ? [0n] : bias !== undefined ? [bias] : [4n, 5n, 6n, 8n];
    for (const b of biases) {
      const at = addend + b;
      const hits = list.filter((x) => x.value <= at && at < x.value + BigInt(Math.max(1, x.size)));
      if (hits.length === 1) return hits[0];
    }
    // Nothing there: one past an array's end (a loop's bound), `array+size` where it is named.
    for (const b of biases) {
      const ends = list.filter((x) => x.size > 0 && x.value + BigInt(x.size) === addend + b);
      if (ends.length === 1) return ends[0];
    }
    return undefined;
  };

  const targetName = (
    sym: ElfSymbol | undefined,
    type: string,
    addend: bigint,
    bias: bigint | undefined,
  ): { target: string; addend: bigint; exact?: string } => {
    if (!sym) return { target: '<none>', addend };
    if (sym.type === STT_SECTION) {
      const sec = elf.sections[sym.shndx];
      if (!sec) return { target: '<bad section>', addend };
      if ((sec.flags & SHF_MERGE) !== 0 && (sec.flags & SHF_STRINGS) !== 0) {
        const s = stringAt(elf, sec, type, addend);
        if (s) return s;
      }
      const named = sectionSymbolName(sec);
      // `.data.<name>` of -fdata-sections holds <name>; a section the source named itself
      // (`.data.once` of WARN_ONCE) holds many variables, found like those of `.data..x`.
      const holdsItsName = () =>
        (bySection.get(sec.index) ?? []).some((x) => x.name === sectionSymbolRaw(sec) || foldNumbers(x.name) === named);
      if (!named.startsWith('section:') && holdsItsName()) return { target: named, addend };
      // A section holding several variables (.data..read_mostly, .data..percpu): the variable
      // the addend lands in, so layout changes around it do not show.
      const hit = symbolCovering(sec.index, type, addend, bias);
      if (hit)
        return {
          target: hit.bind === STB_LOCAL ? foldNumbers(hit.name) : hit.name,
          addend: addend - hit.value,
          exact: hit.name,
        };
      return { target: named, addend };
    }
    if (sym.shndx === SHN_UNDEF) return { target: sym.name, addend };
    // gas keeps a local label (.LC5) for references into mergeable sections: compare what it labels.
    const labelled =
      sym.bind === STB_LOCAL && sym.type !== STT_OBJECT && sym.type !== STT_FUNC ? elf.sections[sym.shndx] : undefined;
    if (labelled && (labelled.flags & SHF_MERGE) !== 0) {
      if ((labelled.flags & SHF_STRINGS) !== 0) {
        const str = stringAt(elf, labelled, type, addend + sym.value);
        if (str) return str;
      } else if (labelled.entsize > 0) {
        const at = Number(sym.value);
        return {
          target: `const:${elf
            .sectionData(labelled)
            .subarray(at, at + Number(labelled.entsize))
            .toString('hex')}`,
          addend,
        };
      }
    }
    return { target: sym.bind === STB_LOCAL ? foldNumbers(sym.name) : sym.name, addend };
  };

  const collect = (sym: ElfSymbol): { bytes: Buffer; relocs: NormalizedReloc[]; section: string } | undefined => {
    const sec = elf.sections[sym.shndx];
    if (!sec) return undefined;
    const start = Number(sym.value);
    const end = start + sym.size;
    const data = elf.sectionData(sec);
    const bytes = data.length ? data.subarray(start, Math.min(end, data.length)) : Buffer.alloc(sym.size);
    const relocs: NormalizedReloc[] = [];
    const rs = relocsBySection.get(sec.index);
    if (rs) {
      for (const r of rs.entries) {
        const off = Number(r.offset);
        if (off < start || off >= end) continue;
        const type = relocTypeName(r.type);
        const t = targetName(
          r.symbol,
          type,
          r.addend,
          (sec.flags & SHF_EXECINSTR) !== 0 ? pcRelativeBias(data, off) : undefined,
        );
        relocs.push({
          offset: off - start,
          type,
          target: t.target,
          addend: t.addend,
          raw: t.exact ?? rawName(r.symbol),
        });
      }
    }
    relocs.sort((a, b) => a.offset - b.offset);
    return { bytes, relocs, section: sec.name };
  };

  const functions = new Map<string, FunctionCode>();
  const data = new Map<string, DataObject>();
  for (const sym of symbols) {
    if (sym.shndx === SHN_UNDEF || sym.shndx >= 0xff00) continue;
    if (sym.type === STT_FUNC) {
      const c = collect(sym);
      if (c)
        functions.set(sym.name, {
          name: sym.name,
          bind: bindName(sym.bind),
          size: sym.size,
          sectionIndex: sym.shndx,
          offset: Number(sym.value),
          ...c,
        });
    } else if (sym.type === STT_OBJECT) {
      const sec = elf.sections[sym.shndx];
      if (!sec || (sec.flags & SHF_EXECINSTR) !== 0) continue;
      const c = collect(sym);
      if (c)
        data.set(sym.name, {
          name: sym.name,
          bind: bindName(sym.bind),
          size: sym.size,
          offset: Number(sym.value),
          ...c,
        });
    }
  }
  const sectionSizes = new Map<string, number>();
  for (const sec of elf.sections) {
    if ((sec.flags & SHF_ALLOC) === 0 || !sec.name) continue;
    sectionSizes.set(sec.name, (sectionSizes.get(sec.name) ?? 0) + Number(sec.size));
  }
  return { functions, data, sectionSizes };
}

/**
 * Distance from a RIP-relative displacement at `off` to the end of its
 * instruction: 4, plus the immediate that follows it (`cmpb $0,x(%rip)` has
 * one byte more). Undefined when the instruction is not recognised: then the
 * callers try the usual distances.
 */
export function pcRelativeBias(code: Buffer, off: number): bigint | undefined {
  if (off < 2 || off + 4 > code.length) return undefined;
  const modrm = code[off - 1] as number;
  if ((modrm & 0xc7) !== 0x05) return undefined; // not a [rip+disp32] operand
  const reg = (modrm >> 3) & 7;
  const op = code[off - 2] as number;
  if (op === 0xba && code[off - 3] === 0x0f) return 5n; // bt/bts/btr/btc $imm8
  // The opcode may follow a REX prefix (0x40-0x4f) and/or an operand-size prefix (0x66).
  let prefix = off > 2 ? (code[off - 3] as number) : 0;
  if (prefix >= 0x40 && prefix <= 0x4f) prefix = off > 3 ? (code[off - 4] as number) : 0;
  const word = prefix === 0x66;
  switch (op) {
    case 0x80:
    case 0x83:
    case 0xc0:
    case 0xc1:
    case 0x6b:
      return 5n;
    case 0xc6:
      return reg === 0 ? 5n : undefined;
    case 0xf6:
      return reg <= 1 ? 5n : 4n;
    case 0x81:
    case 0x69:
      return word ? 6n : 8n;
    case 0xc7:
      return reg === 0 ? (word ? 6n : 8n) : undefined;
    case 0xf7:
      return reg <= 1 ? (word ? 6n : 8n) : 4n;
    default:
      return 4n;
  }
}

/** The string a relocation into a mergeable string section points at. */
function stringAt(
  elf: ElfFile,
  sec: ElfSection,
  type: string,
  addend: bigint,
): { target: string; addend: bigint } | undefined {
  const data = elf.sectionData(sec);
  // PC-relative references are biased by the distance to the instruction's end (usually 4).
  const candidates = PC_RELATIVE.has(type) ? [addend + 4n, addend + 5n, addend + 8n] : [addend];
  for (const off of candidates) {
    const o = Number(off);
    if (o < 0 || o >= data.length) continue;
    if (o > 0 && data[o - 1] !== 0) continue;
    const end = data.indexOf(0, o);
    const text = data.subarray(o, end < 0 ? data.length : end).toString('latin1');
    return { target: `string:${JSON.stringify(text)}`, addend: addend - off };
  }
  return undefined;
}

export type FunctionChange =
  | { name: string; status: 'changed'; reason: string; firstDifference: number }
  | { name: string; status: 'added' }
  | { name: string; status: 'removed' };

/** What differs between the two builds, function by function, with the first difference found. */
export function diffFunctions(before: ObjectCode, after: ObjectCode): FunctionChange[] {
  const out: FunctionChange[] = [];
  const afterByFolded = foldedIndex(after.functions);
  const beforeByFolded = foldedIndex(before.functions);
  const matched = new Set<string>();
  for (const [name, f] of before.functions) {
    const g = after.functions.get(name) ?? uniqueFolded(afterByFolded, name);
    if (!g) {
      out.push({ name, status: 'removed' });
      continue;
    }
    matched.add(g.name);
    const d = compareCode(f, g);
    if (d) out.push({ name, status: 'changed', ...d });
  }
  for (const name of after.functions.keys()) {
    if (matched.has(name)) continue;
    if (!before.functions.has(name) && !uniqueFolded(beforeByFolded, name)) out.push({ name, status: 'added' });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

function foldedIndex<T extends { name: string }>(m: Map<string, T>): Map<string, T[]> {
  const idx = new Map<string, T[]>();
  for (const v of m.values()) {
    const k = foldNumbers(v.name);
    idx.set(k, [...(idx.get(k) ?? []), v]);
  }
  return idx;
}

function uniqueFolded<T>(idx: Map<string, T[]>, name: string): T | undefined {
  const list = idx.get(foldNumbers(name));
  return list && list.length === 1 ? list[0] : undefined;
}

/** undefined when equal; otherwise the first differing offset and why. */
export function compareCode(
  a: { bytes: Buffer; relocs: NormalizedReloc[] },
  b: { bytes: Buffer; relocs: NormalizedReloc[] },
): { reason: string; firstDifference: number } | undefined {
  let firstByte = -1;
  const n = Math.min(a.bytes.length, b.bytes.length);
  for (let i = 0; i < n; i++) {
    if (a.bytes[i] !== b.bytes[i]) {
      firstByte = i;
      break;
    }
  }
  if (firstByte < 0 && a.bytes.length !== b.bytes.length) firstByte = n;
  let firstReloc = -1;
  let relocWhy = '';
  const m = Math.max(a.relocs.length, b.relocs.length);
  for (let i = 0; i < m; i++) {
    const x = a.relocs[i];
    const y = b.relocs[i];
    if (x && y && x.offset === y.offset && x.type === y.type && x.target === y.target && x.addend === y.addend)
      continue;
    firstReloc = Math.min(x?.offset ?? Infinity, y?.offset ?? Infinity);
    relocWhy = `relocation at +0x${firstReloc.toString(16)}: ${x ? `${x.type} ${x.target}${fmtAddend(x.addend)}` : 'none'} -> ${y ? `${y.type} ${y.target}${fmtAddend(y.addend)}` : 'none'}`;
    break;
  }
  if (firstByte < 0 && firstReloc < 0) return undefined;
  if (firstReloc >= 0 && (firstByte < 0 || firstReloc <= firstByte))
    return { reason: relocWhy, firstDifference: firstReloc };
  const sizes = a.bytes.length !== b.bytes.length ? ` (size ${a.bytes.length} -> ${b.bytes.length})` : '';
  return { reason: `code differs at +0x${firstByte.toString(16)}${sizes}`, firstDifference: firstByte };
}

function fmtAddend(a: bigint): string {
  return a === 0n ? '' : a > 0n ? `+${a}` : `${a}`;
}

/** Other function names at the same place (identical code folding, aliases). */
export function aliasesIn(code: ObjectCode, f: FunctionCode): FunctionCode[] {
  const out: FunctionCode[] = [];
  for (const g of code.functions.values()) {
    if (g !== f && g.sectionIndex === f.sectionIndex && g.offset === f.offset) out.push(g);
  }
  return out;
}

/** Names of the functions whose code refers to `target` (calls, jumps, address taken). */
export function referrers(code: ObjectCode, target: string): string[] {
  const t = foldNumbers(target);
  const out: string[] = [];
  for (const f of code.functions.values()) {
    if (f.relocs.some((r) => r.target === target || r.target === t)) out.push(f.name);
  }
  return out.sort();
}

/**
 * Does the function start with the ftrace hook? With -mfentry the first
 * instruction (after an endbr64) is `call __fentry__`; without it the
 * function cannot be redirected by a livepatch.
 */
export function hasFentry(f: FunctionCode): boolean {
  return f.relocs.some((r) => r.target === '__fentry__' && r.offset <= 9);
}
