import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import {
  SHF_EXECINSTR,
  STB_GLOBAL,
  STB_LOCAL,
  STB_WEAK,
  STT_FILE,
  STT_FUNC,
  STT_OBJECT,
  STT_SECTION,
  SHN_UNDEF,
  parseElf,
  relocTypeName,
  type ElfFile,
  type ElfSymbol,
} from '../elf/elf64.js';
import { writeFileAtomic } from '../util/fsutil.js';
import { PC_RELATIVE, pcRelativeBias, type ObjectCode } from './objdiff.js';

/**
 * The running kernel's symbols, as livepatch looks them up: by name within
 * one object (vmlinux or a module), with `sympos` telling apart local names
 * that occur more than once. vmlinux's kallsyms table is sorted by address,
 * so its positions count in address order; a module's count in its symbol
 * table order. Local symbols of vmlinux follow the STT_FILE symbol of their
 * translation unit, which tells which duplicate is ours.
 */
export interface KernelSymbol {
  name: string;
  address: bigint;
  size: number;
  kind: 'function' | 'object' | 'other';
  bind: 'local' | 'global' | 'weak';
  /** Basename of the TU (STT_FILE) for local symbols, '' for globals. */
  file: string;
  /** Index of the STT_FILE group it belongs to (-1 for globals). */
  group: number;
  /** Section index (read from the ELF; not kept in the vmlinux cache). */
  shndx?: number;
}

/** Where our object has its local data: a static's neighbours tell its copy apart in a linked module. */
export type DataLayout = ReadonlyMap<string, { section: string; offset: number }>;

/**
 * Where an object puts its symbols: local statics, and every function (a static
 * function is placed by the functions around it in .text, global ones included).
 */
export function objectLayout(code: ObjectCode): DataLayout {
  return new Map([
    ...[...code.data.values()]
      .filter((d) => d.bind === 'local')
      .map((d) => [d.name, { section: d.section, offset: d.offset }] as const),
    ...[...code.functions.values()].map((f) => [f.name, { section: f.section, offset: f.offset }] as const),
  ]);
}

/** Where our object's code refers to each of its statics: `function+offset` of each reference. */
export type CodeReferences = ReadonlyMap<string, readonly string[]>;

export function objectReferences(code: ObjectCode): CodeReferences {
  const locals = new Set([...code.data.values()].filter((d) => d.bind === 'local').map((d) => d.name));
  const out = new Map<string, string[]>();
  for (const f of code.functions.values()) {
    for (const r of f.relocs) {
      if (!locals.has(r.raw)) continue;
      const list = out.get(r.raw);
      if (list) list.push(`${f.name}+${r.offset}`);
      else out.set(r.raw, [`${f.name}+${r.offset}`]);
    }
  }
  return out;
}

export interface SymbolIndex {
  object: string;
  /** The ELF file it was read from. */
  path?: string;
  /** Addresses are final (a linked vmlinux), not section offsets of a relocatable object. */
  linked: boolean;
  /** Every symbol (a cached vmlinux index makes them on first use: most lookups need a few). */
  readonly symbols: KernelSymbol[];
  /** name -> symbols in lookup order (kallsyms order). */
  readonly byName: { get(name: string): KernelSymbol[] | undefined };
  /** For each STT_FILE group: its file basename and the local names it holds. */
  readonly groups: { file: string; names: Set<string> }[];
  /** Its local symbols follow STT_FILE symbols (vmlinux's do; Debian's modules have none). */
  readonly hasFileSymbols: boolean;
  /** The functions at an address. */
  functionsAt(address: bigint): KernelSymbol[];
}

const cache = new Map<string, SymbolIndex>();

/**
 * vmlinux's index is written once beside it as a small TSV (vmlinux.symbols):
 * the 600 MB ELF file is read only the first time.
 */
export function loadSymbolIndex(elfPath: string, object: string, addressOrder: boolean): SymbolIndex {
  const key = `${elfPath}\0${object}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const tsv = `${elfPath}.symbols`;
  let index: SymbolIndex;
  if (addressOrder && existsSync(tsv)) index = new TsvIndex(object, elfPath, readFileSync(tsv, 'utf8'));
  else {
    const symbols = readSymbols(elfPath);
    if (addressOrder) void writeFileAtomic(tsv, toTsv(symbols)).catch(() => undefined);
    index = { ...buildIndex(object, symbols, addressOrder), path: elfPath };
  }
  cache.set(key, index);
  return index;
}

/** Symbols in address order (kallsyms'), equal addresses in symbol-table order. */
function byAddress(a: KernelSymbol, b: KernelSymbol): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : 0;
}

/**
 * vmlinux's index read from its TSV cache: 127,000 lines, of which a lookup needs a few. A
 * line becomes a KernelSymbol when asked for; the name and address maps hold line numbers.
 */
class TsvIndex implements SymbolIndex {
  readonly linked = true;
  private readonly lines: string[];
  private readonly made: (KernelSymbol | undefined)[] = [];
  private names: Map<string, number[]> | undefined;
  private addresses: Map<string, number[]> | undefined;
  private allSymbols: KernelSymbol[] | undefined;
  private allGroups: { file: string; names: Set<string> }[] | undefined;
  private fileSymbols: boolean | undefined;

  constructor(
    readonly object: string,
    readonly path: string,
    text: string,
  ) {
    this.lines = text.split('\n');
    if (this.lines[this.lines.length - 1] === '') this.lines.pop();
  }

  private symbol(i: number): KernelSymbol {
    const hit = this.made[i];
    if (hit) return hit;
    const s = parseTsvLine(this.lines[i] as string);
    this.made[i] = s;
    return s;
  }

  readonly byName = {
    get: (name: string): KernelSymbol[] | undefined => {
      if (!this.names) {
        this.names = new Map();
        for (const [i, line] of this.lines.entries()) {
          const n = line.slice(line.lastIndexOf('\t') + 1);
          const list = this.names.get(n);
          if (list) list.push(i);
          else this.names.set(n, [i]);
        }
      }
      const at = this.names.get(name);
      return at?.map((i) => this.symbol(i)).sort(byAddress);
    },
  };

  get hasFileSymbols(): boolean {
    this.fileSymbols ??= this.lines.some((l) => l.split('\t', 5)[4] !== '-1');
    return this.fileSymbols;
  }

  get symbols(): KernelSymbol[] {
    this.allSymbols ??= this.lines.map((_, i) => this.symbol(i));
    return this.allSymbols;
  }

  get groups(): { file: string; names: Set<string> }[] {
    this.allGroups ??= buildIndex(this.object, this.symbols, false).groups;
    return this.allGroups;
  }

  functionsAt(address: bigint): KernelSymbol[] {
    if (!this.addresses) {
      this.addresses = new Map();
      for (const [i, line] of this.lines.entries()) {
        const [addr, , kind] = line.split('\t', 3);
        if (kind !== 'f') continue;
        const list = this.addresses.get(addr as string);
        if (list) list.push(i);
        else this.addresses.set(addr as string, [i]);
      }
    }
    return (this.addresses.get(address.toString(16)) ?? []).map((i) => this.symbol(i));
  }
}

function readSymbols(elfPath: string): KernelSymbol[] {
  const elf = parseElf(readFileSync(elfPath), elfPath);
  const out: KernelSymbol[] = [];
  let file = '';
  let group = -1;
  for (const s of elf.symbols()) {
    if (s.type === STT_FILE) {
      file = basename(s.name);
      group++;
      continue;
    }
    if (s.shndx === SHN_UNDEF || !s.name) continue;
    const bind =
      s.bind === STB_GLOBAL ? 'global' : s.bind === STB_WEAK ? 'weak' : s.bind === STB_LOCAL ? 'local' : 'global';
    out.push({
      name: s.name,
      address: s.value,
      size: s.size,
      kind: s.type === STT_FUNC ? 'function' : s.type === STT_OBJECT ? 'object' : 'other',
      bind,
      file: bind === 'local' ? file : '',
      group: bind === 'local' ? group : -1,
      shndx: s.shndx,
    });
  }
  return out;
}

function toTsv(symbols: KernelSymbol[]): string {
  return (
    symbols
      .map((s) => `${s.address.toString(16)}\t${s.size}\t${s.kind[0]}\t${s.bind[0]}\t${s.group}\t${s.file}\t${s.name}`)
      .join('\n') + '\n'
  );
}

function parseTsvLine(line: string): KernelSymbol {
  const [addr, size, kind, bind, group, file, name] = line.split('\t') as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  return {
    name,
    address: BigInt(`0x${addr}`),
    size: Number(size),
    kind: kind === 'f' ? 'function' : kind === 'o' ? 'object' : 'other',
    bind: bind === 'l' ? 'local' : bind === 'w' ? 'weak' : 'global',
    group: Number(group),
    file,
  };
}

function buildIndex(object: string, symbols: KernelSymbol[], addressOrder: boolean): SymbolIndex {
  const ordered = addressOrder ? [...symbols].sort(byAddress) : symbols;
  const byName = new Map<string, KernelSymbol[]>();
  for (const s of ordered) {
    const list = byName.get(s.name);
    if (list) list.push(s);
    else byName.set(s.name, [s]);
  }
  const groups: { file: string; names: Set<string> }[] = [];
  for (const s of symbols) {
    if (s.group < 0) continue;
    let g = groups[s.group];
    if (!g) g = groups[s.group] = { file: s.file, names: new Set() };
    g.names.add(s.name);
  }
  let functions: Map<bigint, KernelSymbol[]> | undefined;
  const functionsAt = (address: bigint): KernelSymbol[] => {
    if (!functions) {
      functions = new Map();
      for (const s of symbols) {
        if (s.kind !== 'function') continue;
        const list = functions.get(s.address);
        if (list) list.push(s);
        else functions.set(s.address, [s]);
      }
    }
    return functions.get(address) ?? [];
  };
  return { object, linked: addressOrder, symbols, byName, groups, hasFileSymbols: groups.length > 0, functionsAt };
}

/**
 * Other function names at the same address: identical code folding (ICF) or
 * an alias. ftrace redirects an address, not a name, so replacing one of
 * them would also redirect the others.
 */
export function aliasesOf(index: SymbolIndex, sym: KernelSymbol): KernelSymbol[] {
  return index.functionsAt(sym.address).filter((s) => s.name !== sym.name);
}

export type SymbolLocation =
  | { found: true; sympos: number; symbol: KernelSymbol; duplicates: number; how: string }
  | { found: false; why: string };

/**
 * Find our TU's instance of `name`. `tuFile` is the .c path, `tuLocals` the
 * local symbol names of our object (to pick among several TUs sharing a
 * basename, e.g. the many core.c files).
 */
/**
 * A module stripped of its STT_FILE symbols (Debian's are): a static of ours that another
 * linked object also has (`__already_done.9`) is told apart by its neighbours in its section.
 * Our object's other statics of that section (`.data.once`) sit at the same distances from
 * our copy in the module, since the linker moves each object's part of a section as a whole.
 */
function byLayout(
  index: SymbolIndex,
  name: string,
  all: KernelSymbol[],
  layout: DataLayout | undefined,
  references?: CodeReferences,
): SymbolLocation {
  const ours = layout?.get(name);
  const fail = (why: string): SymbolLocation => ({
    found: false,
    why: `${name} occurs ${all.length} times in ${index.object}, which has no STT_FILE symbols: ${why}`,
  });
  if (!layout || !ours) return fail('not a static of ours whose place is known');
  const peers = [...layout].filter(([n, l]) => n !== name && l.section === ours.section);
  if (peers.length === 0)
    return (
      byReferences(index, name, all, references) ??
      fail(`no other static of ours in ${ours.section} to place it by, nor code of ours to tell its copies apart`)
    );
  const at = new Map<string, Set<string>>();
  for (const x of index.symbols) {
    if (x.shndx === undefined) continue;
    const k = `${x.shndx}:${x.address}`;
    const set = at.get(k);
    if (set) set.add(x.name);
    else at.set(k, new Set([x.name]));
  }
  const scored = all
    .map((c) => ({
      c,
      n: peers.filter(([n, l]) => at.get(`${c.shndx}:${c.address + BigInt(l.offset - ours.offset)}`)?.has(n)).length,
    }))
    .sort((a, b) => b.n - a.n);
  const [first, second] = scored as [{ c: KernelSymbol; n: number }, { c: KernelSymbol; n: number }];
  if (first.n === 0 || first.n === second.n)
    return (
      byReferences(index, name, all, references) ?? fail(`its neighbours in ${ours.section} do not single out one copy`)
    );
  return {
    found: true,
    sympos: all.indexOf(first.c) + 1,
    symbol: first.c,
    duplicates: all.length,
    how: `${all.length} symbols named ${name}; ours has ${first.n} of our statics of ${ours.section} around it, as in our object`,
  };
}

/**
 * A static alone in its section (`_rs.6`, the only variable of a file's .data) has no
 * neighbours: its copy is the one our functions' code refers to, from the same offsets
 * in functions of the same names.
 */
function byReferences(
  index: SymbolIndex,
  name: string,
  all: KernelSymbol[],
  references: CodeReferences | undefined,
): SymbolLocation | undefined {
  const ours = new Set(references?.get(name) ?? []);
  if (ours.size === 0 || !index.path) return undefined;
  let elf = parsedModules.get(index);
  if (!elf) parsedModules.set(index, (elf = parseElf(readFileSync(index.path), index.path)));
  const symbols = elf.symbols();
  const functionsIn = new Map<number, ElfSymbol[]>();
  for (const x of symbols) {
    if (x.type !== STT_FUNC || x.shndx === SHN_UNDEF || x.shndx >= 0xff00) continue;
    const list = functionsIn.get(x.shndx);
    if (list) list.push(x);
    else functionsIn.set(x.shndx, [x]);
  }
  const hits = all.map(() => 0);
  for (const rs of elf.relocations()) {
    const sec = rs.target;
    if (!sec || (sec.flags & SHF_EXECINSTR) === 0) continue;
    const fns = functionsIn.get(sec.index) ?? [];
    const code = elf.sectionData(sec);
    for (const r of rs.entries) {
      const t = r.symbol;
      if (!t || t.shndx === SHN_UNDEF || t.shndx >= 0xff00) continue;
      const pc = PC_RELATIVE.has(relocTypeName(r.type));
      const at =
        (t.type === STT_SECTION ? 0n : t.value) + r.addend + (pc ? (pcRelativeBias(code, Number(r.offset)) ?? 4n) : 0n);
      const i = all.findIndex(
        (c) => c.shndx === t.shndx && c.address <= at && at < c.address + BigInt(Math.max(1, c.size)),
      );
      if (i < 0) continue;
      const fn = fns.find((f) => f.value <= r.offset && r.offset < f.value + BigInt(f.size));
      if (fn && ours.has(`${fn.name}+${r.offset - fn.value}`)) hits[i] = (hits[i] as number) + 1;
    }
  }
  const best = Math.max(...hits);
  if (best === 0 || hits.filter((h) => h === best).length > 1) return undefined;
  const i = hits.indexOf(best);
  return {
    found: true,
    sympos: i + 1,
    symbol: all[i] as KernelSymbol,
    duplicates: all.length,
    how: `${all.length} symbols named ${name}; ours is the one referred to from ${best} of the places our code refers to it`,
  };
}

/** A module read once for all the statics placed by their references (btrfs.ko is megabytes). */
const parsedModules = new WeakMap<SymbolIndex, ElfFile>();

export function locateSymbol(
  index: SymbolIndex,
  name: string,
  tuFile: string,
  tuLocals: Set<string>,
  layout?: DataLayout,
  references?: CodeReferences,
): SymbolLocation {
  const all = index.byName.get(name) ?? [];
  if (all.length === 0) return { found: false, why: `${name} is not in ${index.object}'s symbol table` };
  if (all.length === 1)
    return { found: true, sympos: 0, symbol: all[0] as KernelSymbol, duplicates: 1, how: 'unique name' };
  const file = basename(tuFile);
  if (!index.hasFileSymbols && all.every((s) => s.bind === 'local'))
    return byLayout(index, name, all, layout, references);
  const ours = all.filter((s) => s.file === file);
  if (ours.length === 0) {
    const globals = all.filter((s) => s.bind !== 'local');
    if (globals.length === 1)
      return {
        found: true,
        sympos: all.indexOf(globals[0] as KernelSymbol) + 1,
        symbol: globals[0] as KernelSymbol,
        duplicates: all.length,
        how: 'the only global among the duplicates',
      };
    return { found: false, why: `${name} occurs ${all.length} times in ${index.object}, none in a ${file} group` };
  }
  let best = ours[0] as KernelSymbol;
  if (ours.length > 1) {
    // Several TUs named like ours: the group sharing most local names with our object is ours.
    const score = (s: KernelSymbol) => {
      const g = index.groups[s.group];
      let n = 0;
      if (g) for (const l of tuLocals) if (g.names.has(l)) n++;
      return n;
    };
    const scored = ours.map((s) => ({ s, n: score(s) })).sort((a, b) => b.n - a.n);
    if ((scored[0]?.n ?? 0) === (scored[1]?.n ?? -1)) {
      return {
        found: false,
        why: `${name} occurs in ${ours.length} translation units named ${file}; cannot tell which is ours`,
      };
    }
    best = (scored[0] as { s: KernelSymbol }).s;
  }
  return {
    found: true,
    sympos: all.indexOf(best) + 1,
    symbol: best,
    duplicates: all.length,
    how: `${all.length} symbols named ${name}; ours follows STT_FILE ${file}`,
  };
}
