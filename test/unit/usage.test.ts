import { strict as assert } from 'node:assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { headerChange } from '../../src/usage/header-change.js';
import { buildIncludeGraph, includingUnits } from '../../src/usage/include-graph.js';
import { decodeRecord, encodeRecord, firstUsed, readsHeader } from '../../src/usage/index.js';
import { fixdepCommands } from '../../src/usage/commands.js';
import { reachableIdents, scanUnits } from '../../src/usage/units.js';
import { parseUnifiedZeroHunks } from '../../src/analyze/lines.js';
import { tempDir } from '../helpers.js';
import { spawnSync } from 'node:child_process';

function tree(files: Record<string, string>): string {
  const root = tempDir('usage');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const HEADER = `#ifndef THING_H
#define THING_H
#define THING_MAX 16 /* a limit */
#define thing_ok(x) \\
	((x) < THING_MAX)
struct thing { int count; struct thing *next; };
typedef int (*thing_fn)(struct thing *t);
enum thing_state { THING_NEW, THING_OLD = 3 };
extern int thing_register(struct thing *t, thing_fn fn);
static inline int thing_count(const struct thing *t)
{
	return t->count;
}
static inline int thing_unused(void) { return THING_OLD; }
#endif
`;

test('scanUnits: what raw header text declares, unit by unit', () => {
  const { units } = scanUnits(HEADER, { preprocessed: false, file: 'include/linux/thing.h' });
  const byLine = new Map(units.map((u) => [u.line, u]));
  assert.deepEqual(byLine.get(10)?.names, ['thing_count']);
  assert.equal(byLine.get(10)?.kind, 'function');
  assert.equal(byLine.get(10)?.endLine, 13);
  assert.ok(byLine.get(6)?.names.includes('thing'));
  assert.ok(byLine.get(7)?.names.includes('thing_fn'));
  assert.ok(byLine.get(8)?.names.includes('THING_NEW') && byLine.get(8)?.names.includes('THING_OLD'));
  assert.ok(byLine.get(9)?.names.includes('thing_register'));
  // Directive lines are not C units.
  assert.ok(!units.some((u) => u.line <= 5));
});

test('reachableIdents: an unused static inline of a header adds nothing; a used one adds its body', () => {
  const pre = [
    '# 1 "/src/include/linux/thing.h" 1',
    'struct thing { int count; struct other *next; };',
    'struct other { int deep; };',
    'static inline int thing_count(const struct thing *t) { return t->count + helper_a(); }',
    'static inline int thing_unused(void) { return helper_b(); }',
    'extern int helper_a(void);',
    'extern int helper_b(void);',
    '# 1 "/src/drivers/x.c" 2',
    'int x_probe(struct thing *t) { return thing_count(t); }',
  ].join('\n');
  const { units, files } = scanUnits(pre, { preprocessed: true });
  assert.deepEqual(files, ['', '/src/include/linux/thing.h', '/src/drivers/x.c']);
  const used = reachableIdents(units, (f) => !f.endsWith('.c'));
  for (const n of ['thing_count', 'helper_a', 'thing', 'other']) assert.ok(used.has(n), n);
  for (const n of ['thing_unused', 'helper_b', 'count']) assert.ok(!used.has(n), n);
});

function diffHunks(a: string, b: string) {
  const dir = tempDir('hunks');
  writeFileSync(join(dir, 'a'), a);
  writeFileSync(join(dir, 'b'), b);
  return parseUnifiedZeroHunks(spawnSync('diff', ['-U0', join(dir, 'a'), join(dir, 'b')], { encoding: 'utf8' }).stdout);
}

function changeOf(patched: string) {
  return headerChange('include/linux/thing.h', HEADER, patched, diffHunks(HEADER, patched));
}

test('headerChange: an inline body, a macro, a struct, a conditional, an #include, a comment', () => {
  assert.deepEqual(changeOf(HEADER.replace('return t->count;', 'return t->count + 1;')).names, ['thing_count']);
  assert.deepEqual(changeOf(HEADER.replace('#define THING_MAX 16', '#define THING_MAX 32')).names, ['THING_MAX']);
  // A continuation line belongs to its #define.
  assert.deepEqual(changeOf(HEADER.replace('((x) < THING_MAX)', '((x) <= THING_MAX)')).names, ['thing_ok']);
  assert.ok(changeOf(HEADER.replace('int count;', 'long count;')).names?.includes('thing'));
  const inc = changeOf(HEADER.replace('#define THING_H\n', '#define THING_H\n#include <linux/other.h>\n'));
  assert.equal(inc.names, null);
  assert.match(inc.unbounded?.why ?? '', /#include/);
  const comment = changeOf(HEADER.replace('/* a limit */', '/* the limit */'));
  assert.equal(comment.cosmetic, true);
  assert.deepEqual(comment.names, []);
  // A new #ifdef around a function: the function and the tested macro.
  const cond = changeOf(
    HEADER.replace('static inline int thing_unused', '#ifdef CONFIG_THING\nstatic inline int thing_unused').replace(
      'return THING_OLD; }\n',
      'return THING_OLD; }\n#endif\n',
    ),
  );
  assert.ok(cond.names?.includes('thing_unused') && cond.names.includes('CONFIG_THING'), String(cond.names));
});

test('usage records: round trip, and a corrupt or truncated one is never used', () => {
  const rec = {
    file: 'drivers/x.c',
    key: '0123456789abcdef0123456789abcdef',
    headers: ['include/linux/thing.h', 'build:include/generated/autoconf.h'],
    names: ['thing_count', 'THING_MAX', 'x_probe'],
  };
  const buf = encodeRecord(rec);
  const back = decodeRecord(buf);
  assert.ok(typeof back !== 'string');
  assert.equal(back.file, rec.file);
  assert.equal(back.key, rec.key);
  assert.ok(readsHeader(back, 'include/linux/thing.h'));
  assert.ok(!readsHeader(back, 'include/linux/other.h'));
  assert.equal(firstUsed(back, ['nope', 'THING_MAX']), 'THING_MAX');
  assert.equal(firstUsed(back, ['thing_unused']), undefined);
  for (let i = 0; i < buf.length; i += 7) {
    const bad = Buffer.from(buf);
    bad[i] = (bad[i] as number) ^ 0x40;
    assert.equal(typeof decodeRecord(bad), 'string', `flipped byte ${i}`);
  }
  for (const n of [0, 10, 39, buf.length - 1]) assert.equal(typeof decodeRecord(buf.subarray(0, n)), 'string');
});

test('fixdepCommands: an object already up to date in the build dir (only its trap line) takes its .cmd file command', () => {
  const upToDate = (obj: string) =>
    `set -e;     trap 'rm -f ${obj}; trap - HUP; kill -s HUP $$' HUP;  trap 'rm -f ${obj}; trap - INT; kill -s INT $$' INT; `;
  const out = [
    `scripts/basic/fixdep kernel/.a.o.d kernel/a.o 'gcc-12 -c -o kernel/a.o /src/kernel/a.c' > kernel/.a.o.cmd`,
    upToDate('net/ipv4/tcp.o'),
    upToDate('arch/x86/entry.o'),
    upToDate('kernel/gone.o'),
  ].join('\n');
  const saved: Record<string, string> = {
    'net/ipv4/tcp.o': 'gcc-12 -Wp,-MMD,net/ipv4/.tcp.o.d -c -o net/ipv4/tcp.o /src/net/ipv4/tcp.c',
    'arch/x86/entry.o': 'gcc-12 -D__ASSEMBLY__ -c -o arch/x86/entry.o /src/arch/x86/entry.S',
  };
  const m = fixdepCommands(out, (obj) => saved[obj]);
  assert.deepEqual([...m.keys()].sort(), ['kernel/a.c', 'net/ipv4/tcp.c']);
  assert.equal(m.get('net/ipv4/tcp.c'), saved['net/ipv4/tcp.o']);
  // Without .cmd files, only what make printed.
  assert.deepEqual([...fixdepCommands(out).keys()], ['kernel/a.c']);
});

test('fixdepCommands: the command of each C object, unquoted; assembler and host objects skipped', () => {
  const out = [
    `set -e; gcc-12 -Wp,-MMD,kernel/.a.o.d -DX='"q"' -c -o kernel/a.o /src/kernel/a.c ; ./tools/objtool/objtool --orc kernel/a.o; scripts/basic/fixdep kernel/.a.o.d kernel/a.o 'gcc-12 -Wp,-MMD,kernel/.a.o.d -DX='\\''"q"'\\'' -c -o kernel/a.o /src/kernel/a.c ; ./tools/objtool/objtool --orc kernel/a.o' > kernel/.a.o.cmd`,
    `scripts/basic/fixdep arch/x86/.e.o.d arch/x86/e.o 'gcc-12 -D__ASSEMBLY__ -c -o arch/x86/e.o /src/arch/x86/e.S' > arch/x86/.e.o.cmd`,
  ].join('\n');
  const m = fixdepCommands(out);
  assert.deepEqual([...m.keys()], ['kernel/a.c']);
  assert.equal(
    m.get('kernel/a.c'),
    `gcc-12 -Wp,-MMD,kernel/.a.o.d -DX='"q"' -c -o kernel/a.o /src/kernel/a.c ; ./tools/objtool/objtool --orc kernel/a.o`,
  );
});

test("include graph: beside it, through another header, through <...>, through a Makefile's own -I, and a generated wrapper", () => {
  const root = tree({
    'include/linux/thing.h': 'static inline int thing(void) { return 1; }\n',
    'include/asm-generic/word.h': 'int word;\n',
    'drivers/wifi/trans.h': '#include <linux/thing.h>\n',
    'drivers/wifi/core.c': '#include "trans.h"\n',
    // mvm/'s Makefile adds -I for its parent: "trans.h" is not beside it.
    'drivers/wifi/mvm/tx.c': '#include "trans.h"\n',
    'drivers/wifi/mvm/ops.c': '#include "../trans.h"\n',
    'drivers/other/trans.h': '/* another header of that name */\n',
    'drivers/other/user.c': '#include "trans.h"\n',
    'fs/unrelated.c': '#include <linux/fs.h>\n',
    'kernel/uses-asm.c': '#include <asm/word.h>\n',
  });
  const build = tree({ 'arch/x86/include/generated/asm/word.h': '#include <asm-generic/word.h>\n' });
  const g = buildIncludeGraph(root, build);
  assert.deepEqual(includingUnits(g, 'drivers/wifi/trans.h'), [
    'drivers/wifi/core.c',
    'drivers/wifi/mvm/ops.c',
    'drivers/wifi/mvm/tx.c',
  ]);
  assert.deepEqual(includingUnits(g, 'include/linux/thing.h'), [
    'drivers/wifi/core.c',
    'drivers/wifi/mvm/ops.c',
    'drivers/wifi/mvm/tx.c',
  ]);
  assert.deepEqual(includingUnits(g, 'include/asm-generic/word.h'), ['kernel/uses-asm.c']);
});

test('headerChange: spacing inside a string literal is not cosmetic', () => {
  const a = '#define GREETING "a  b"\n';
  const b = '#define GREETING "a b"\n';
  assert.equal(headerChange('x.h', a, b, diffHunks(a, b)).cosmetic, false);
  const c = '#define  GREETING   "a  b"  \n';
  assert.equal(headerChange('x.h', a, c, diffHunks(a, c)).cosmetic, true);
});

test('headerChange: spacing beside parentheses and re-wrapped lines are cosmetic; a directive keeps its spaces and its line', () => {
  const a = 'struct ops {\n\tint (*create) (struct ps *ps,\n\t\t\t int argc);\n};\n';
  const b = 'struct ops {\n\tint (*create)(struct ps *ps,\n\t\t\tint argc);\n};\n';
  assert.equal(headerChange('x.h', a, b, diffHunks(a, b)).cosmetic, true);
  // Object-like and function-like: the space after the name is the difference.
  const f = '#define F (x)\n';
  const g = '#define F(x)\n';
  assert.equal(headerChange('x.h', f, g, diffHunks(f, g)).cosmetic, false);
  // Code joined onto a directive's line becomes part of the macro.
  const h = '#define A 1\nint x;\n';
  const i = '#define A 1 int x;\n';
  assert.equal(headerChange('x.h', h, i, diffHunks(h, i)).cosmetic, false);
  // Identifiers still need their space.
  const j = 'unsigned int x;\n';
  const k = 'unsignedint x;\n';
  assert.equal(headerChange('x.h', j, k, diffHunks(j, k)).cosmetic, false);
});

test("scanUnits: a prototype's function-pointer parameter is not a declared name", () => {
  const text = 'int walk(struct device *from, int (*fn)(struct device *, void *));\nint (*hook)(int);\n';
  const { units } = scanUnits(text, { preprocessed: false, file: 'x.h' });
  assert.deepEqual(units[0]?.names, ['walk']);
  assert.deepEqual(units[1]?.names, ['hook']);
});
