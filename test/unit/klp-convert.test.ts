/**
 * ElfWriter and klpConvert, checked against binutils: the fixtures in
 * test/fixtures/klp-convert/ are compiled with gcc-12 at test time, edited,
 * and the results inspected with readelf/objdump (and, for the writer,
 * linked into a program and run).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  parseElf,
  SHF_ALLOC,
  SHF_INFO_LINK,
  SHT_RELA,
  SHT_PROGBITS,
  SHN_UNDEF,
  STB_GLOBAL,
  STB_LOCAL,
  STT_FUNC,
  STT_NOTYPE,
} from '../../src/elf/elf64.js';
import { ElfWriter } from '../../src/elf/writer.js';
import {
  klpConvert,
  klpSymbolName,
  SHF_RELA_LIVEPATCH,
  SHN_LIVEPATCH,
  type KlpExternal,
} from '../../src/kmod/klp-convert.js';
import { KlpgenError } from '../../src/util/errors.js';
import { ROOT } from '../helpers.js';

const CC = 'gcc-12';
const KERNEL_FLAGS = ['-c', '-O2', '-fno-pic', '-mcmodel=kernel'];
const FIXTURES = join(ROOT, 'test', 'fixtures', 'klp-convert');
const VMLINUX_FOO_BAR: KlpExternal[] = [
  { name: 'foo', object: 'vmlinux', sympos: 0 },
  { name: 'bar', object: 'vmlinux', sympos: 0 },
];
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'klpgen-klpconv-'));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Compiles fixture `name`.c (once per flag set) and returns the object's path. */
const compiled = new Map<string, string>();
function compile(name: string, flags: string[] = KERNEL_FLAGS): string {
  const key = `${name} ${flags.join(' ')}`;
  const hit = compiled.get(key);
  if (hit) return hit;
  const out = join(dir, `${name}-${compiled.size}.o`);
  execFileSync(CC, [...flags, '-o', out, join(FIXTURES, `${name}.c`)], { stdio: ['ignore', 'ignore', 'pipe'] });
  compiled.set(key, out);
  return out;
}

function write(name: string, data: Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

/** readelf -W output; binutils must not complain about anything we wrote. */
function readelf(args: string[], file: string): string {
  const r = spawnSync('readelf', ['-W', ...args, file], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', `readelf ${args.join(' ')} ${file} warned:\n${r.stderr}`);
  return r.stdout;
}

function objdump(file: string): string {
  const r = spawnSync('objdump', ['-dr', file], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', r.stderr);
  return r.stdout.split('\n').slice(2).join('\n'); // drop the line with the file name
}

/** One row of `readelf -W -S`. */
interface ShRow {
  nr: number;
  name: string;
  type: string;
  flags: string;
  link: number;
  info: number;
  align: number;
  es: number;
}
function sectionRows(file: string): ShRow[] {
  const rows: ShRow[] = [];
  for (const line of readelf(['-S'], file).split('\n')) {
    const m =
      /^\s*\[\s*(\d+)\]\s+(\S*)\s+(\S+)\s+[0-9a-f]{16}\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]{2})\s+(\S*)\s+(\d+)\s+(\d+)\s+(\d+)$/.exec(
        line,
      );
    if (m)
      rows.push({
        nr: Number(m[1]),
        name: m[2]!,
        type: m[3]!,
        es: parseInt(m[4]!, 16),
        flags: m[5]!,
        link: Number(m[6]),
        info: Number(m[7]),
        align: Number(m[8]),
      });
  }
  return rows;
}

/** `readelf -r` as { section: ["offset type symbol+addend", ...] }, without the Info column (symbol indices). */
function relocsByName(file: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of readelf(['-r'], file).split('\n')) {
    const h = /^Relocation section '([^']+)'/.exec(line);
    if (h) {
      cur = [];
      out.set(h[1]!, cur);
      continue;
    }
    const m = /^([0-9a-f]{16})\s+[0-9a-f]{16}\s+(\S+)\s+[0-9a-f]{16}\s+(.*)$/.exec(line);
    if (m && cur) cur.push(`${m[1]} ${m[2]} ${m[3]}`);
  }
  return out;
}

/** `readelf -s` rows as { num, bind, ndx, name }. */
function symbolRows(file: string): { num: number; type: string; bind: string; ndx: string; name: string }[] {
  const rows = [];
  for (const line of readelf(['-s'], file).split('\n')) {
    const m = /^\s*(\d+): [0-9a-f]{16}\s+\d+ (\S+)\s+(\S+)\s+\S+\s+(OS \[0x[0-9a-f]+\]|\S+) ?(.*)$/.exec(line);
    if (m) rows.push({ num: Number(m[1]), type: m[2]!, bind: m[3]!, ndx: m[4]!, name: m[5]! });
  }
  return rows;
}

function assertLocalsFirst(file: string): void {
  const elf = parseElf(readFileSync(file), file);
  const symtab = elf.sections.find((s) => s.name === '.symtab')!;
  const syms = elf.symbols();
  const firstGlobal = syms.findIndex((s, i) => i > 0 && s.bind !== STB_LOCAL);
  assert.equal(
    symtab.info,
    firstGlobal === -1 ? syms.length : firstGlobal,
    '.symtab sh_info is the first non-local index',
  );
  assert.ok(
    syms.slice(symtab.info).every((s) => s.bind !== STB_LOCAL),
    'no LOCAL symbol after the first GLOBAL',
  );
}

function throwsKlpgen(fn: () => unknown, msg: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KlpgenError, `not a KlpgenError: ${String(e)}`);
    assert.match(e.message, msg);
    return true;
  });
}

// ================================================================ ElfWriter

test('writer: load + serialize with no edits reproduces gcc objects byte for byte', () => {
  for (const [name, flags] of [
    ['refs', KERNEL_FLAGS],
    ['special', KERNEL_FLAGS],
    ['group', ['-c', '-O2']],
    ['refs', [...KERNEL_FLAGS, '-g', '-ffunction-sections', '-fdata-sections']],
  ] as const) {
    const file = compile(name, [...flags]);
    const orig = readFileSync(file);
    const out = ElfWriter.load(orig, file).serialize();
    assert.ok(out.equals(orig), `${name} ${flags.join(' ')}: round trip changed bytes`);
    assert.equal(
      readelf(['-a'], write(`rt-${name}.o`, out)).replaceAll(`rt-${name}.o`, ''),
      readelf(['-a'], file).replace(file, ''),
    );
  }
});

test('writer: bytes after the last section (a module signature) are dropped, the rest is kept', () => {
  const file = compile('refs');
  const orig = readFileSync(file);
  const signed = Buffer.concat([orig, Buffer.from('\0sig\0~Module signature appended~\n')]);
  assert.ok(ElfWriter.load(signed, 'signed.ko').serialize().equals(orig));
});

test('writer: adding LOCAL and GLOBAL symbols renumbers relocations and group signatures; the object still links and runs', () => {
  const file = compile('group', ['-c', '-O2']);
  const main = join(dir, 'main.c');
  writeFileSync(main, 'int lib_entry(int);\nint main(void) { return lib_entry(1); }\n');
  const run = (obj: string): string => {
    const exe = join(dir, 'prog');
    execFileSync(CC, ['-o', exe, main, obj], { stdio: ['ignore', 'ignore', 'pipe'] });
    return execFileSync(exe, { encoding: 'utf8' });
  };
  assert.equal(run(file), 'lib 6 42\n');

  const w = ElfWriter.load(readFileSync(file), file);
  const text = w.sectionByName('.text')!;
  const before = w.symbols.length;
  const firstGlobal = w.symbols.findIndex((s, i) => i > 0 && s.bind !== STB_LOCAL);
  const grpSig = w.findSymbols('grp_fn')[0]!;
  const grpIndex = w.symbolIndex(grpSig);
  assert.equal(grpIndex, w.sections.find((s) => s.name === '.group')!.info);
  assert.ok(grpIndex >= firstGlobal, 'the group signature is a global symbol');

  const g = w.addSymbol({
    name: 'klpgen_added_global',
    bind: STB_GLOBAL,
    type: STT_FUNC,
    shndx: text.index,
    value: 0x10n,
  });
  const l = w.addSymbol({ name: 'klpgen_added_local', bind: STB_LOCAL, type: STT_NOTYPE, shndx: text.index });
  assert.equal(w.symbolIndex(l), firstGlobal, 'a new LOCAL symbol goes right after the last local');
  assert.equal(w.symbolIndex(g), before + 1, 'a new GLOBAL symbol goes last');
  assert.equal(w.symbolIndex(grpSig), grpIndex + 1, 'globals shift by one');
  // Turning a global into a local moves it before the globals, too.
  const value = w.findSymbols('lib_value')[0]!;
  w.setSymbolInfo(value, STB_LOCAL, value.type);
  w.renameSymbol(value, 'lib_value_renamed_local');
  w.setSymbolInfo(value, STB_GLOBAL, value.type);
  w.renameSymbol(value, 'lib_value');
  const extra = w.addSection({
    name: '.klpgen.extra',
    type: SHT_PROGBITS,
    addralign: 16,
    data: Buffer.from('extra section data'),
  });
  assert.equal(extra.index, w.sections.length - 1);

  const outFile = write('group-edited.o', w.serialize());
  assertLocalsFirst(outFile);
  // Every relocation still names the same symbol, only the indices changed.
  assert.deepEqual(relocsByName(outFile), relocsByName(file));
  assert.match(readelf(['-g'], outFile), /COMDAT group section \[\s*1\] `\.group' \[grp_fn\] contains 1 sections/);
  const syms = symbolRows(outFile);
  assert.equal(syms.length, before + 2);
  assert.deepEqual(
    syms.find((s) => s.name === 'klpgen_added_local'),
    { num: firstGlobal, type: 'NOTYPE', bind: 'LOCAL', ndx: String(text.index), name: 'klpgen_added_local' },
  );
  assert.deepEqual(syms.at(-1), {
    num: before + 1,
    type: 'FUNC',
    bind: 'GLOBAL',
    ndx: String(text.index),
    name: 'klpgen_added_global',
  });
  const row = sectionRows(outFile).find((s) => s.name === '.klpgen.extra')!;
  assert.deepEqual([row.nr, row.type, row.align], [extra.index, 'PROGBITS', 16]);
  assert.match(
    readelf(['-x', '.klpgen.extra'], outFile),
    /65787472 61207365 6374696f 6e206461 extra section da\n\s+0x00000010 7461 /,
  );
  assert.equal(objdump(outFile), objdump(file));
  assert.equal(run(outFile), 'lib 6 42\n', 'the edited object links and behaves the same');
});

test("writer: replacing a .rela section's data with fewer entries", () => {
  const file = compile('refs');
  const w = ElfWriter.load(readFileSync(file), file);
  const rela = w.sectionByName('.rela.data')!;
  const data = w.sectionData(rela);
  assert.equal(data.length, 3 * 24);
  w.setSectionData(rela, data.subarray(24)); // drop the first entry (baz)
  // A symbol added afterwards renumbers the kept entries too.
  w.addSymbol({ name: 'new_local', bind: STB_LOCAL, type: STT_NOTYPE, shndx: SHN_UNDEF });
  const out = write('refs-fewer.o', w.serialize());
  const before = relocsByName(file).get('.rela.data')!;
  assert.deepEqual(relocsByName(out).get('.rela.data'), before.slice(1));
  assert.equal(sectionRows(out).find((s) => s.name === '.rela.data')!.info, rela.info);
  assertLocalsFirst(out);
});

test('writer: rejects what it cannot edit, with KlpgenError', () => {
  const exe = join(dir, 'exe');
  writeFileSync(join(dir, 'exe.c'), 'int main(void) { return 0; }\n');
  execFileSync(CC, ['-o', exe, join(dir, 'exe.c')]);
  throwsKlpgen(() => ElfWriter.load(readFileSync(exe), 'exe'), /exe: not a relocatable object/);
  throwsKlpgen(
    () => ElfWriter.load(Buffer.from('not elf at all, not elf at all, not elf at all, not elf at all!'), 'x'),
    /not an ELF file/,
  );
  const a = ElfWriter.load(readFileSync(compile('refs')), 'a');
  const b = ElfWriter.load(readFileSync(compile('refs')), 'b');
  throwsKlpgen(() => a.renameSymbol(b.findSymbols('foo')[0]!, 'x'), /does not belong to this object/);
  throwsKlpgen(() => a.renameSymbol(a.symbols[0]!, 'x'), /null symbol/);
  throwsKlpgen(() => a.setSymbolShndx(a.findSymbols('foo')[0]!, 500), /not a section index/);
  throwsKlpgen(() => a.setSectionData(a.sectionByName('.symtab')!, Buffer.alloc(24)), /generated from the symbols/);
  throwsKlpgen(() => a.setSectionData(a.sectionByName('.rela.text')!, Buffer.alloc(23)), /whole number/);
});

// ================================================================ klpConvert

test('klp-convert: foo and bar become .klp.sym.vmlinux.* SHN_LIVEPATCH symbols, their relocations move to .klp.rela.vmlinux.*', () => {
  const file = compile('refs');
  const out = write('refs-klp.o', klpConvert(readFileSync(file), VMLINUX_FOO_BAR, file));

  // Symbols: renamed in place (same index, still GLOBAL NOTYPE), Ndx 0xff20.
  const before = symbolRows(file);
  const after = symbolRows(out);
  assert.equal(after.length, before.length);
  for (const [name, klp] of [
    ['foo', '.klp.sym.vmlinux.foo,0'],
    ['bar', '.klp.sym.vmlinux.bar,0'],
  ]) {
    const b = before.find((s) => s.name === name)!;
    assert.equal(b.ndx, 'UND');
    assert.deepEqual(after[b.num], { num: b.num, type: 'NOTYPE', bind: 'GLOBAL', ndx: 'OS [0xff20]', name: klp });
    assert.ok(!after.some((s) => s.name === name), `${name} is gone`);
  }
  assert.deepEqual(
    after.filter((s) => !s.name.startsWith('.klp.sym.')),
    before.filter((s) => s.name !== 'foo' && s.name !== 'bar'),
  );
  assertLocalsFirst(out);

  // Sections: .klp.rela.vmlinux..text and ..data appended, flags A I o.
  const rows = sectionRows(out);
  const origRows = sectionRows(file);
  assert.deepEqual(
    rows.slice(0, origRows.length).map((r) => r.name),
    origRows.map((r) => r.name),
    'original sections keep their indices',
  );
  const symtab = rows.find((r) => r.name === '.symtab')!;
  const klpText = rows.find((r) => r.name === '.klp.rela.vmlinux..text')!;
  const klpData = rows.find((r) => r.name === '.klp.rela.vmlinux..data')!;
  assert.deepEqual(
    rows.slice(origRows.length).map((r) => r.name),
    ['.klp.rela.vmlinux..text', '.klp.rela.vmlinux..data'],
  );
  for (const [r, target] of [
    [klpText, '.text'],
    [klpData, '.data'],
  ] as const) {
    assert.equal(r.type, 'RELA');
    assert.equal(r.flags, 'AIo');
    assert.equal(r.link, symtab.nr, 'sh_link is .symtab');
    assert.equal(r.info, rows.find((x) => x.name === target)!.nr, `sh_info is ${target}`);
    assert.equal(r.es, 24);
    assert.equal(r.align, 8);
  }
  const elf = parseElf(readFileSync(out), out);
  for (const s of elf.sections.filter((x) => x.name.startsWith('.klp.rela.'))) {
    assert.equal(s.flags, SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH, `raw sh_flags of ${s.name}`);
    assert.equal(s.flags, 0x100042);
  }
  assert.equal(elf.symbols().find((s) => s.name === '.klp.sym.vmlinux.foo,0')!.shndx, SHN_LIVEPATCH);

  // Relocations: those against foo/bar moved (same offset, type, addend), the rest untouched.
  const rb = relocsByName(file);
  const ra = relocsByName(out);
  const klp = (l: string): string => l.replace(/ (foo|bar) /, ' .klp.sym.vmlinux.$1,0 ');
  const isKlp = (l: string): boolean => / (foo|bar) [-+]/.test(l);
  assert.deepEqual(
    ra.get('.rela.text'),
    rb.get('.rela.text')!.filter((l) => !isKlp(l)),
  );
  assert.deepEqual(ra.get('.klp.rela.vmlinux..text'), rb.get('.rela.text')!.filter(isKlp).map(klp));
  assert.equal(ra.get('.klp.rela.vmlinux..text')!.length, 3);
  assert.deepEqual(
    ra.get('.rela.data'),
    rb.get('.rela.data')!.filter((l) => !isKlp(l)),
  );
  assert.deepEqual(ra.get('.klp.rela.vmlinux..data'), rb.get('.rela.data')!.filter(isKlp).map(klp));
  assert.equal(ra.get('.rela.eh_frame')!.join('\n'), rb.get('.rela.eh_frame')!.join('\n'));
  // The non-SHF_ALLOC section's entry stays (the kernel never applies it), now naming the klp symbol.
  assert.deepEqual(ra.get('.rela.klpgen.notes'), rb.get('.rela.klpgen.notes')!.map(klp));
  assert.ok(![...ra.keys()].some((k) => k.includes('klpgen.notes') && k.startsWith('.klp')));

  // objdump still decodes the same code with the remaining relocations. (BFD
  // attaches one SHT_RELA section per target section, so it does not list the
  // .klp.rela.* entries; readelf above does. The same holds for kpatch output.)
  const d = objdump(out);
  const d0 = objdump(file);
  const noRelocs = (s: string): string => s.replace(/\n.*R_X86_64.*/g, '');
  assert.equal(noRelocs(d), noRelocs(d0));
  const relocLines = (s: string): string[] => s.split('\n').filter((l) => l.includes('R_X86_64'));
  assert.deepEqual(
    relocLines(d),
    relocLines(d0).filter((l) => !/\t(foo|bar)[-+]/.test(l)),
  );
  assert.ok(relocLines(d0).some((l) => /R_X86_64_PC32\tfoo-0x4/.test(l)));
});

test('klp-convert: module objects, sympos, and one section per (object, target)', () => {
  const file = compile('refs');
  const out = write(
    'refs-mixed.o',
    klpConvert(
      readFileSync(file),
      [
        { name: 'bar', object: 'ext4', sympos: 2 },
        { name: 'foo', object: 'vmlinux', sympos: 0 },
      ],
      file,
    ),
  );
  const ra = relocsByName(out);
  assert.deepEqual(
    [...ra.keys()].filter((k) => k.startsWith('.klp.')),
    ['.klp.rela.ext4..text', '.klp.rela.vmlinux..text', '.klp.rela.ext4..data', '.klp.rela.vmlinux..data'],
  );
  assert.ok(ra.get('.klp.rela.ext4..text')!.every((l) => l.includes('.klp.sym.ext4.bar,2 ')));
  assert.ok(ra.get('.klp.rela.vmlinux..text')!.every((l) => l.includes('.klp.sym.vmlinux.foo,0 ')));
  assert.equal(klpSymbolName({ name: 'bar', object: 'ext4', sympos: 2 }), '.klp.sym.ext4.bar,2');
  assert.ok(symbolRows(out).some((s) => s.name === '.klp.sym.ext4.bar,2' && s.ndx === 'OS [0xff20]'));
});

test("klp-convert: an export of a module the patched module depends on rides in the patched module's section", () => {
  const file = compile('refs');
  const out = write(
    'refs-dep.o',
    klpConvert(
      readFileSync(file),
      [
        { name: 'bar', object: 'sparse_keymap', sympos: 0, relaObject: 'dell_wmi' },
        { name: 'foo', object: 'dell_wmi', sympos: 0 },
      ],
      file,
    ),
  );
  const ra = relocsByName(out);
  // Resolved when dell_wmi loads (its dependencies are loaded by then): no section of its own.
  assert.deepEqual(
    [...ra.keys()].filter((k) => k.startsWith('.klp.')),
    ['.klp.rela.dell_wmi..text', '.klp.rela.dell_wmi..data'],
  );
  assert.ok(ra.get('.klp.rela.dell_wmi..text')!.some((l) => l.includes('.klp.sym.sparse_keymap.bar,0 ')));
  assert.ok(ra.get('.klp.rela.dell_wmi..text')!.some((l) => l.includes('.klp.sym.dell_wmi.foo,0 ')));
});

test('klp-convert: with -ffunction-sections each function gets its own .klp.rela.vmlinux..text.<fn>', () => {
  const file = compile('refs', [...KERNEL_FLAGS, '-ffunction-sections', '-g']);
  const out = write('refs-fs.o', klpConvert(readFileSync(file), VMLINUX_FOO_BAR, file));
  const rows = sectionRows(out);
  for (const fn of ['use_foo', 'use_bar']) {
    const r = rows.find((x) => x.name === `.klp.rela.vmlinux..text.${fn}`)!;
    assert.ok(r, `.klp.rela.vmlinux..text.${fn}`);
    assert.equal(r.info, rows.find((x) => x.name === `.text.${fn}`)!.nr);
    assert.equal(r.flags, 'AIo');
  }
  // Debug info is not SHF_ALLOC: nothing moves out of .rela.debug_*.
  assert.ok(!rows.some((r) => r.name.startsWith('.klp.rela.') && r.name.includes('debug')));
  assert.deepEqual(relocsByName(out).get('.rela.debug_info'), relocsByName(file).get('.rela.debug_info'));
  assertLocalsFirst(out);
  objdump(out);
});

test('klp-convert: references the kernel uses at load time cannot be deferred to a module object', () => {
  const file = compile('special');
  const ko = readFileSync(file);
  throwsKlpgen(
    () => klpConvert(ko, [{ name: 'bar', object: 'ext4', sympos: 0 }], 'special.ko'),
    /special\.ko: relocation R_X86_64_64 at __jump_table\+0x8 against bar \(ext4\) cannot be a livepatch relocation: __jump_table is used while the livepatch module loads/,
  );
  // Without the jump table, the init-code reference is refused too.
  const w = ElfWriter.load(ko, file);
  w.setRelocations(w.sectionByName('.rela__jump_table')!, []);
  throwsKlpgen(
    () => klpConvert(w.serialize(), [{ name: 'bar', object: 'ext4', sympos: 0 }], 'special.ko'),
    /at \.init\.text\+0x5 against bar \(ext4\) cannot be a livepatch relocation: \.init\.text is freed after the module's init/,
  );
  // vmlinux relocations are applied with the ordinary ones, before any of that: fine.
  const out = write('special-klp.o', klpConvert(ko, [{ name: 'bar', object: 'vmlinux', sympos: 0 }], file));
  const ra = relocsByName(out);
  assert.deepEqual(ra.get('.klp.rela.vmlinux.__jump_table'), [
    '0000000000000008 R_X86_64_64 .klp.sym.vmlinux.bar,0 + 0',
  ]);
  assert.equal(ra.get('.klp.rela.vmlinux..init.text')!.length, 1);
  // The emptied .rela__jump_table stays (sections keep their indices), with size 0.
  assert.equal(ra.get('.rela__jump_table'), undefined, 'readelf lists no empty relocation section');
  assert.equal(parseElf(readFileSync(out)).sectionByName('.rela__jump_table')?.size, 0);
});

test('klp-convert: errors the user can act on', () => {
  const file = compile('refs');
  const ko = readFileSync(file);
  const cases: [KlpExternal[], RegExp][] = [
    [
      [{ name: 'use_foo', object: 'vmlinux', sympos: 0 }],
      /external symbol use_foo is defined in the module, not an undefined reference/,
    ],
    [
      [{ name: 'nosuch', object: 'vmlinux', sympos: 0 }],
      /external symbol nosuch is not an undefined symbol of the module/,
    ],
    [[{ name: 'foo', object: 'my.mod', sympos: 0 }], /object "my\.mod" must be "vmlinux" or a module name/],
    [[{ name: 'foo', object: '', sympos: 0 }], /object "" must be/],
    [[{ name: 'foo', object: 'my-mod', sympos: 0 }], /use the kernel's module name, with '_' instead of '-'/],
    [[{ name: 'foo', object: 'vmlinux', sympos: -1 }], /sympos -1 is not a non-negative integer/],
    [[{ name: 'foo', object: 'vmlinux', sympos: 1.5 }], /sympos 1\.5/],
    [[{ name: 'fo,o', object: 'vmlinux', sympos: 0 }], /without ','/],
    [[{ name: '', object: 'vmlinux', sympos: 0 }], /empty name/],
    [[VMLINUX_FOO_BAR[0]!, { name: 'foo', object: 'ext4', sympos: 0 }], /external symbol foo is listed twice/],
  ];
  for (const [ext, msg] of cases) throwsKlpgen(() => klpConvert(ko, ext, 'refs.ko'), msg);

  // Not a livepatch module: no livepatch=Y in .modinfo.
  const plain = join(dir, 'plain.c');
  writeFileSync(
    plain,
    'extern int foo;\nint f(void) { return foo; }\n' +
      'static const char mi[] __attribute__((used, section(".modinfo"), aligned(1))) = "license=GPL";\n',
  );
  execFileSync(CC, [...KERNEL_FLAGS, '-o', join(dir, 'plain.o'), plain]);
  throwsKlpgen(
    () => klpConvert(readFileSync(join(dir, 'plain.o')), VMLINUX_FOO_BAR.slice(0, 1), 'plain.ko'),
    /^plain\.ko: not a livepatch module \(its \.modinfo has no livepatch=Y\)$/,
  );
  throwsKlpgen(
    () => klpConvert(Buffer.concat([ko, Buffer.from('~Module signature appended~\n')]), VMLINUX_FOO_BAR, 'signed.ko'),
    /signed\.ko: is signed; run klp-convert before signing/,
  );
  // Already converted: foo is no longer an undefined symbol.
  const once = klpConvert(ko, VMLINUX_FOO_BAR, 'refs.ko');
  throwsKlpgen(() => klpConvert(once, VMLINUX_FOO_BAR, 'refs.ko'), /external symbol foo is not an undefined symbol/);
});

test("klp-convert: deterministic, independent of the externals' order, and incremental conversion merges sections", () => {
  const ko = readFileSync(compile('refs'));
  const a = klpConvert(ko, VMLINUX_FOO_BAR);
  assert.ok(a.equals(klpConvert(ko, VMLINUX_FOO_BAR)));
  assert.ok(a.equals(klpConvert(ko, [...VMLINUX_FOO_BAR].reverse())));
  assert.ok(klpConvert(ko, []).equals(ko), 'no externals: nothing changes');

  const twoSteps = write('refs-2step.o', klpConvert(klpConvert(ko, [VMLINUX_FOO_BAR[0]!]), [VMLINUX_FOO_BAR[1]!]));
  const oneStep = write('refs-1step.o', a);
  const sorted = (m: Map<string, string[]>): [string, string[]][] =>
    [...m].map(([k, v]) => [k, [...v].sort()] as [string, string[]]).sort();
  assert.deepEqual(sorted(relocsByName(twoSteps)), sorted(relocsByName(oneStep)));
  assert.equal(sectionRows(twoSteps).filter((r) => r.name === '.klp.rela.vmlinux..text').length, 1);
  const elf = parseElf(readFileSync(twoSteps));
  assert.ok(
    elf.sections
      .filter((s) => s.name.startsWith('.klp.rela.'))
      .every((s) => s.type === SHT_RELA && s.flags === 0x100042),
  );
});
