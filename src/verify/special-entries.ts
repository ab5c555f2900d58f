import {
  SHF_EXECINSTR,
  SHF_MERGE,
  SHF_STRINGS,
  SHN_UNDEF,
  STT_FUNC,
  STT_OBJECT,
  STT_SECTION,
  relocTypeName,
  type ElfFile,
  type ElfRelocation,
  type ElfSymbol,
} from '../elf/elf64.js';
import { SPECIAL_SECTIONS } from '../extract/extract.js';
import { foldNumbers } from '../analyze/objdiff.js';

/**
 * A function's entries in the kernel's tables of code places (ORC, jump labels, static calls,
 * exception and bug tables, alternatives, return and retpoline sites, mcount), as verify
 * compares them: where in the function, the entry's own bytes (with its parallel `.orc_unwind`
 * entry), and what its other relocations reach, named so that two objects of one TU compare.
 */
export interface PlaceEntry {
  section: string;
  /** Offset of the code place in the function. */
  at: number;
  /** The entry's bytes (relocated fields hold zero in RELA objects), and the parallel entry's. */
  data: string;
  targets: string[];
}

/** Every function's table entries, by function name; `rename` maps a symbol name to the patched build's. */
export function placeEntries(elf: ElfFile, rename: (name: string) => string = (n) => n): Map<string, PlaceEntry[]> {
  const symbols = elf.symbols();
  const functions = symbols.filter((s) => s.type === STT_FUNC && s.shndx !== SHN_UNDEF && s.shndx < 0xff00);
  const objects = symbols.filter((s) => s.type === STT_OBJECT && s.shndx !== SHN_UNDEF && s.shndx < 0xff00);
  const relocs = new Map<number, readonly ElfRelocation[]>();
  for (const rs of elf.relocations()) if (rs.target) relocs.set(rs.target.index, rs.entries);
  /** The function a place (section, offset) is in; a place at a function's end is its (ORC's terminator). */
  const functionAt = (shndx: number, at: bigint): ElfSymbol | undefined =>
    functions.find((f) => f.shndx === shndx && f.value <= at && at < f.value + BigInt(f.size)) ??
    functions.find((f) => f.shndx === shndx && at === f.value + BigInt(f.size));
  const name = (r: ElfRelocation, fn: ElfSymbol): string => {
    const s = r.symbol;
    const type = relocTypeName(r.type);
    if (!s) return `${type} <none>`;
    if (s.shndx === SHN_UNDEF) return `${type} ${rename(s.name)}${fmt(r.addend)}`;
    const at = s.value + r.addend;
    if (s.shndx === fn.shndx) return `${type} @${at - fn.value}`;
    const sec = elf.sections[s.shndx];
    if (!sec) return `${type} <bad section>`;
    if ((sec.flags & SHF_MERGE) !== 0 && (sec.flags & SHF_STRINGS) !== 0) {
      const data = elf.sectionData(sec);
      const o = Number(at);
      const end = data.indexOf(0, o);
      return `${type} string:${JSON.stringify(data.subarray(o, end < 0 ? data.length : end).toString('latin1'))}`;
    }
    if (s.type !== STT_SECTION && s.type !== 0) return `${type} ${rename(foldNumbers(s.name))}${fmt(r.addend)}`;
    const inside = ((sec.flags & SHF_EXECINSTR) !== 0 ? functions : objects).find(
      (x) => x.shndx === s.shndx && x.value <= at && at < x.value + BigInt(Math.max(1, x.size)),
    );
    if (inside) return `${type} ${rename(foldNumbers(inside.name))}${fmt(at - inside.value)}`;
    return `${type} section:${sec.name}${fmt(at)}`;
  };
  const out = new Map<string, PlaceEntry[]>();
  for (const sec of elf.sections) {
    const spec = SPECIAL_SECTIONS.get(sec.name);
    if (!spec || sec.size % spec.entsize !== 0) continue;
    const rs = [...(relocs.get(sec.index) ?? [])].sort((a, b) => Number(a.offset - b.offset));
    const parallel = spec.parallel ? elf.sections.find((s) => s.name === spec.parallel!.name) : undefined;
    const data = elf.sectionData(sec);
    for (let at = 0; at < sec.size; at += spec.entsize) {
      const inEntry = rs.filter((r) => Number(r.offset) >= at && Number(r.offset) < at + spec.entsize);
      const anchor = inEntry.find((r) => Number(r.offset) === at + spec.anchor);
      if (!anchor?.symbol || anchor.symbol.shndx === SHN_UNDEF) continue;
      const place = anchor.symbol.value + anchor.addend;
      const fn = functionAt(anchor.symbol.shndx, place);
      if (!fn) continue;
      const i = at / spec.entsize;
      const extra =
        parallel && spec.parallel
          ? elf
              .sectionData(parallel)
              .subarray(i * spec.parallel.entsize, (i + 1) * spec.parallel.entsize)
              .toString('hex')
          : '';
      const entry: PlaceEntry = {
        section: sec.name,
        at: Number(place - fn.value),
        data: `${data.subarray(at, at + spec.entsize).toString('hex')}${extra ? `/${extra}` : ''}`,
        targets: inEntry.filter((r) => r !== anchor).map((r) => `+${Number(r.offset) - at} ${name(r, fn)}`),
      };
      const list = out.get(fn.name);
      if (list) list.push(entry);
      else out.set(fn.name, [entry]);
    }
  }
  for (const list of out.values())
    list.sort((a, b) => a.section.localeCompare(b.section) || a.at - b.at || a.data.localeCompare(b.data));
  return out;
}

/** undefined when both functions have the same entries; otherwise the first difference, in one line. */
export function compareEntries(mine: readonly PlaceEntry[], theirs: readonly PlaceEntry[]): string | undefined {
  const sections = [...new Set([...mine, ...theirs].map((e) => e.section))].sort();
  for (const section of sections) {
    const a = mine.filter((e) => e.section === section);
    const b = theirs.filter((e) => e.section === section);
    if (a.length !== b.length)
      return `${section}: ${a.length} entr${a.length === 1 ? 'y' : 'ies'}, the patched build has ${b.length}`;
    for (let i = 0; i < a.length; i++) {
      const x = a[i] as PlaceEntry;
      const y = b[i] as PlaceEntry;
      if (x.at !== y.at)
        return `${section}: an entry at +0x${x.at.toString(16)}, the patched build's is at +0x${y.at.toString(16)}`;
      if (x.data !== y.data) return `${section}: the entry at +0x${x.at.toString(16)} differs (${x.data} vs ${y.data})`;
      const t = x.targets.join(', ');
      const u = y.targets.join(', ');
      if (t !== u)
        return `${section}: the entry at +0x${x.at.toString(16)} reaches ${t || 'nothing'}, the patched build's ${u || 'nothing'}`;
    }
  }
  return undefined;
}

function fmt(a: bigint): string {
  return a === 0n ? '' : a > 0n ? `+${a}` : `${a}`;
}
