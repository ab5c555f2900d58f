import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { changedTables, REGISTRATION_TABLES, type ObjectCode } from '../../src/analyze/objdiff.js';

const code = (sections: Record<string, number>): ObjectCode => ({
  functions: new Map(),
  data: new Map(),
  sectionSizes: new Map(Object.entries(sections)),
});

test('changedTables: registration tables that grow, shrink or appear; code, data and metadata sections do not count', () => {
  const orig = code({
    '.pci_fixup_final': 288,
    '.pci_fixup_resume': 240,
    __param: 40,
    '.text.foo': 100,
    '.data.bar': 8,
    __mcount_loc: 64,
    '.modinfo': 30,
  });
  const patched = code({
    '.pci_fixup_final': 304,
    '.pci_fixup_resume': 240,
    '.pci_fixup_suspend': 64,
    '.text.foo': 120,
    '.data.bar': 16,
    __mcount_loc: 72,
    '.modinfo': 60,
  });
  assert.deepEqual(changedTables(orig, patched), [
    { section: '.pci_fixup_final', before: 288, after: 304 },
    { section: '.pci_fixup_suspend', before: 0, after: 64 },
    { section: '__param', before: 40, after: 0 },
  ]);
  assert.deepEqual(changedTables(orig, orig), []);
  for (const t of ['.initcall6.init', '.init.setup', '_ftrace_events', '__earlycon_table'])
    assert.match(t, REGISTRATION_TABLES);
  for (const t of ['.data..once', '__jump_table', '.altinstructions', '__ksymtab_strings', '.rodata.str1.1'])
    assert.doesNotMatch(t, REGISTRATION_TABLES);
});
