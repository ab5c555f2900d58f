import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { disassemble, register64, usesAt } from '../../src/analyze/data-escape.js';
import { dataSymbol, readersOf } from '../../src/analyze/data-refs.js';
import { parseElf } from '../../src/elf/elf64.js';
import { tempDir } from '../helpers.js';

/**
 * Where the readers of a constant put its address, on real gcc-12 code with the kernel's
 * code model: a stored address (directly, through a register, a conditional move or a
 * stack spill) is what makes a changed table unsafe to carry in the module.
 */
const SOURCE = `
static const int table[4] = { 1, 2, 3, 4 };
struct holder { const int *p; long n; };
extern int use(const int *);
extern void sink(long);

void store_direct(struct holder *h) { h->p = table; }
void store_chosen(struct holder *h, int c) { const int *p = table; if (c) p = 0; h->p = p; }
void store_element(struct holder *h, int i) { h->p = &table[i & 3]; }
int pass_on(void) { return use(table); }
int pass_then_read(int i) { int r = use(table); return r + table[i & 3]; }
int read_only(int i) { return table[i & 3]; }
long scan(void) { long s = 0; for (const int *p = table; p < table + 4; p++) s += *p; sink(s); return s; }
`;

async function uses(): Promise<Map<string, string[]>> {
  const dir = tempDir('data-escape');
  const c = join(dir, 'e.c');
  const o = join(dir, 'e.o');
  writeFileSync(c, SOURCE);
  execFileSync('gcc-12', [
    '-O2',
    '-mcmodel=kernel',
    '-fno-pic',
    '-ffunction-sections',
    '-fdata-sections',
    '-c',
    c,
    '-o',
    o,
  ]);
  const elf = parseElf(readFileSync(o), o);
  const sym = dataSymbol(elf, 'table');
  assert.ok(sym);
  const readers = readersOf(elf, sym);
  const code = await disassemble(o, [...new Set(readers.map((r) => r.section))]);
  const out = new Map<string, string[]>();
  for (const r of readers) {
    assert.equal(r.kind, 'function', `${r.name} is a function`);
    out.set(
      r.name,
      [
        ...new Set(
          usesAt(code.get(r.section) ?? [], r.offsets).map((u) => (u.callee ? `${u.kind}:${u.callee}` : u.kind)),
        ),
      ].sort(),
    );
  }
  return out;
}

test('data escape: stored, passed and read addresses of a constant, as gcc-12 compiles them', async () => {
  const u = await uses();
  assert.deepEqual(u.get('store_direct'), ['stored']);
  assert.deepEqual(u.get('store_chosen'), ['stored']);
  assert.deepEqual(u.get('store_element'), ['stored']);
  assert.deepEqual(u.get('pass_on'), ['passed:use']);
  assert.deepEqual(u.get('pass_then_read'), ['passed:use', 'read']);
  assert.deepEqual(u.get('read_only'), ['read']);
  // A loop pointer compared and dereferenced, never stored: only the sum leaves.
  assert.ok(!(u.get('scan') ?? []).includes('stored'), JSON.stringify(u.get('scan')));
});

test('data escape: register names fold to their 64-bit register', () => {
  assert.equal(register64('%eax'), 'rax');
  assert.equal(register64('%al'), 'rax');
  assert.equal(register64('%r8d'), 'r8');
  assert.equal(register64('%sil'), 'rsi');
  assert.equal(register64('%rbp'), 'rbp');
  assert.equal(register64('0x8(%rax)'), undefined);
  assert.equal(register64('$0x0'), undefined);
});
