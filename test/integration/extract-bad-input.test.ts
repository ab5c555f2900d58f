import { strict as assert } from 'node:assert';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readObjectCode, type ObjectCode } from '../../src/analyze/objdiff.js';
import type { CreateReport } from '../../src/create/create.js';
import {
  R_X86_64_64,
  R_X86_64_REX_GOTPCRELX,
  SHF_ALLOC,
  SHF_INFO_LINK,
  SHT_PROGBITS,
  SHT_RELA,
  parseElf,
  type ElfFile,
  type ElfSection,
} from '../../src/elf/elf64.js';
import { ElfWriter } from '../../src/elf/writer.js';
import { ADDRESS_PREFIX, TARGET_MODULE } from '../../src/emit/text.js';
import { extractFunctions, type ExtractRefusal, type ExtractResult } from '../../src/extract/extract.js';
import { KlpgenError } from '../../src/util/errors.js';
import { verify } from '../../src/verify/verify.js';
import { ROOT, abiArgs, ensureTarget, klpgen, tempDir } from '../helpers.js';

/**
 * Bad inputs to extraction and to the commands that read objects: a corrupt or truncated
 * object, an unknown relocation type, a section klpgen does not know. Each is a one-line
 * KlpgenError naming the file, or a typed refusal (create then compiles the emitted C), never
 * another exception and never a module made of garbage.
 *
 * The object is the real one create extracts from: the special-sections fixture's patched
 * build after Kbuild's objtool run (W/4-extract/fs_proc_version/patched.o), with the input
 * create gives extractFunctions.
 */
const PATCH = join(ROOT, 'test/fixtures/patches/special-sections.patch');
const FN = 'version_proc_show';

let dir = '';
let work = '';
let ko = '';
let processed = '';
let base: Buffer;
let original: ObjectCode;
let codeChanged: Set<string>;
let installs: { symbol: string; as: string }[];
/** The source name of every mutated copy: errors must name it. */
let bad = '';

before(() => {
  ensureTarget();
  dir = tempDir('extract-bad');
  work = join(dir, 'work');
  ko = join(dir, 'special.ko');
  const c = klpgen(['create', PATCH, '--name', 'special', '-o', ko, '--work-dir', work, '--json', ...abiArgs()]);
  assert.equal(c.code, 0, c.stderr);
  const r = JSON.parse(c.stdout) as CreateReport;
  assert.equal(r.code[0]?.how, 'extracted', JSON.stringify(r.code));
  processed = join(work, '4-extract', 'fs_proc_version', 'patched.o');
  base = readFileSync(processed);
  const orig = join(work, '2-objects', 'fs_proc_version', 'original', 'version.o');
  original = readObjectCode(parseElf(readFileSync(orig), orig));
  // As create's extraction stage: the changed functions of the analysis, the installs of the emission.
  const analysis = JSON.parse(readFileSync(join(work, '3-analysis', 'analysis.json'), 'utf8')) as {
    tus: { codeChanged: { name: string }[] }[];
  };
  codeChanged = new Set(analysis.tus.flatMap((t) => t.codeChanged.map((x) => x.name)));
  installs = r.emitted.copied.filter((f) => f.why === 'replaced').map((f) => ({ symbol: f.name, as: f.as }));
  assert.deepEqual(installs, [{ symbol: FN, as: `livepatch_${FN}` }]);
  bad = join(dir, 'mutated-patched.o');
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function extract(object: Buffer): ExtractResult {
  writeFileSync(bad, object); // for a look when a case fails
  return extractFunctions({
    object,
    source: bad,
    original,
    codeChanged,
    installs,
    provides: [],
    isModule: false,
    thisModule: TARGET_MODULE,
    kernelPrefix: ADDRESS_PREFIX,
  });
}

type Outcome =
  | { kind: 'ok' }
  | { kind: 'refusal'; refusal: ExtractRefusal }
  | { kind: 'error'; message: string }
  | { kind: 'other'; error: unknown };

/** What extraction made of `object`; an ok result must be a well-formed object with the function. */
function outcome(object: Buffer): Outcome {
  let r: ExtractResult;
  try {
    r = extract(object);
  } catch (e) {
    return e instanceof KlpgenError ? { kind: 'error', message: e.message } : { kind: 'other', error: e };
  }
  if (!r.ok) return { kind: 'refusal', refusal: r.refusal };
  try {
    const out = parseElf(r.object, 'extracted');
    const syms = out.symbols();
    for (const rs of out.relocations()) void rs.entries;
    if (!syms.some((s) => s.name === `livepatch_${FN}`))
      return { kind: 'other', error: new Error('ok without the function') };
  } catch (e) {
    return { kind: 'other', error: new Error(`ok, but the extracted object does not parse: ${String(e)}`) };
  }
  return { kind: 'ok' };
}

function show(o: Outcome): string {
  if (o.kind === 'other') return o.error instanceof Error ? (o.error.stack ?? o.error.message) : String(o.error);
  return JSON.stringify(o);
}

/** A one-line KlpgenError naming the mutated file: `FILE: corrupt ELF object: ...` unless `pattern` says otherwise. */
function expectError(object: Buffer, pattern: RegExp, what: string): void {
  const o = outcome(object);
  assert.equal(o.kind, 'error', `${what}: ${show(o)}`);
  const message = (o as { message: string }).message;
  assert.ok(!message.includes('\n'), `${what}: not one line: ${message}`);
  assert.ok(message.startsWith(`${bad}: `), `${what}: does not name the file: ${message}`);
  assert.match(message, pattern, what);
}

const CORRUPT = (detail: string) => new RegExp(`: corrupt ELF object: .*${detail}`);

function elf(): ElfFile {
  return parseElf(base, processed);
}

function section(e: ElfFile, name: string): ElfSection {
  const s = e.sectionByName(name);
  assert.ok(s, `${name} in ${processed}`);
  return s;
}

/** Position of section `i`'s header in the file. */
function shdr(i: number): number {
  return Number(base.readBigUInt64LE(40)) + i * 64;
}

function mutate(edit: (b: Buffer) => void): Buffer {
  const b = Buffer.from(base);
  edit(b);
  return b;
}

test('extract-bad-input: the unmutated object extracts', () => {
  const o = outcome(base);
  assert.equal(o.kind, 'ok', show(o));
});

test('extract-bad-input: a truncated object is a one-line error naming the file', () => {
  const e = elf();
  const shoff = Number(base.readBigUInt64LE(40));
  const text = section(e, `.text.${FN}`);
  const symtab = section(e, '.symtab');
  const cuts: [number, RegExp, string][] = [
    [0, /not an ELF file/, 'empty'],
    [3, /not an ELF file/, 'inside the magic'],
    [20, CORRUPT('truncated ELF header'), 'inside the ELF header'],
    [63, CORRUPT('truncated ELF header'), 'one byte short of the ELF header'],
    [text.offset + 10, CORRUPT('beyond end of file'), `inside ${text.name}`],
    [symtab.offset + 30, CORRUPT('beyond end of file'), 'inside the symbol table'],
    [shoff, CORRUPT('beyond end of file'), 'at the section header table'],
    [shoff + 5 * 64 + 10, CORRUPT('beyond end of file'), 'inside the section headers'],
    [base.length - 1, CORRUPT('beyond end of file'), 'one byte short'],
  ];
  for (const [len, pattern, what] of cuts)
    expectError(base.subarray(0, len), pattern, `truncated ${what} (${len} bytes)`);

  // Data cut short but the section headers intact (moved up to the cut): the sections past the cut end
  // beyond the file, or read the headers as their bytes; either way the object is corrupt.
  for (const [len, what] of [
    [text.offset + 10, text.name],
    [symtab.offset + 30, '.symtab'],
  ] as const) {
    const headers = base.subarray(shoff, shoff + base.readUInt16LE(60) * 64);
    const at = (len + 7) & ~7;
    const b = Buffer.concat([base.subarray(0, len), Buffer.alloc(at - len), headers]);
    b.writeBigUInt64LE(BigInt(at), 40);
    expectError(b, CORRUPT(''), `data cut inside ${what}, headers kept`);
  }
});

test('extract-bad-input: corrupt headers, symbols, strings and relocations are one-line errors', () => {
  const e = elf();
  const text = section(e, `.text.${FN}`);
  const symtab = section(e, '.symtab');
  const strtab = section(e, '.strtab');
  const rela = section(e, `.rela.text.${FN}`);
  const fn = e.symbols().find((s) => s.name === FN);
  assert.ok(fn);
  const sym = (i: number) => symtab.offset + i * 24;
  const cases: [string, (b: Buffer) => void, RegExp][] = [
    [
      'e_shoff past EOF',
      (b) => b.writeBigUInt64LE(BigInt(b.length + 64), 40),
      CORRUPT('section header table offset .* beyond end of file'),
    ],
    ['e_shoff 2^63', (b) => b.writeBigUInt64LE(1n << 63n, 40), CORRUPT('beyond end of file')],
    ['e_shnum 0xffff', (b) => b.writeUInt16LE(0xffff, 60), CORRUPT('section header table .* beyond end of file')],
    ['e_shentsize 32', (b) => b.writeUInt16LE(32, 58), CORRUPT('section header size 32')],
    ['e_shstrndx out of range', (b) => b.writeUInt16LE(0xfe00, 62), CORRUPT('section name table index')],
    ['e_shstrndx not a string table', (b) => b.writeUInt16LE(text.index, 62), CORRUPT('section name table index')],
    [
      'sh_offset+sh_size past EOF',
      (b) => b.writeBigUInt64LE(BigInt(base.length), shdr(text.index) + 32),
      CORRUPT(`section ${text.index} .*extends beyond end of file`),
    ],
    [
      'sh_offset 2^60',
      (b) => b.writeBigUInt64LE(1n << 60n, shdr(symtab.index) + 24),
      CORRUPT(`section ${symtab.index} offset 0x1000000000000000 is out of range`),
    ],
    [
      'sh_size 2^64-1',
      (b) => b.writeBigUInt64LE(2n ** 64n - 1n, shdr(text.index) + 32),
      CORRUPT('size .* out of range'),
    ],
    [
      'sh_addralign 3',
      (b) => b.writeBigUInt64LE(3n, shdr(text.index) + 48),
      CORRUPT('alignment 0x3 is not a power of two'),
    ],
    ['sh_addralign 2^40', (b) => b.writeBigUInt64LE(1n << 40n, shdr(text.index) + 48), CORRUPT('alignment')],
    [
      '.symtab sh_link out of range',
      (b) => b.writeUInt32LE(999, shdr(symtab.index) + 40),
      CORRUPT('invalid string table 999'),
    ],
    [
      '.symtab sh_link not a string table',
      (b) => b.writeUInt32LE(text.index, shdr(symtab.index) + 40),
      CORRUPT('invalid string table'),
    ],
    ['.symtab sh_entsize 7', (b) => b.writeBigUInt64LE(7n, shdr(symtab.index) + 56), CORRUPT('entry size 7')],
    [
      '.rela sh_link out of range',
      (b) => b.writeUInt32LE(999, shdr(rela.index) + 40),
      CORRUPT('invalid symbol table 999'),
    ],
    ['.rela sh_info out of range', (b) => b.writeUInt32LE(999, shdr(rela.index) + 44), CORRUPT('missing section 999')],
    ['.rela sh_info 0', (b) => b.writeUInt32LE(0, shdr(rela.index) + 44), CORRUPT('applies to no section')],
    ['sh_name out of range', (b) => b.writeUInt32LE(0xffffff, shdr(text.index)), CORRUPT('string offset 16777215')],
    [
      'symbol st_shndx out of range',
      (b) => b.writeUInt16LE(0xfe00, sym(fn.index) + 6),
      CORRUPT(`symbol ${fn.index} .*missing section 65024`),
    ],
    [
      'symbol st_shndx SHN_XINDEX without .symtab_shndx',
      (b) => b.writeUInt16LE(0xffff, sym(fn.index) + 6),
      CORRUPT('extended section index'),
    ],
    ['symbol st_name out of range', (b) => b.writeUInt32LE(0xffffff, sym(fn.index)), CORRUPT('string offset 16777215')],
    [
      'symbol st_value past its section',
      (b) => b.writeBigUInt64LE(BigInt(text.size + 16), sym(fn.index) + 8),
      CORRUPT(`symbol ${FN} .*outside its section`),
    ],
    [
      'symbol st_size past its section',
      (b) => b.writeBigUInt64LE(BigInt(text.size + 1), sym(fn.index) + 16),
      CORRUPT(`symbol ${FN} .*outside its section`),
    ],
    [
      '.strtab cut short',
      (b) => b.writeBigUInt64LE(BigInt(strtab.size - 3), shdr(strtab.index) + 32),
      CORRUPT('string'),
    ],
    [
      '.strtab last NUL overwritten',
      (b) => b.writeUInt8(0x41, strtab.offset + strtab.size - 1),
      CORRUPT('unterminated string'),
    ],
    [
      'relocation symbol index out of range',
      (b) => b.writeUInt32LE(0xffffff, rela.offset + 12),
      CORRUPT('missing symbol 16777215'),
    ],
    [
      'relocation offset past its section',
      (b) => b.writeBigUInt64LE(BigInt(text.size), rela.offset),
      CORRUPT(`relocation 0 in ${rela.name.replace(/\./g, '\\.')} .*lies outside`),
    ],
    [
      'relocation offset 2^63',
      (b) => b.writeBigUInt64LE(1n << 63n, rela.offset + 24),
      CORRUPT(`relocation 1 in .*lies outside`),
    ],
  ];
  for (const [what, edit, pattern] of cases) expectError(mutate(edit), pattern, what);
});

test('extract-bad-input: an unknown relocation type in the function is a refusal naming it', () => {
  for (const type of [99, R_X86_64_REX_GOTPCRELX]) {
    const w = ElfWriter.load(base, processed);
    const rela = w.sectionByName(`.rela.text.${FN}`)!;
    const entries = w.relocations(rela).map((r, i) => (i === 2 ? { ...r, type } : r));
    w.setRelocations(rela, entries);
    const o = outcome(w.serialize());
    assert.equal(o.kind, 'refusal', show(o));
    const r = (o as { refusal: ExtractRefusal }).refusal;
    assert.equal(r.kind, 'unknown-relocation');
    assert.equal(r.subject, FN);
    assert.match(
      r.reason,
      new RegExp(
        `relocation type ${type === 99 ? 'R_X86_64_UNKNOWN_99' : 'R_X86_64_REX_GOTPCRELX'} in ${FN} at \\.text\\.${FN}\\+0x[0-9a-f]+$`,
      ),
    );
  }
});

test('extract-bad-input: a section klpgen does not know that refers to the function is a refusal naming it', () => {
  const withSection = (toFunction: boolean): Outcome => {
    const w = ElfWriter.load(base, processed);
    const target = w.findSymbols(FN)[0]!;
    const other = w.findSymbols('linux_proc_banner')[0] ?? w.symbols.find((s) => s.name !== '' && s.shndx === 0)!;
    const sec = w.addSection({
      name: '.klpgen_unknown',
      type: SHT_PROGBITS,
      flags: SHF_ALLOC,
      addralign: 8,
      data: Buffer.alloc(16),
    });
    w.addSection({
      name: '.rela.klpgen_unknown',
      type: SHT_RELA,
      flags: SHF_INFO_LINK,
      link: w.symtab!.index,
      info: sec.index,
      addralign: 8,
      entsize: 24,
      relocations: [{ offset: 8n, type: R_X86_64_64, symbol: toFunction ? target : other, addend: 0n }],
    });
    return outcome(w.serialize());
  };
  const o = withSection(true);
  assert.equal(o.kind, 'refusal', show(o));
  const r = (o as { refusal: ExtractRefusal }).refusal;
  assert.equal(r.kind, 'unknown-section');
  assert.equal(r.subject, '.klpgen_unknown');
  assert.match(r.reason, new RegExp(`section \\.klpgen_unknown holds entries for ${FN}`));
  // One that refers to nothing the module carries needs nothing of it.
  const unrelated = withSection(false);
  assert.equal(unrelated.kind, 'ok', show(unrelated));
});

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

test('extract-bad-input: 300 seeded random corruptions of the ELF and section headers', () => {
  const start = Date.now();
  const shoff = Number(base.readBigUInt64LE(40));
  const shnum = base.readUInt16LE(60);
  const counts = { ok: 0, refusal: 0, error: 0, other: 0 };
  const others: string[] = [];
  for (let seed = 1; seed <= 300; seed++) {
    const rnd = generator(seed);
    const b = Buffer.from(base);
    const edits: string[] = [];
    for (let n = 1 + (rnd() % 3), k = 0; k < n; k++) {
      // A quarter in the ELF header, the rest in the section header table.
      const inEhdr = rnd() % 4 === 0;
      const pos = inEhdr ? rnd() % 64 : shoff + (rnd() % (shnum * 64));
      const len = rnd() % 3 === 0 ? 1 + (rnd() % 8) : 1;
      for (let i = 0; i < len && pos + i < b.length; i++) b[pos + i] = rnd() & 0xff;
      edits.push(`${len}@0x${pos.toString(16)}`);
    }
    const o = outcome(b);
    counts[o.kind]++;
    const where = `seed ${seed} (${edits.join(' ')})`;
    if (o.kind === 'other') others.push(`${where}: ${show(o).split('\n').slice(0, 3).join(' | ')}`);
    if (o.kind === 'error' && (o.message.includes('\n') || !o.message.startsWith(`${bad}: `))) {
      others.push(`${where}: not one line naming the file: ${o.message}`);
    }
  }
  const seconds = (Date.now() - start) / 1000;
  assert.deepEqual(others, [], JSON.stringify(counts));
  assert.equal(counts.other, 0);
  assert.ok(counts.error > 100, `most corruptions are detected: ${JSON.stringify(counts)}`);
  assert.ok(seconds < 30, `${seconds} s`);
});

test('extract-bad-input: verify on a corrupt, truncated or non-ELF module object is a one-line error naming it', () => {
  const obj = join(work, '5-kmod', 'special.o');
  const patched = join(work, '2-objects', 'fs_proc_version', 'patched', 'version.o');
  const module = readFileSync(obj);
  const file = join(dir, 'bad-module.o');
  const check = () =>
    verify({
      moduleObject: file,
      patchedObject: patched,
      patchedProcessed: processed,
      functions: new Map([[`livepatch_${FN}`, FN]]),
      codeChanged: [FN],
      replaced: new Set([FN]),
      coveredByCallers: new Set(),
    });
  writeFileSync(file, module);
  assert.equal(check().status, 'passed', 'the unmutated module object verifies');
  const shoff = Number(module.readBigUInt64LE(40));
  const bads: [string, Buffer, RegExp][] = [
    ['non-ELF', Buffer.from('obj-m += special.o\n'), /not an ELF file/],
    ['truncated', module.subarray(0, Math.floor(module.length / 2)), CORRUPT('beyond end of file')],
    ['truncated header', module.subarray(0, 40), CORRUPT('truncated ELF header')],
    [
      'e_shoff past EOF',
      (() => {
        const b = Buffer.from(module);
        b.writeBigUInt64LE(BigInt(b.length * 2), 40);
        return b;
      })(),
      CORRUPT('beyond end of file'),
    ],
    [
      'a section past EOF',
      (() => {
        const b = Buffer.from(module);
        b.writeBigUInt64LE(BigInt(b.length), shoff + 64 + 32);
        return b;
      })(),
      CORRUPT('extends beyond end of file'),
    ],
  ];
  for (const [what, b, pattern] of bads) {
    writeFileSync(file, b);
    assert.throws(check, (e: unknown) => {
      assert.ok(e instanceof KlpgenError, `${what}: ${e instanceof Error ? e.stack : String(e)}`);
      assert.ok(!e.message.includes('\n') && e.message.startsWith(`${file}: `), `${what}: ${e.message}`);
      assert.match(e.message, pattern, what);
      return true;
    });
  }
  // Random corruption of headers, symbols and relocations: verify returns or is a KlpgenError.
  const e = parseElf(module, obj);
  const regions = e.sections.filter((s) => s.size > 0 && /^\.(symtab|strtab|rela)/.test(s.name));
  const others: string[] = [];
  for (let seed = 1; seed <= 150; seed++) {
    const rnd = generator(1000 + seed);
    const b = Buffer.from(module);
    for (let n = 1 + (rnd() % 3), k = 0; k < n; k++) {
      const r = rnd() % (regions.length + 1);
      const reg = regions[r];
      b[reg ? reg.offset + (rnd() % reg.size) : rnd() % 2 ? rnd() % 64 : shoff + (rnd() % (e.sections.length * 64))] =
        rnd() & 0xff;
    }
    writeFileSync(file, b);
    try {
      check();
    } catch (x) {
      if (!(x instanceof KlpgenError) || x.message.includes('\n'))
        others.push(`seed ${seed}: ${x instanceof Error ? x.stack : String(x)}`);
    }
  }
  assert.deepEqual(others, []);
});

test('extract-bad-input: vm-test on a corrupt, truncated or non-ELF module: one line, no module, no VM', () => {
  const good = readFileSync(ko);
  const cases: [string, Buffer][] = [
    ['nonelf.ko', Buffer.from('not a module at all\n')],
    ['empty.ko', Buffer.alloc(0)],
    ['truncated.ko', good.subarray(0, 4096)],
    [
      'shoff.ko',
      (() => {
        const b = Buffer.from(good);
        b.writeBigUInt64LE(BigInt(b.length + 1), 40);
        return b;
      })(),
    ],
    [
      // .modinfo is all vm-test reads of a module: its section header is what is damaged.
      'modinfo.ko',
      (() => {
        const b = Buffer.from(good);
        const mi = parseElf(good, ko).sectionByName('.modinfo')!;
        b.writeBigUInt64LE(BigInt(good.length), Number(b.readBigUInt64LE(40)) + mi.index * 64 + 24);
        return b;
      })(),
    ],
  ];
  for (const [name, data] of cases) {
    const file = join(dir, name);
    writeFileSync(file, data);
    const r = klpgen(['vm-test', file, ...abiArgs()], { timeoutMs: 120_000 });
    assert.notEqual(r.code, 0, `${name}: ${r.stdout}`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `${name}: ${r.stderr}`);
    assert.match(lines[0] as string, new RegExp(`^klpgen: error: ${file.replace(/[.]/g, '\\.')}: `), name);
    assert.doesNotMatch(r.stderr, /\n\s+at /, name);
  }
});
