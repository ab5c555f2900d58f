import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ObjectBuilder } from '../../src/elf/build.js';
import {
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHT_NOBITS,
  SHT_PROGBITS,
  STB_GLOBAL,
  STB_LOCAL,
  STT_FUNC,
  STT_NOTYPE,
  parseElf,
} from '../../src/elf/elf64.js';
import { tempDir } from '../helpers.js';

function sample(): Buffer {
  const b = new ObjectBuilder();
  const text = b.addSection({
    name: '.text.f',
    type: SHT_PROGBITS,
    flags: SHF_ALLOC | SHF_EXECINSTR,
    addralign: 16,
    data: Buffer.from([0xe8, 0, 0, 0, 0, 0xc3]),
  });
  b.addSection({ name: '.bss.x', type: SHT_NOBITS, flags: SHF_ALLOC | 1, addralign: 8, size: 8 });
  const ext = b.addSymbol({ name: 'g', bind: STB_GLOBAL, type: STT_NOTYPE });
  b.addSymbol({ name: 'f', bind: STB_GLOBAL, type: STT_FUNC, section: text, value: 0n, size: 6n });
  b.addSymbol({ name: 'f.cold', bind: STB_LOCAL, type: STT_FUNC, section: text, value: 5n, size: 1n });
  b.addReloc(text, { offset: 1, type: 4, symbol: ext, addend: -4n });
  return b.serialize();
}

test('elf build: sections, symbols (locals first) and relocations read back', () => {
  const elf = parseElf(sample(), 'built');
  assert.deepEqual(
    elf.sections.map((s) => s.name),
    ['', '.text.f', '.bss.x', '.rela.text.f', '.symtab', '.strtab', '.shstrtab'],
  );
  const syms = elf.symbols();
  const firstGlobal = syms.findIndex((s) => s.bind !== STB_LOCAL);
  assert.ok(
    syms.slice(firstGlobal).every((s) => s.bind !== STB_LOCAL),
    'locals first',
  );
  assert.equal(elf.sections.find((s) => s.name === '.symtab')?.info, firstGlobal);
  const [rs] = elf.relocations();
  assert.equal(rs?.target?.name, '.text.f');
  assert.equal(rs?.entries[0]?.symbol?.name, 'g');
  assert.equal(rs?.entries[0]?.addend, -4n);
  assert.equal(syms.find((s) => s.name === 'f.cold')?.section, '.text.f');
});

test('elf build: the same parts give the same bytes, and binutils links the object', () => {
  assert.ok(sample().equals(sample()));
  const dir = tempDir('elf-build');
  const o = join(dir, 'a.o');
  writeFileSync(o, sample());
  const ld = spawnSync('ld', ['-r', '-o', join(dir, 'b.o'), o], { encoding: 'utf8' });
  assert.equal(ld.status, 0, ld.stderr);
  const re = spawnSync('readelf', ['-W', '-r', o], { encoding: 'utf8' });
  assert.match(re.stdout, /R_X86_64_PLT32\s+0+ g - 4/);
});

test('elf build: a relocation outside its section is an error, not a bad object', () => {
  const b = new ObjectBuilder();
  const s = b.addSection({ name: '.text', type: SHT_PROGBITS, flags: SHF_ALLOC, addralign: 1, data: Buffer.alloc(4) });
  assert.throws(
    () => b.addReloc(s, { offset: 8, type: 2, symbol: b.sectionSymbol(s), addend: 0n }),
    /outside the section/,
  );
});
