/**
 * The ELF reader is checked against binutils: C fixtures are compiled with
 * gcc-12 at test time and every section, symbol and relocation we decode is
 * compared with what `readelf -W` prints for the same file.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  parseElf,
  readModinfo,
  relocTypeName,
  type ElfFile,
  type ElfSymbol,
  ET_REL,
  ET_EXEC,
  EM_X86_64,
  SHT_NULL,
  SHT_PROGBITS,
  SHT_SYMTAB,
  SHT_STRTAB,
  SHT_RELA,
  SHT_NOBITS,
  SHT_NOTE,
  SHT_GROUP,
  SHT_X86_64_UNWIND,
  SHF_WRITE,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_MERGE,
  SHF_STRINGS,
  SHF_INFO_LINK,
  SHF_LINK_ORDER,
  SHF_GROUP,
  SHF_TLS,
  STB_LOCAL,
  STB_GLOBAL,
  STB_WEAK,
  STT_NOTYPE,
  STT_OBJECT,
  STT_FUNC,
  STT_SECTION,
  STT_FILE,
  SHN_UNDEF,
  SHN_ABS,
  SHN_COMMON,
  R_X86_64_64,
  R_X86_64_PLT32,
  R_X86_64_PC32,
  R_X86_64_32S,
} from '../../src/elf/elf64.js';
import { KlpgenError } from '../../src/util/errors.js';

const CC = 'gcc-12';
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'klpgen-elf64-'));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function compile(name: string, source: string, flags: string[]): string {
  const src = join(dir, `${name}.c`);
  const out = join(dir, name);
  writeFileSync(src, source);
  execFileSync(CC, ['-O2', ...flags, '-o', out, src], { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

function readelf(args: string[], file: string): string {
  return execFileSync('readelf', ['-W', ...args, file], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
}

// ---------------------------------------------------------------- fixtures

const MAIN_C = `
extern int ext_func(int);
extern int ext_var;

/* noinline+noclone keeps a plain local "helper" symbol (no .isra/.constprop). */
static int __attribute__((noinline, noclone)) helper(int x)
{
	static int counter;
	counter += x;
	return counter * 3 + ext_func(x);
}

int global_var = 42;
int *data_ptr = &global_var;          /* data relocation: R_X86_64_64 */
const char *greeting = "hello";       /* relocation against .rodata.str */
int common_arr[16] __attribute__((weak));

int global_func(int y)
{
	static int counter;               /* second counter.N */
	counter++;
	return helper(y) + counter + ext_var + common_arr[y & 15];
}
`;

const MODINFO_C = `
#define MI(id, s) static const char __mi_##id[] \\
	__attribute__((used, section(".modinfo"), aligned(1))) = s
MI(a, "license=GPL");
MI(b, "alias=pci:v00008086d*");
MI(c, "depends=");
MI(d, "alias=fs-klpgen");
MI(e, "description=key=value inside a value");
MI(f, "author=J\\xc3\\xa9r\\xc3\\xb4me");
int init_module(void) { return 0; }
`;

// Kernel-like link: higher-half addresses (> 2^53, so bigint matters) and
// --emit-relocs, which is how vmlinux keeps its .rela.* sections.
const EXEC_C = `
extern int ext(int);
int gv = 3;
int *gp = &gv;
static int __attribute__((noinline, noclone)) h(int x) { static int c; c += x; return c; }
void _start(void) { gv += h(gv) + ext(gv); for (;;); }
int ext(int x) { return x; }
`;

const OBJ_VARIANTS: Record<string, string[]> = {
  'main-fs.o': ['-c', '-ffunction-sections'],
  'main-plain.o': ['-c'],
  'main-kernel.o': ['-c', '-ffunction-sections', '-fdata-sections', '-fno-pic', '-mcmodel=kernel', '-mno-red-zone'],
};

const EXEC_FLAGS = [
  '-fno-pic',
  '-mcmodel=kernel',
  '-no-pie',
  '-static',
  '-nostdlib',
  '-Wl,--emit-relocs',
  '-Wl,--build-id=none',
  '-Wl,-Ttext-segment=0xffffffff80000000',
];

function load(path: string): ElfFile {
  return parseElf(readFileSync(path), path);
}

// ---------------------------------------------------------- readelf parsing

const SHT_NAMES: Record<number, string> = {
  [SHT_NULL]: 'NULL',
  [SHT_PROGBITS]: 'PROGBITS',
  [SHT_SYMTAB]: 'SYMTAB',
  [SHT_STRTAB]: 'STRTAB',
  [SHT_RELA]: 'RELA',
  [SHT_NOBITS]: 'NOBITS',
  [SHT_NOTE]: 'NOTE',
  [SHT_GROUP]: 'GROUP',
  [SHT_X86_64_UNWIND]: 'X86_64_UNWIND',
};
// readelf prints flag letters in increasing bit order.
const SHF_LETTERS: [number, string][] = [
  [SHF_WRITE, 'W'],
  [SHF_ALLOC, 'A'],
  [SHF_EXECINSTR, 'X'],
  [SHF_MERGE, 'M'],
  [SHF_STRINGS, 'S'],
  [SHF_INFO_LINK, 'I'],
  [SHF_LINK_ORDER, 'L'],
  [SHF_GROUP, 'G'],
  [SHF_TLS, 'T'],
];
const STT_NAMES: Record<number, string> = {
  [STT_NOTYPE]: 'NOTYPE',
  [STT_OBJECT]: 'OBJECT',
  [STT_FUNC]: 'FUNC',
  [STT_SECTION]: 'SECTION',
  [STT_FILE]: 'FILE',
};
const STB_NAMES: Record<number, string> = { [STB_LOCAL]: 'LOCAL', [STB_GLOBAL]: 'GLOBAL', [STB_WEAK]: 'WEAK' };
const STV_NAMES = ['DEFAULT', 'INTERNAL', 'HIDDEN', 'PROTECTED'];

function flagLetters(flags: number): string {
  let s = '';
  let rest = flags;
  for (const [bit, ch] of SHF_LETTERS)
    if (flags & bit) {
      s += ch;
      rest &= ~bit;
    }
  return rest === 0 ? s : `${s}?${rest.toString(16)}`;
}

interface RSection {
  index: number;
  name: string;
  type: string;
  addr: bigint;
  off: number;
  size: number;
  es: number;
  flg: string;
  lk: number;
  inf: number;
  al: number;
}
function readelfSections(file: string): RSection[] {
  const re =
    /^\s*\[\s*(\d+)\] (\S*)\s+(\S+) +([0-9a-f]{16}) ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]{2}) ([ A-Za-z]{3,}?) +(\d+) +(\d+) +(\d+)$/;
  const out: RSection[] = [];
  for (const line of readelf(['-S'], file).split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    out.push({
      index: Number(m[1]),
      name: m[2]!,
      type: m[3]!,
      addr: BigInt(`0x${m[4]}`),
      off: parseInt(m[5]!, 16),
      size: parseInt(m[6]!, 16),
      es: parseInt(m[7]!, 16),
      flg: m[8]!.trim(),
      lk: Number(m[9]),
      inf: Number(m[10]),
      al: Number(m[11]),
    });
  }
  return out;
}

interface RSymbol {
  num: number;
  value: bigint;
  size: number;
  type: string;
  bind: string;
  vis: string;
  ndx: string;
  name: string;
}
function readelfSymbols(file: string): RSymbol[] {
  const out: RSymbol[] = [];
  let inSymtab = false;
  for (const line of readelf(['-s'], file).split('\n')) {
    const head = /^Symbol table '([^']+)'/.exec(line);
    if (head) {
      inSymtab = head[1] === '.symtab';
      continue;
    }
    if (!inSymtab) continue;
    const m = /^\s*(\d+): ([0-9a-f]{16}) +(0x[0-9a-f]+|\d+) (\S+) +(\S+) +(\S+) +(\S+) ?(.*)$/.exec(line);
    if (!m) continue;
    out.push({
      num: Number(m[1]),
      value: BigInt(`0x${m[2]}`),
      size: Number(m[3]),
      type: m[4]!,
      bind: m[5]!,
      vis: m[6]!,
      ndx: m[7]!,
      name: m[8]!,
    });
  }
  return out;
}

interface RReloc {
  offset: bigint;
  type: string;
  symName: string | undefined;
  addend: bigint;
}
function readelfRelocs(file: string): Map<string, RReloc[]> {
  const out = new Map<string, RReloc[]>();
  let cur: RReloc[] | undefined;
  for (const line of readelf(['-r'], file).split('\n')) {
    const head = /^Relocation section '([^']+)' at offset/.exec(line);
    if (head) {
      cur = [];
      out.set(head[1]!, cur);
      continue;
    }
    if (!cur) continue;
    const withSym = /^([0-9a-f]{16}) +[0-9a-f]{16} (\S+) +[0-9a-f]{16} (\S+) ([+-]) ([0-9a-f]+)$/.exec(line);
    if (withSym) {
      const mag = BigInt(`0x${withSym[5]}`);
      cur.push({
        offset: BigInt(`0x${withSym[1]}`),
        type: withSym[2]!,
        symName: withSym[3]!,
        addend: withSym[4] === '-' ? -mag : mag,
      });
      continue;
    }
    const noSym = /^([0-9a-f]{16}) +[0-9a-f]{16} (\S+) +(-?)([0-9a-f]+)$/.exec(line);
    if (noSym) {
      const mag = BigInt(`0x${noSym[4]}`);
      cur.push({ offset: BigInt(`0x${noSym[1]}`), type: noSym[2]!, symName: undefined, addend: noSym[3] ? -mag : mag });
    }
  }
  return out;
}

function ndxText(elf: ElfFile, s: ElfSymbol): string {
  if (s.shndx === SHN_UNDEF) return 'UND';
  if (s.shndx === SHN_ABS) return 'ABS';
  if (s.shndx === SHN_COMMON) return 'COM';
  assert.ok(s.section !== undefined, `symbol ${s.name} has no section name`);
  assert.equal(elf.sections[s.shndx]?.name, s.section);
  return String(s.shndx);
}

/** readelf shows the section name for STT_SECTION symbols, whose own name is empty. */
function displayName(s: ElfSymbol): string {
  return s.type === STT_SECTION ? (s.section ?? '') : s.name;
}

/** Full comparison of our decoding against readelf for one file. */
function compareWithReadelf(file: string): ElfFile {
  const elf = load(file);

  const rs = readelfSections(file);
  assert.ok(rs.length > 5, `readelf -S parse found only ${rs.length} sections`);
  assert.equal(elf.sections.length, rs.length, 'section count');
  for (const r of rs) {
    const s = elf.sections[r.index];
    assert.ok(s, `section ${r.index}`);
    const ctx = `${file} section [${r.index}] ${r.name}`;
    assert.equal(s.index, r.index, ctx);
    assert.equal(s.name, r.name, ctx);
    assert.equal(SHT_NAMES[s.type] ?? `0x${s.type.toString(16)}`, r.type, ctx);
    assert.equal(s.addr, r.addr, ctx);
    assert.equal(s.offset, r.off, ctx);
    assert.equal(s.size, r.size, ctx);
    assert.equal(s.entsize, r.es, ctx);
    assert.equal(flagLetters(s.flags), r.flg, ctx);
    assert.equal(s.link, r.lk, ctx);
    assert.equal(s.info, r.inf, ctx);
    assert.equal(s.addralign, r.al, ctx);
    assert.equal(elf.sectionByName(s.name)?.name, s.name);
    assert.equal(elf.sectionData(s).length, s.type === SHT_NOBITS || s.type === SHT_NULL ? 0 : s.size, ctx);
  }

  const ss = readelfSymbols(file);
  const syms = elf.symbols();
  assert.ok(ss.length > 5, `readelf -s parse found only ${ss.length} symbols`);
  assert.equal(syms.length, ss.length, 'symbol count');
  for (const r of ss) {
    const s = syms[r.num];
    assert.ok(s, `symbol ${r.num}`);
    const ctx = `${file} symbol ${r.num} ${r.name}`;
    assert.equal(s.index, r.num, ctx);
    assert.equal(displayName(s), r.name, ctx);
    assert.equal(s.value, r.value, ctx);
    assert.equal(s.size, r.size, ctx);
    assert.equal(STT_NAMES[s.type] ?? String(s.type), r.type, ctx);
    assert.equal(STB_NAMES[s.bind] ?? String(s.bind), r.bind, ctx);
    assert.equal(STV_NAMES[s.visibility], r.vis, ctx);
    assert.equal(ndxText(elf, s), r.ndx, ctx);
  }

  const rr = readelfRelocs(file);
  const ours = elf.relocations();
  assert.ok(rr.size > 0, 'readelf -r found relocation sections');
  assert.deepEqual(
    ours.map((r) => r.section.name),
    [...rr.keys()],
    'relocation section names',
  );
  for (const rel of ours) {
    const expected = rr.get(rel.section.name)!;
    const ctx = `${file} ${rel.section.name}`;
    assert.equal(rel.section.type, SHT_RELA, ctx);
    assert.equal(rel.target?.index, rel.section.info, ctx);
    assert.equal(rel.count, expected.length, ctx);
    assert.equal(rel.entries.length, expected.length, ctx);
    rel.entries.forEach((e, i) => {
      const x = expected[i]!;
      assert.equal(e.offset, x.offset, `${ctx} #${i}`);
      assert.equal(relocTypeName(e.type), x.type, `${ctx} #${i}`);
      assert.equal(e.symbol === undefined ? undefined : displayName(e.symbol), x.symName, `${ctx} #${i}`);
      assert.equal(e.symbol, e.symIndex === 0 ? undefined : syms[e.symIndex], `${ctx} #${i} symbol object`);
      assert.equal(e.addend, x.addend, `${ctx} #${i}`);
    });
  }
  return elf;
}

// ------------------------------------------------------------------- tests

for (const [name, flags] of Object.entries(OBJ_VARIANTS)) {
  test(`matches readelf -S/-s/-r for ${name} (${flags.join(' ')})`, () => {
    const elf = compareWithReadelf(compile(name, MAIN_C, flags));
    assert.equal(elf.type, ET_REL);
    assert.equal(elf.machine, EM_X86_64);
  });
}

test('finds the expected symbols and relocations in a -ffunction-sections object', () => {
  const elf = load(compile('facts.o', MAIN_C, ['-c', '-ffunction-sections']));
  const syms = elf.symbols();
  const byName = (n: string) => {
    const s = syms.find((x) => x.name === n);
    assert.ok(s, `symbol ${n} missing; have ${syms.map((x) => x.name).join(',')}`);
    return s;
  };

  const helper = byName('helper');
  assert.equal(helper.bind, STB_LOCAL);
  assert.equal(helper.type, STT_FUNC);
  assert.equal(helper.section, '.text.helper');
  assert.ok(helper.size > 0);

  const gf = byName('global_func');
  assert.equal(gf.bind, STB_GLOBAL);
  assert.equal(gf.type, STT_FUNC);
  assert.equal(gf.section, '.text.global_func');

  const gv = byName('global_var');
  assert.equal(gv.bind, STB_GLOBAL);
  assert.equal(gv.type, STT_OBJECT);
  assert.equal(gv.size, 4);
  assert.equal(gv.section, '.data');

  const weak = byName('common_arr');
  assert.equal(weak.bind, STB_WEAK);
  assert.equal(weak.size, 64);

  const ext = byName('ext_func');
  assert.equal(ext.shndx, SHN_UNDEF);
  assert.equal(ext.section, undefined);

  const file = syms.find((s) => s.type === STT_FILE);
  assert.equal(file?.shndx, SHN_ABS);
  assert.equal(file?.name, 'facts.o.c');

  // Function-scope statics become local objects named "counter.N".
  const counters = syms.filter((s) => /^counter\.\d+$/.test(s.name));
  assert.equal(counters.length, 2, `counters: ${counters.map((s) => s.name).join(',')}`);
  for (const c of counters) {
    assert.equal(c.bind, STB_LOCAL);
    assert.equal(c.type, STT_OBJECT);
    assert.equal(c.size, 4);
    assert.equal(c.section, '.bss');
  }

  const relocs = elf.relocations();
  const textHelper = relocs.find((r) => r.target?.name === '.text.helper');
  assert.ok(textHelper, 'relocations for .text.helper');
  assert.equal(textHelper.section.name, '.rela.text.helper');
  const call = textHelper.entries.find((e) => e.symbol?.name === 'ext_func');
  assert.ok(call, 'call to ext_func is relocated');
  assert.equal(call.type, R_X86_64_PLT32);
  assert.equal(relocTypeName(call.type), 'R_X86_64_PLT32');
  assert.equal(call.addend, -4n);

  const dataRel = relocs
    .flatMap((r) => r.entries.map((e) => ({ r, e })))
    .find(({ e }) => e.symbol?.name === 'global_var' && e.type === R_X86_64_64);
  assert.ok(dataRel, 'data_ptr = &global_var gives an R_X86_64_64');
  assert.equal(dataRel.e.addend, 0n);
  const dataPtr = byName('data_ptr');
  assert.equal(dataRel.r.target?.name, dataPtr.section);
  assert.equal(dataRel.e.offset, dataPtr.value);

  // Entries are cached: a second call hands back the same objects.
  assert.equal(elf.relocations()[0]!.entries, elf.relocations()[0]!.entries);
  assert.equal(elf.symbols(), syms);

  assert.equal(elf.sectionByName('.no-such-section'), undefined);
  const bss = elf.sectionByName('.bss')!;
  assert.equal(bss.type, SHT_NOBITS);
  assert.ok(bss.size >= 8);
  assert.equal(elf.sectionData(bss).length, 0);
  const strtab = elf.sectionByName('.strtab')!;
  assert.equal(elf.sectionData(strtab).subarray(1).toString('latin1').split('\0').includes('global_func'), true);
});

test('kernel-model object uses R_X86_64_32S/PC32 and no PLT for local calls', () => {
  const elf = load(compile('kmodel.o', MAIN_C, OBJ_VARIANTS['main-kernel.o']!));
  const all = elf.relocations().flatMap((r) => r.entries);
  const ptr = all.find((e) => e.symbol?.name === 'global_var' && e.type === R_X86_64_64);
  assert.ok(ptr, 'R_X86_64_64 for data_ptr');
  assert.ok(all.some((e) => e.type === R_X86_64_PC32 || e.type === R_X86_64_32S));
  assert.equal(elf.sectionByName('.data.global_var')?.type, SHT_PROGBITS);
});

test('ET_EXEC linked at a higher-half address with --emit-relocs matches readelf', () => {
  const file = compile('kexec', EXEC_C, EXEC_FLAGS);
  const elf = compareWithReadelf(file);
  assert.equal(elf.type, ET_EXEC);
  const start = elf.symbols().find((s) => s.name === '_start');
  assert.ok(start);
  // Beyond Number.MAX_SAFE_INTEGER: only exact as a bigint.
  assert.ok(start.value > 0xffffffff80000000n, start.value.toString(16));
  const text = elf.sectionByName('.text')!;
  assert.ok(start.value >= text.addr && start.value < text.addr + BigInt(text.size));
  const relaText = elf.relocations().find((r) => r.target === text);
  assert.ok(relaText && relaText.entries.length > 0);
  for (const e of relaText.entries) {
    assert.ok(e.offset >= text.addr && e.offset < text.addr + BigInt(text.size), 'r_offset is a virtual address');
  }
});

test('readModinfo returns every key=value, keeping repeated keys', () => {
  const file = compile('mod.o', MODINFO_C, ['-c']);
  const elf = load(file);
  const info = readModinfo(elf);
  assert.deepEqual([...(info.get('alias') ?? [])].sort(), ['fs-klpgen', 'pci:v00008086d*']);
  assert.deepEqual(info.get('license'), ['GPL']);
  assert.deepEqual(info.get('depends'), ['']);
  assert.deepEqual(info.get('description'), ['key=value inside a value']);
  assert.deepEqual(info.get('author'), ['Jérôme']);
  assert.equal(info.size, 5);

  // Same strings, same order as binutils sees them.
  const dumped = readelf(['-p', '.modinfo'], file)
    .split('\n')
    .map((l) => /^\s*\[\s*[0-9a-f]+\]\s\s(.*)$/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
  assert.equal(dumped.length, 6);
  const ours = [...info].flatMap(([k, vs]) => vs.map((v) => `${k}=${v}`));
  const latin1 = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
  const dumpedAlias = dumped.filter((d) => d.startsWith('alias='));
  assert.deepEqual(
    ours.filter((d) => d.startsWith('alias=')),
    dumpedAlias,
  );
  // readelf -p prints raw bytes; compare byte-for-byte via latin1.
  assert.deepEqual(ours.map(latin1).sort(), dumped.map((d) => Buffer.from(d, 'utf8').toString('latin1')).sort());

  // No .modinfo: empty map, not an error.
  assert.equal(readModinfo(load(compile('nomod.o', 'int x;', ['-c']))).size, 0);
});

// --------------------------------------------------------------- bad input

function expectKlpgenError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof KlpgenError, `expected KlpgenError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

function realObject(): Buffer {
  return readFileSync(compile('victim.o', MAIN_C, ['-c', '-ffunction-sections']));
}

test('rejects a non-ELF buffer', () => {
  expectKlpgenError(
    () => parseElf(Buffer.from('#!/bin/sh\necho definitely not an ELF file\n'.repeat(3))),
    /not an ELF file/,
  );
  expectKlpgenError(() => parseElf(Buffer.alloc(0)), /not an ELF file/);
  expectKlpgenError(() => parseElf(Buffer.from([0x7f, 0x45])), /not an ELF file/);
});

test('rejects a 32-bit and a big-endian ELF header', () => {
  const buf = realObject();
  const b32 = Buffer.from(buf);
  b32[4] = 1; // ELFCLASS32
  expectKlpgenError(() => parseElf(b32, 'x.o'), /^x\.o: .*64-bit/);
  const be = Buffer.from(buf);
  be[5] = 2; // ELFDATA2MSB
  expectKlpgenError(() => parseElf(be), /little-endian/);
});

test('rejects a truncated file', () => {
  const buf = realObject();
  expectKlpgenError(() => parseElf(buf.subarray(0, 200)), /beyond end of file/);
  expectKlpgenError(() => parseElf(buf.subarray(0, 40)), /truncated ELF header/);
  // Header table intact but the file ends before the last sections' data.
  const shoff = Number(buf.readBigUInt64LE(40));
  const lastDataEnd = Math.max(
    ...parseElf(buf)
      .sections.filter((s) => s.type !== SHT_NOBITS)
      .map((s) => s.offset + s.size),
  );
  assert.ok(lastDataEnd <= shoff, 'gcc puts the section header table last');
  const moved = Buffer.concat([buf.subarray(0, 64), buf.subarray(shoff)]);
  moved.writeBigUInt64LE(64n, 40);
  expectKlpgenError(() => parseElf(moved), /extends beyond end of file/);
});

test('rejects e_shoff or a section table entry pointing past the end', () => {
  const buf = realObject();
  for (const bad of [BigInt(buf.length + 1), BigInt(buf.length - 10), 0xffffffffffffffffn]) {
    const b = Buffer.from(buf);
    b.writeBigUInt64LE(bad, 40);
    expectKlpgenError(() => parseElf(b), /beyond end of file|out of range/);
  }
  // .symtab's sh_offset moved past the end.
  const elf = parseElf(buf);
  const symtab = elf.sectionByName('.symtab')!;
  const shoff = Number(buf.readBigUInt64LE(40));
  const b = Buffer.from(buf);
  b.writeBigUInt64LE(BigInt(buf.length - 8), shoff + symtab.index * 64 + 24);
  expectKlpgenError(() => parseElf(b), /section \d+ .*beyond end of file/);
});

test('lazy tables report corruption as KlpgenError', () => {
  const buf = realObject();
  const elf = parseElf(buf);
  const shoff = Number(buf.readBigUInt64LE(40));
  const symtab = elf.sectionByName('.symtab')!;
  const strtab = elf.sectionByName('.strtab')!;

  // Symbol name offset outside .strtab.
  const b1 = Buffer.from(buf);
  b1.writeUInt32LE(strtab.size + 5, symtab.offset + 24);
  const e1 = parseElf(b1);
  expectKlpgenError(() => e1.symbols(), /string offset .* outside \.strtab/);

  // Symbol pointing at a section that does not exist.
  const b2 = Buffer.from(buf);
  b2.writeUInt16LE(elf.sections.length + 3, symtab.offset + 24 + 6);
  expectKlpgenError(() => parseElf(b2).symbols(), /missing section/);

  // Relocation referring to a symbol index beyond .symtab.
  const rela = elf.relocations()[0]!;
  const b3 = Buffer.from(buf);
  b3.writeUInt32LE(999999, rela.section.offset + 12);
  const r3 = parseElf(b3).relocations();
  expectKlpgenError(() => r3[0]!.entries, /missing symbol 999999/);

  // .symtab with a bogus entry size.
  const b4 = Buffer.from(buf);
  b4.writeBigUInt64LE(7n, shoff + symtab.index * 64 + 56);
  expectKlpgenError(() => parseElf(b4).symbols(), /entry size 7/);
});

test('relocTypeName covers the x86-64 types and unknown numbers', () => {
  assert.equal(relocTypeName(0), 'R_X86_64_NONE');
  assert.equal(relocTypeName(1), 'R_X86_64_64');
  assert.equal(relocTypeName(2), 'R_X86_64_PC32');
  assert.equal(relocTypeName(4), 'R_X86_64_PLT32');
  assert.equal(relocTypeName(11), 'R_X86_64_32S');
  assert.equal(relocTypeName(24), 'R_X86_64_PC64');
  assert.equal(relocTypeName(42), 'R_X86_64_REX_GOTPCRELX');
  assert.equal(relocTypeName(200), 'R_X86_64_UNKNOWN_200');
});

test('500 random byte flips give either a result or a KlpgenError', () => {
  const buf = realObject();
  const elf = parseElf(buf);
  // Bias flips towards the structures the reader interprets, not machine code.
  const shoff = Number(buf.readBigUInt64LE(40));
  const ranges: [number, number][] = [
    [0, 64],
    [shoff, shoff + elf.sections.length * 64],
  ];
  for (const s of elf.sections) {
    if (s.type === SHT_SYMTAB || s.type === SHT_RELA || s.type === SHT_STRTAB)
      ranges.push([s.offset, s.offset + s.size]);
    if (s.name === '.modinfo') ranges.push([s.offset, s.offset + s.size]);
  }
  let seed = 0x6b6c7067; // deterministic (mulberry32)
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let ok = 0;
  let rejected = 0;
  for (let iter = 0; iter < 500; iter++) {
    const b = Buffer.from(buf);
    const flips = 1 + Math.floor(rand() * 4);
    for (let k = 0; k < flips; k++) {
      const [lo, hi] = rand() < 0.8 ? ranges[Math.floor(rand() * ranges.length)]! : [0, b.length];
      const pos = lo + Math.floor(rand() * (hi - lo));
      b[pos] = b[pos]! ^ (1 << Math.floor(rand() * 8));
    }
    try {
      const e = parseElf(b);
      for (const s of e.sections) e.sectionData(s);
      e.symbols();
      for (const r of e.relocations()) void r.entries;
      readModinfo(e);
      ok++;
    } catch (err) {
      assert.ok(err instanceof KlpgenError, `iteration ${iter}: ${err instanceof Error ? err.stack : String(err)}`);
      rejected++;
    }
  }
  assert.equal(ok + rejected, 500);
  // Make sure the fuzzing actually reached both outcomes.
  assert.ok(rejected > 20, `only ${rejected} rejections`);
  assert.ok(ok > 20, `only ${ok} successes`);
});
