import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { deadAfterTransition } from '../../src/analyze/analyze.js';
import type { DataObject, FunctionCode, NormalizedReloc, ObjectCode } from '../../src/analyze/objdiff.js';

/** A function of 16 bytes: `call __fentry__` at 0, then one instruction (opcode) referring to each target. */
function fn(
  name: string,
  refs: { to: string; op?: number }[] = [],
  bind: FunctionCode['bind'] = 'local',
): FunctionCode {
  const bytes = Buffer.alloc(5 + refs.length * 5, 0x90);
  bytes[0] = 0xe8;
  const relocs: NormalizedReloc[] = [
    { offset: 1, type: 'R_X86_64_PLT32', target: '__fentry__', addend: -4n, raw: '__fentry__' },
  ];
  refs.forEach((r, i) => {
    bytes[5 + i * 5] = r.op ?? 0xe8;
    relocs.push({ offset: 6 + i * 5, type: 'R_X86_64_PC32', target: r.to, addend: -4n, raw: r.to });
  });
  return { name, section: `.text.${name}`, sectionIndex: 0, offset: 0, bind, size: bytes.length, bytes, relocs };
}
const object = (fs: FunctionCode[], data: ObjectCode['data'] = new Map()): ObjectCode => ({
  functions: new Map(fs.map((f) => [f.name, f])),
  data,
  sectionSizes: new Map(),
});
const callersIn = (o: ObjectCode) => (name: string) =>
  [...o.functions.values()]
    .filter((f) => f.name !== name && f.relocs.some((r) => r.target === name))
    .map((f) => f.name);

test('dead after transition: a helper the patched build only calls as a clone, whose running copy only a clone of replaced callers calls', () => {
  // Running kernel: a() and b() call find.constprop.0, which calls helper.
  const orig = object([
    fn('a', [{ to: 'find.constprop.0' }]),
    fn('b', [{ to: 'find.constprop.0' }]),
    fn('find.constprop.0', [{ to: 'helper' }]),
    fn('helper'),
  ]);
  // Patched build: helper exists only as helper.isra.0 (and a split piece), called by the new clone.
  const patched = object([
    fn('a'),
    fn('b'),
    fn('find.constprop.0', [{ to: 'helper.isra.0' }]),
    fn('helper.isra.0'),
    fn('helper.part.0'),
  ]);
  assert.equal(deadAfterTransition('helper', orig, patched, callersIn(orig), new Set(['a', 'b'])), true);
  // One caller of the clone is not replaced: the old helper is still reached.
  assert.equal(deadAfterTransition('helper', orig, patched, callersIn(orig), new Set(['a'])), false);
});

test('dead after transition: never when the patched build has a body of its own, a pointer escapes, or data refers to it', () => {
  const orig = object([fn('a', [{ to: 'helper' }]), fn('helper')]);
  const withBody = object([fn('a'), fn('helper')]);
  assert.equal(deadAfterTransition('helper', orig, withBody, callersIn(orig), new Set(['a'])), false);
  const inlined = object([fn('a')]);
  assert.equal(deadAfterTransition('helper', orig, inlined, callersIn(orig), new Set(['a'])), true);
  // `lea helper(%rip)` (opcode byte before the relocation is not a call or jump): its address escapes.
  const addressTaken = object([fn('a', [{ to: 'helper', op: 0x8d }]), fn('helper')]);
  assert.equal(deadAfterTransition('helper', addressTaken, inlined, callersIn(addressTaken), new Set(['a'])), false);
  const ops: DataObject = {
    name: 'ops',
    section: '.data.ops',
    offset: 0,
    bind: 'local',
    size: 8,
    bytes: Buffer.alloc(8),
    relocs: [{ offset: 0, type: 'R_X86_64_64', target: 'helper', addend: 0n, raw: 'helper' }],
  };
  const stored = object([fn('a', [{ to: 'helper' }]), fn('helper')], new Map([['ops', ops]]));
  assert.equal(deadAfterTransition('helper', stored, inlined, callersIn(stored), new Set(['a'])), false);
  // A global function may have callers in other files.
  const global = object([fn('a', [{ to: 'helper' }]), fn('helper', [], 'global')]);
  assert.equal(deadAfterTransition('helper', global, inlined, callersIn(global), new Set(['a'])), false);
});
