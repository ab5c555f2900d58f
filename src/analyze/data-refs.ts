import {
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_WRITE,
  SHN_UNDEF,
  STT_FUNC,
  STT_OBJECT,
  STT_SECTION,
  relocTypeName,
  type ElfFile,
  type ElfSymbol,
} from '../elf/elf64.js';
import { compareCode, PC_RELATIVE, type ObjectCode } from './objdiff.js';
import { disassemble, usesAt } from './data-escape.js';

/**
 * Who reads a variable of one object: every relocation of the object that reaches it, named
 * by the function or variable it sits in, or by its section when no symbol covers it (a
 * kernel table such as `__jump_table` or `___ksymtab+x`). The rule for changed data rests on
 * this: a changed constant can move into the livepatch module only when every reader of the
 * running kernel's copy is replaced.
 */
export interface DataReader {
  kind: 'function' | 'data' | 'table';
  /** The function or variable, or the section for a table. */
  name: string;
  section: string;
  /** Offsets, in that section, of the relocations that reach the variable. */
  offsets: number[];
}

/** The STT_OBJECT symbol named `name`, if the object defines one. */
export function dataSymbol(elf: ElfFile, name: string): ElfSymbol | undefined {
  return elf
    .symbols()
    .find((s) => s.type === STT_OBJECT && s.name === name && s.shndx !== SHN_UNDEF && s.shndx < 0xff00);
}

export function readersOf(elf: ElfFile, variable: ElfSymbol): DataReader[] {
  const symbols = elf.symbols();
  const covering = new Map<number, ElfSymbol[]>();
  for (const s of symbols) {
    if ((s.type !== STT_FUNC && s.type !== STT_OBJECT) || s.shndx === SHN_UNDEF || s.shndx >= 0xff00) continue;
    const list = covering.get(s.shndx) ?? [];
    list.push(s);
    covering.set(s.shndx, list);
  }
  const start = variable.value;
  const end = variable.value + BigInt(Math.max(1, variable.size));
  const reaches = (sym: ElfSymbol | undefined, type: string, addend: bigint): boolean => {
    if (!sym) return false;
    if (sym === variable || (sym.name === variable.name && sym.shndx === variable.shndx)) return true;
    if (sym.type !== STT_SECTION || sym.shndx !== variable.shndx) return false;
    // PC-relative fields are biased by the distance to the instruction's end (4 to 8 bytes);
    // any of those landing inside counts: a reader too many is a refusal, never a miss.
    const biases = PC_RELATIVE.has(type) ? [4n, 5n, 6n, 8n] : [0n];
    return biases.some((b) => addend + b >= start && addend + b < end);
  };
  const out = new Map<string, DataReader>();
  for (const rs of elf.relocations()) {
    const t = rs.target;
    if (!t || (t.flags & SHF_ALLOC) === 0) continue; // debug info and notes read nothing at run time
    for (const r of rs.entries) {
      if (!reaches(r.symbol, relocTypeName(r.type), r.addend)) continue;
      const inside = (covering.get(t.index) ?? []).find(
        (s) => s.value <= r.offset && r.offset < s.value + BigInt(Math.max(1, s.size)),
      );
      if (inside === variable) continue; // a list head pointing at itself
      const kind = !inside ? 'table' : inside.type === STT_FUNC ? 'function' : 'data';
      const key = `${kind}:${inside?.name ?? t.name}`;
      const reader = out.get(key) ?? { kind, name: inside?.name ?? t.name, section: t.name, offsets: [] };
      reader.offsets.push(Number(r.offset));
      out.set(key, reader);
    }
  }
  return [...out.values()].sort((a, b) => `${a.kind}:${a.name}`.localeCompare(`${b.kind}:${b.name}`));
}

/**
 * What a changed variable definition means for the livepatch, from both builds' objects.
 *  - 'code': neither object has it (folded into the code, or unused): the code diff covers it;
 *  - 'same': both have it with the same contents and section: nothing to carry;
 *  - 'copy': read-only and local, every reader in the running kernel's object is a function
 *    (replaced for reading it): the module carries the new contents;
 *  - 'refuse': why the running kernel's data cannot follow.
 */
export type DataVerdict =
  | { kind: 'code' }
  | { kind: 'same' }
  | { kind: 'copy'; readers: string[]; passed: string[] }
  | { kind: 'refuse'; reason: string; init?: boolean };

export async function judgeChangedData(
  name: string,
  orig: { elf: ElfFile; code: ObjectCode; objectFile: string },
  patched: { elf: ElfFile; code: ObjectCode; objectFile: string },
): Promise<DataVerdict> {
  const before = dataSymbol(orig.elf, name);
  const after = dataSymbol(patched.elf, name);
  if (!before && !after) return { kind: 'code' };
  const sym = (before ?? after) as ElfSymbol;
  const elf = before ? orig.elf : patched.elf;
  const sec = elf.sections[sym.shndx];
  const section = sec?.name ?? '?';
  const a = orig.code.data.get(name);
  const b = patched.code.data.get(name);
  if (a && b && a.section === b.section && a.size === b.size && compareCode(a, b) === undefined)
    return { kind: 'same' };
  if (/^\.(init|exit)\./.test(section))
    return {
      kind: 'refuse',
      init: true,
      reason: `${name} is ${section.startsWith('.exit') ? '__exit' : '__init'} data (${section}): it is used at boot or module load and gone after; a livepatch cannot change what it did`,
    };
  if (sec && (sec.flags & SHF_WRITE) !== 0)
    return {
      kind: 'refuse',
      reason: `data change: ${name} (${section}) is writable data whose declaration or initializer changed; the running kernel's instance keeps its state and would not follow`,
    };
  if (sym.bind !== 0)
    return {
      kind: 'refuse',
      reason: `data change: ${name} is a global constant whose contents changed; code of other files reads the running kernel's copy`,
    };
  if (!before) {
    // New as a symbol: the original folded it into code, whose readers change with it.
    return { kind: 'copy', readers: [], passed: [] };
  }
  const readers = readersOf(orig.elf, before);
  const other = readers.find((r) => r.kind !== 'function');
  if (other)
    return {
      kind: 'refuse',
      reason: `data change: ${name} changed and ${other.kind === 'data' ? `variable ${other.name}` : `the kernel table ${other.name}`} refers to it; the running kernel's ${other.kind === 'data' ? 'data' : 'table'} would keep the old copy`,
    };
  const initReader = readers.find((r) => /^\.(init|exit)\./.test(r.section.replace(/^\.text/, '')));
  if (initReader)
    return {
      kind: 'refuse',
      init: true,
      reason: `data change: ${name} changed and the __init code ${initReader.name} reads it; that code is gone after boot and cannot be replaced`,
    };
  // Where the readers put its address, in both builds: a stored address outlives the call.
  const passed = new Set<string>();
  for (const [build, rs] of [
    [orig, readers],
    [patched, after ? readersOf(patched.elf, after).filter((r) => r.kind === 'function') : []],
  ] as const) {
    const code = await disassemble(build.objectFile, [...new Set(rs.map((r) => r.section))]);
    for (const r of rs) {
      for (const u of usesAt(code.get(r.section) ?? [], r.offsets)) {
        if (u.kind === 'stored')
          return {
            kind: 'refuse',
            reason: `data change: ${name} changed and ${r.name} stores its address (${r.section}+0x${u.at.toString(16)}${build === patched ? ', patched build' : ''}): what was set up before the livepatch keeps the old ${name}, and what is set up while it is loaded would point into the module`,
          };
        if (u.kind === 'passed') passed.add(`${u.callee} (by ${r.name})`);
      }
    }
  }
  return { kind: 'copy', readers: readers.map((r) => r.name), passed: [...passed].sort() };
}
