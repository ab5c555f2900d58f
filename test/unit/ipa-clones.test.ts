/**
 * The ipa-clones reader is checked against real gcc-12 dumps: C fixtures are
 * compiled at test time with `-O2 -fdump-ipa-clones` (plus the kernel's
 * code-generation flags that work in userspace) and the parsed dump, the
 * inlining closure and the removed set are compared with what we know the
 * compiler did — and with the object's symbol table (`nm`).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  parseIpaClones,
  readIpaClones,
  inliningClosure,
  removedFunctions,
  ipaClonesDumpPath,
  formatReasons,
  INLINING_TO,
  type IpaClonesDump,
  type Reason,
} from '../../src/analyze/ipa-clones.js';
import { KlpgenError } from '../../src/util/errors.js';

const CC = 'gcc-12';
const KERNEL_FLAGS = [
  '-fno-strict-aliasing',
  '-fno-common',
  '-fno-pic',
  '-mcmodel=kernel',
  '-fno-omit-frame-pointer',
  '-mno-red-zone',
  '-fno-stack-protector',
  '-fno-delete-null-pointer-checks',
  '-std=gnu11',
];
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'klpgen-ipa-clones-'));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Compiled {
  dump: IpaClonesDump;
  /** Defined function symbols in the object. */
  fns: Set<string>;
  text: string;
}

/** `gcc-12 -O2 -fdump-ipa-clones -c -o <dir>/<name>/obj.o <dir>/<name>/<srcName>` */
function compile(
  name: string,
  source: string,
  opts: { opt?: string; flags?: string[]; srcName?: string } = {},
): Compiled {
  const sub = join(dir, name);
  mkdirSync(sub, { recursive: true });
  const src = join(sub, opts.srcName ?? `${name}.c`);
  const obj = join(sub, 'out', 'obj.o');
  mkdirSync(join(sub, 'out'), { recursive: true });
  writeFileSync(src, source);
  execFileSync(
    CC,
    [opts.opt ?? '-O2', '-fdump-ipa-clones', ...KERNEL_FLAGS, ...(opts.flags ?? []), '-c', '-o', obj, src],
    { cwd: sub, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const dumpPath = ipaClonesDumpPath(obj, src);
  const text = readFileSync(dumpPath, 'utf8');
  const nm = execFileSync('nm', ['--defined-only', obj], { encoding: 'utf8' });
  const fns = new Set(
    nm
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((p) => p.length === 3 && /^[tTwW]$/.test(p[1]!))
      .map((p) => p[2]!),
  );
  return { dump: readIpaClones(dumpPath), fns, text };
}

function closureSet(d: IpaClonesDump, changed: string[]): string[] {
  return [...inliningClosure(d, changed).keys()].sort();
}

function lines(d: IpaClonesDump): string[] {
  return d.clones.map((r) => `${r.origin.name}/${r.origin.order} -> ${r.clone.name}/${r.clone.order} ${r.reason}`);
}

const sorted = (s: Iterable<string>) => [...s].sort();

test('dump location: <dir of -o>/<stem of -o><source suffix>.000i.ipa-clones', () => {
  assert.equal(ipaClonesDumpPath('/some/dir/x.o', 'src/foo.c'), '/some/dir/x.c.000i.ipa-clones');
  assert.equal(ipaClonesDumpPath('out/a.b.o', 'x.y.c'), 'out/a.b.c.000i.ipa-clones');
  assert.equal(ipaClonesDumpPath('out/mod.ko', 'm.c'), 'out/mod.c.000i.ipa-clones');
  assert.equal(ipaClonesDumpPath('out/noext', 'm.i'), 'out/noext.i.000i.ipa-clones');
  // And gcc agrees (the source lives elsewhere and has a different stem).
  const sub = join(dir, 'where');
  mkdirSync(join(sub, 'o'), { recursive: true });
  writeFileSync(join(sub, 'foo.bar.c'), 'static int h(int x) { return x + 1; }\nint f(int x) { return h(x) * 2; }\n');
  execFileSync(CC, ['-O2', '-fdump-ipa-clones', '-c', '-o', 'o/obj.x.o', 'foo.bar.c'], { cwd: sub, stdio: 'ignore' });
  assert.ok(existsSync(join(sub, ipaClonesDumpPath('o/obj.x.o', 'foo.bar.c'))));
  assert.ok(existsSync(join(sub, 'o', 'obj.x.c.000i.ipa-clones')));
  // -fdump-ipa-clones=PATH is relative to the cwd, not to the output directory.
  mkdirSync(join(sub, 'e'));
  execFileSync(CC, ['-O2', '-fdump-ipa-clones=e/d.txt', '-c', '-o', 'o/obj2.o', 'foo.bar.c'], {
    cwd: sub,
    stdio: 'ignore',
  });
  assert.match(
    readFileSync(join(sub, 'e', 'd.txt'), 'utf8'),
    /^Callgraph clone;h;0;foo\.bar\.c;1;12;f;1;foo\.bar\.c;2;5;inlining to$/m,
  );
  // -E compiles nothing, so writes no dump.
  execFileSync(CC, ['-O2', '-fdump-ipa-clones', '-E', '-o', 'o/pre.i', 'foo.bar.c'], { cwd: sub, stdio: 'ignore' });
  assert.ok(!existsSync(join(sub, 'o', 'pre.c.000i.ipa-clones')));
  assert.ok(!existsSync(join(sub, 'o', 'pre.i.000i.ipa-clones')));
});

test('fixture 1: a static helper inlined into two callers', () => {
  const c = compile(
    'two-callers',
    [
      'static int helper(int x) { return x * 3 + 1; }',
      'int caller1(int a) { return helper(a) + 2; }',
      'int caller2(int a) { return helper(a) * 5; }',
      '',
    ].join('\n'),
  );
  const src = join(dir, 'two-callers', 'two-callers.c');
  assert.equal(
    c.text,
    [
      `Callgraph clone;helper;0;${src};1;12;caller1;1;${src};2;5;inlining to`,
      `Callgraph clone;helper;0;${src};1;12;caller2;2;${src};3;5;inlining to`,
      `Callgraph removal;helper;0;${src};1;12`,
      '',
    ].join('\n'),
  );
  assert.deepEqual(c.dump.clones[0], {
    origin: { name: 'helper', order: 0, file: src, line: 1, col: 12 },
    clone: { name: 'caller1', order: 1, file: src, line: 2, col: 5 },
    reason: INLINING_TO,
  });
  assert.deepEqual(c.dump.removals, [{ fn: { name: 'helper', order: 0, file: src, line: 1, col: 12 } }]);
  const cl = inliningClosure(c.dump, ['helper']);
  assert.deepEqual(
    [...cl.entries()],
    [
      ['helper', []],
      ['caller1', [{ kind: 'inlined', from: 'helper', into: 'caller1' }]],
      ['caller2', [{ kind: 'inlined', from: 'helper', into: 'caller2' }]],
    ],
  );
  assert.deepEqual(sorted(removedFunctions(c.dump)), ['helper']);
  assert.deepEqual(sorted(c.fns), ['caller1', 'caller2']);
  // A changed caller drags nothing else in.
  assert.deepEqual(closureSet(c.dump, ['caller1']), ['caller1']);
  assert.deepEqual(closureSet(c.dump, ['not_in_dump']), ['not_in_dump']);
});

test('fixture 2: nested early inlining A<-B<-C has no C->A record; the closure is transitive', () => {
  const c = compile(
    'nested-early',
    [
      'static int c_fn(int x) { return x * 7 + 3; }',
      'static int b_fn(int x) { return c_fn(x) + 11; }',
      'int a_fn(int x) { return b_fn(x) * 2; }',
      'int a2_fn(int x) { return b_fn(x + 5) * 3; }',
      '',
    ].join('\n'),
  );
  assert.deepEqual(lines(c.dump), [
    'c_fn/0 -> b_fn/1 inlining to',
    'b_fn/1 -> a_fn/2 inlining to',
    'b_fn/1 -> a2_fn/3 inlining to',
  ]);
  const cl = inliningClosure(c.dump, ['c_fn']);
  assert.deepEqual(sorted(cl.keys()), ['a2_fn', 'a_fn', 'b_fn', 'c_fn']);
  assert.deepEqual(cl.get('a_fn'), [
    { kind: 'inlined', from: 'c_fn', into: 'b_fn' },
    { kind: 'inlined', from: 'b_fn', into: 'a_fn' },
  ]);
  assert.deepEqual(sorted(removedFunctions(c.dump)), ['b_fn', 'c_fn']);
  assert.deepEqual(sorted(c.fns), ['a2_fn', 'a_fn']);
  assert.equal(formatReasons('a_fn', cl.get('a_fn')!), 'a_fn: c_fn inlined into b_fn, b_fn inlined into a_fn');
});

test('fixture 2b: nested IPA inlining duplicates inline trees; inline copies have fresh orders', () => {
  // c_fn keeps its out-of-line body (address taken); the IPA inliner puts it
  // into b_fn, then copies b_fn (with its inline copy of c_fn, order 7) into
  // a1 and moves b_fn itself into a2: c->b, b->a1, c/7->a1, b->a2, no c->a2.
  const c = compile(
    'nested-ipa',
    [
      'extern int g(int);',
      'extern int h(int, int);',
      'static inline int c_fn(int x) { int s = g(x); if (s > 3) s += h(s, x); return s * 3; }',
      'int (*fp)(int) = c_fn;',
      'static inline int b_fn(int x) { int s = c_fn(x) + g(x) + h(x, 2); if (s & 1) s ^= g(s + x); if (s > 5) s += h(s, s); return s * 3 + h(x, s); }',
      'int a1(int x) { return b_fn(x) * 2 + g(x); }',
      'int a2(int x) { return b_fn(x + 1) * 3 + g(x); }',
      '',
    ].join('\n'),
  );
  assert.deepEqual(lines(c.dump), [
    'c_fn/0 -> b_fn/2 inlining to',
    'b_fn/2 -> a1/3 inlining to',
    'c_fn/7 -> a1/3 inlining to',
    'b_fn/2 -> a2/4 inlining to',
  ]);
  assert.deepEqual(
    c.dump.removals.map((r) => `${r.fn.name}/${r.fn.order}`),
    ['b_fn/2', 'c_fn/7'],
  );
  const cl = inliningClosure(c.dump, ['c_fn']);
  assert.deepEqual(sorted(cl.keys()), ['a1', 'a2', 'b_fn', 'c_fn']);
  assert.deepEqual(cl.get('a1'), [{ kind: 'inlined', from: 'c_fn', into: 'a1' }]);
  assert.deepEqual(cl.get('a2'), [
    { kind: 'inlined', from: 'c_fn', into: 'b_fn' },
    { kind: 'inlined', from: 'b_fn', into: 'a2' },
  ]);
  // The removal of the inline copy c_fn/7 does not remove c_fn.
  assert.deepEqual(sorted(removedFunctions(c.dump)), ['b_fn']);
  assert.deepEqual(sorted(c.fns), ['a1', 'a2', 'c_fn']);
});

test('fixture 3: constprop clone (all callers pass the same constant; noinline does not stop it)', () => {
  const c = compile(
    'constprop',
    [
      'extern int g(int);',
      'extern int h(int, int);',
      '__attribute__((noinline)) static int ni(int mode, int n) {',
      '  int s = 0;',
      '  for (int i = 0; i < n; i++) { if (mode == 1) s += g(i); else s -= h(i, mode); }',
      '  return s + g(s) + h(s, mode) + g(s * 3);',
      '}',
      'int ni1(int n) { return ni(1, n) + 1; }',
      'int ni2(int n) { return ni(1, n + 1) + 2; }',
      '',
    ].join('\n'),
  );
  assert.deepEqual(lines(c.dump), ['ni/0 -> ni.constprop.0/5 constprop']);
  const cl = inliningClosure(c.dump, ['ni']);
  assert.deepEqual(
    [...cl.entries()],
    [
      ['ni', []],
      ['ni.constprop.0', [{ kind: 'clone', suffix: 'constprop', of: 'ni', clone: 'ni.constprop.0' }]],
    ],
  );
  assert.deepEqual(sorted(c.fns), ['ni.constprop.0', 'ni1', 'ni2']);
  // `ni` is gone from the object, yet the dump has no removal record for it.
  assert.deepEqual(sorted(removedFunctions(c.dump)), []);
  assert.equal(
    formatReasons('ni.constprop.0', cl.get('ni.constprop.0')!),
    'ni.constprop.0: ni.constprop.0 is a constprop clone of ni',
  );
});

test('fixture 3b: -O3 (-fipa-cp-clone) constprop clone that is then inlined elsewhere', () => {
  const c = compile(
    'constprop-inlined',
    [
      'extern int g(int);',
      'extern int h(int, int);',
      'static int worker(int mode, int n) {',
      '  int s = 0;',
      '  for (int i = 0; i < n; i++) {',
      '    if (mode == 1) s += g(i) * h(i, n);',
      '    else if (mode == 2) s -= h(s, i) + g(n);',
      '    else s ^= g(s + i) + h(mode, i);',
      '  }',
      '  s += g(s) + h(s, mode);',
      '  s += g(s * 3) + h(s, n * mode);',
      '  return s;',
      '}',
      'int user1(int n) { return worker(1, n) + 1; }',
      'int user2(int n) { return worker(2, n + 1) * 3; }',
      'int user3(int n) { return worker(2, n * 2) - 7; }',
      'int user4(int n) { return worker(n, n * 2) - 7; }',
      '',
    ].join('\n'),
    { opt: '-O3' },
  );
  assert.deepEqual(lines(c.dump), [
    'worker/0 -> worker.constprop.0/7 constprop',
    'worker/0 -> user1/1 inlining to',
    'worker.constprop.0/7 -> user2/2 inlining to',
    'worker.constprop.0/7 -> user3/3 inlining to',
    'worker/0 -> user4/4 inlining to',
  ]);
  const cl = inliningClosure(c.dump, ['worker']);
  assert.deepEqual(sorted(cl.keys()), ['user1', 'user2', 'user3', 'user4', 'worker', 'worker.constprop.0']);
  assert.deepEqual(cl.get('user2'), [
    { kind: 'clone', suffix: 'constprop', of: 'worker', clone: 'worker.constprop.0' },
    { kind: 'inlined', from: 'worker.constprop.0', into: 'user2' },
  ]);
  assert.deepEqual(sorted(removedFunctions(c.dump)), ['worker.constprop.0']);
  assert.deepEqual(sorted(c.fns), ['user1', 'user2', 'user3', 'user4']);
});

test('fixture 4: isra clone (struct pointer, one field used)', () => {
  const c = compile(
    'isra',
    [
      'struct big { int a, b, c, d; long pad[8]; };',
      'extern int g(int);',
      'extern int h(int, int);',
      'static int use_b(const struct big *p) {',
      '  int n = p->b;',
      '  int s = 0;',
      '  for (int i = 0; i < n; i++) { s += g(i) * h(i, s); s ^= h(s, g(i)); }',
      '  s += g(s) + h(s, 3) + g(s * 5);',
      '  return s;',
      '}',
      'int isra_user1(struct big *p) { return use_b(p) + 1; }',
      'int isra_user2(struct big *p) { return use_b(p) * 3; }',
      'int isra_user3(struct big *p) { return use_b(p) - 9; }',
      '',
    ].join('\n'),
  );
  assert.deepEqual(lines(c.dump), ['use_b/0 -> use_b.isra.0/6 isra']);
  assert.deepEqual(
    [...inliningClosure(c.dump, ['use_b']).entries()],
    [
      ['use_b', []],
      ['use_b.isra.0', [{ kind: 'clone', suffix: 'isra', of: 'use_b', clone: 'use_b.isra.0' }]],
    ],
  );
  assert.deepEqual(sorted(c.fns), ['isra_user1', 'isra_user2', 'isra_user3', 'use_b.isra.0']);
  // Changing a caller needs nothing else.
  assert.deepEqual(closureSet(c.dump, ['isra_user2']), ['isra_user2']);
});

test('fixture 4b: clone of a clone that is then inlined (constprop -> isra -> inlining)', () => {
  const c = compile(
    'clone-chain',
    [
      'struct big { int a, b, c, d; long pad[8]; };',
      'extern int g(int);',
      'extern int h(int, int);',
      'static int use_b(const struct big *p, int unused) {',
      '  int n = p->b;',
      '  int s = 0;',
      '  for (int i = 0; i < n; i++) { s += g(i) * h(i, s); s ^= h(s, g(i)); }',
      '  s += g(s) + h(s, 3) + g(s * 5);',
      '  return s;',
      '}',
      'int only_user(struct big *p) { return use_b(p, 5) + 1; }',
      '',
    ].join('\n'),
  );
  assert.deepEqual(lines(c.dump), [
    'use_b/0 -> use_b.constprop.0/4 constprop',
    'use_b.constprop.0/4 -> use_b.constprop.0.isra.0/5 isra',
    'use_b.constprop.0.isra.0/5 -> only_user/1 inlining to',
  ]);
  const cl = inliningClosure(c.dump, ['use_b']);
  assert.deepEqual(sorted(cl.keys()), ['only_user', 'use_b', 'use_b.constprop.0', 'use_b.constprop.0.isra.0']);
  const chain: Reason[] = [
    { kind: 'clone', suffix: 'constprop', of: 'use_b', clone: 'use_b.constprop.0' },
    { kind: 'clone', suffix: 'isra', of: 'use_b.constprop.0', clone: 'use_b.constprop.0.isra.0' },
    { kind: 'inlined', from: 'use_b.constprop.0.isra.0', into: 'only_user' },
  ];
  assert.deepEqual(cl.get('only_user'), chain);
  assert.deepEqual(sorted(removedFunctions(c.dump)), ['use_b.constprop.0.isra.0']);
  assert.deepEqual(sorted(c.fns), ['only_user']);
});

test('fixture 5: partial inlining splits off a .part clone and inlines the header', () => {
  const c = compile(
    'part',
    [
      'extern int g(int);',
      'extern int h(int, int);',
      'extern int fastflag;',
      'static int split_me(int x) {',
      '  if (__builtin_expect(fastflag == 0, 1))',
      '    return x;',
      '  int s = 0;',
      '  for (int i = 0; i < x; i++) { s += g(i) * h(i, s); s ^= h(s, g(i)); }',
      '  s += g(s) + h(s, 3) + g(s * 5) + h(g(s), g(x));',
      '  s += g(s) + h(s, 3) + g(s * 5) + h(g(s), g(x));',
      '  return s;',
      '}',
      'int part_user1(int x) { return split_me(x) + 1; }',
      'int part_user2(int x) { return split_me(x + 1) * 3; }',
      'int part_user3(int x) { return split_me(x * 2) - 5; }',
      '',
    ].join('\n'),
  );
  assert.deepEqual(lines(c.dump), [
    'split_me/0 -> split_me.part.0/8 part',
    'split_me/0 -> part_user1/1 inlining to',
    'split_me/0 -> part_user2/2 inlining to',
    'split_me/0 -> part_user3/3 inlining to',
  ]);
  assert.deepEqual(sorted(closureSet(c.dump, ['split_me'])), [
    'part_user1',
    'part_user2',
    'part_user3',
    'split_me',
    'split_me.part.0',
  ]);
  assert.deepEqual(sorted(removedFunctions(c.dump)), ['split_me']);
  assert.deepEqual(sorted(c.fns), ['part_user1', 'part_user2', 'part_user3', 'split_me.part.0']);
  // Without partial inlining there is no .part clone.
  const off = compile('part-off', readFileSync(join(dir, 'part', 'part.c'), 'utf8'), {
    flags: ['-fno-partial-inlining'],
  });
  assert.ok(!off.dump.clones.some((r) => r.reason === 'part'));
});

test('fixture 6: removal records — fully inlined statics vs kept bodies and inline copies', () => {
  const c = compile(
    'removal',
    [
      'extern int g(int);',
      'static int gone(int x) { return x * 3 + 1; }',
      'int use_gone(int a) { return gone(a) + 2; }',
      'static int kept(int x) { return x * 5 + 1; }',
      'int (*fp)(int) = kept;',
      'int use_kept(int a) { return kept(a) + 2; }',
      'int global_fn(int x) { return x * 7 + 1; }',
      'int use_global(int a) { return global_fn(a) + 2; }',
      '',
    ].join('\n'),
  );
  assert.deepEqual(lines(c.dump), [
    'gone/0 -> use_gone/1 inlining to',
    'kept/2 -> use_kept/4 inlining to',
    'global_fn/5 -> use_global/6 inlining to',
  ]);
  assert.deepEqual(
    c.dump.removals.map((r) => r.fn.name),
    ['gone'],
  );
  assert.deepEqual(sorted(removedFunctions(c.dump)), ['gone']);
  assert.deepEqual(sorted(c.fns), ['global_fn', 'kept', 'use_global', 'use_gone', 'use_kept']);
  for (const r of removedFunctions(c.dump)) assert.ok(!c.fns.has(r), r);
  assert.deepEqual(closureSet(c.dump, ['kept', 'global_fn']), ['global_fn', 'kept', 'use_global', 'use_kept']);
});

test('recursive inlining: "(null)" master clone and removal of the copy, not of the function', () => {
  const c = compile(
    'recursive',
    [
      'extern int g(int);',
      'static inline int rec(int x) { if (x <= 0) return g(0); return g(x) + rec(x - 1) + rec(x - 2); }',
      'int rec_user(int x) { return rec(x) + 1; }',
      'int rec_user2(int x) { return rec(x) + 2; }',
      '',
    ].join('\n'),
  );
  const master = c.dump.clones.find((r) => r.reason === '(null)');
  assert.ok(master, c.text);
  assert.equal(master.origin.name, 'rec');
  assert.equal(master.clone.name, 'rec');
  assert.ok(master.clone.order > master.origin.order);
  assert.ok(
    c.dump.clones.some(
      (r) => r.reason === INLINING_TO && r.origin.order === master.clone.order && r.clone.name === 'rec',
    ),
  );
  assert.deepEqual(
    c.dump.removals.map((r) => `${r.fn.name}/${r.fn.order}`),
    [`rec/${master.clone.order}`],
  );
  assert.deepEqual(sorted(removedFunctions(c.dump)), []);
  assert.ok(c.fns.has('rec'));
  assert.deepEqual(closureSet(c.dump, ['rec']), ['rec', 'rec_user', 'rec_user2']);
});

test('asm labels are printed with a leading "*", which is stripped', () => {
  const c = compile(
    'asm-label',
    [
      'static int helper(int x) __asm__("my$help");',
      'static int helper(int x) { return x * 3 + 1; }',
      'int caller1(int a) __asm__("call.er1");',
      'int caller1(int a) { return helper(a) + 2; }',
      '',
    ].join('\n'),
  );
  assert.match(c.text, /^Callgraph clone;\*my\$help;0;.*;\*call\.er1;1;.*;inlining to$/m);
  assert.deepEqual(lines(c.dump), ['my$help/0 -> call.er1/1 inlining to']);
  assert.deepEqual(closureSet(c.dump, ['my$help']), ['call.er1', 'my$help']);
  assert.deepEqual(closureSet(c.dump, ['*my$help']), ['call.er1', 'my$help']);
  assert.ok(c.fns.has('call.er1'));
});

test('file names containing ";" are printed unescaped and re-joined', () => {
  const c = compile(
    'semi',
    ['static int helper(int x) { return x * 3 + 1; }', 'int caller1(int a) { return helper(a) + 2; }', ''].join('\n'),
    { srcName: 'se;mi.c' },
  );
  const src = join(dir, 'semi', 'se;mi.c');
  assert.equal(c.text.split('\n')[0], `Callgraph clone;helper;0;${src};1;12;caller1;1;${src};2;5;inlining to`);
  assert.deepEqual(c.dump.clones[0], {
    origin: { name: 'helper', order: 0, file: src, line: 1, col: 12 },
    clone: { name: 'caller1', order: 1, file: src, line: 2, col: 5 },
    reason: INLINING_TO,
  });
  assert.deepEqual(c.dump.removals[0]?.fn, { name: 'helper', order: 0, file: src, line: 1, col: 12 });
  // Different files, each with ";" and digits: only one split puts integers
  // at line/col/order (file "a" would make "f.isra.0" the clone's order).
  const d = parseIpaClones('Callgraph clone;f;0;a;1;2;3;f.isra.0;4;b;5;6;7;isra\n', 't');
  assert.deepEqual(d.clones[0], {
    origin: { name: 'f', order: 0, file: 'a;1', line: 2, col: 3 },
    clone: { name: 'f.isra.0', order: 4, file: 'b;5', line: 6, col: 7 },
    reason: 'isra',
  });
});

test('parse: empty text, blank lines, CRLF, missing final newline', () => {
  assert.deepEqual(parseIpaClones('', 'empty'), { source: 'empty', clones: [], removals: [] });
  const d = parseIpaClones(
    '\r\nCallgraph clone;a;0;x.c;1;2;b;1;x.c;3;4;inlining to\r\n\nCallgraph removal;a;0;x.c;1;2',
    's',
  );
  assert.equal(d.clones.length, 1);
  assert.equal(d.clones[0]?.reason, 'inlining to');
  assert.deepEqual(d.removals, [{ fn: { name: 'a', order: 0, file: 'x.c', line: 1, col: 2 } }]);
});

test('parse: malformed lines are KlpgenErrors naming source:line', () => {
  const ok = 'Callgraph clone;a;0;x.c;1;2;b;1;x.c;3;4;inlining to\n';
  const bad: [string, RegExp][] = [
    ['garbage here', /not a "Callgraph clone" or "Callgraph removal" record/],
    ['Callgraph clone;a;0;x.c;1;2;b;1;x.c;3;inlining to', /expected 11 fields, got 10/],
    ['Callgraph clone;a;zero;x.c;1;2;b;1;x.c;3;4;inlining to', /origin order is not an integer: "zero"/],
    ['Callgraph clone;a;0;x.c;1;2;b;one;x.c;3;4;inlining to', /clone order is not an integer: "one"/],
    ['Callgraph clone;a;0;x.c;L;2;b;1;x.c;3;4;inlining to', /origin line is not an integer/],
    ['Callgraph clone;a;0;x.c;1;2;b;1;x.c;3;C;inlining to', /clone column is not an integer/],
    ['Callgraph clone;;0;x.c;1;2;b;1;x.c;3;4;inlining to', /empty function name/],
    ['Callgraph clone;a;0;x.c;1;2;;1;x.c;3;4;inlining to', /empty function name/],
    ['Callgraph clone;a;0;x.c;1;2;b;1;x.c;3;4;', /empty reason/],
    ['Callgraph removal;a;0;x.c;1', /expected 5 fields, got 4/],
    ['Callgraph removal;a;0;x.c;1;c', /column is not an integer/],
    ['Callgraph removal;;0;x.c;1;2', /empty function name/],
    ['Callgraph clone;a;0;x;1;2;b;1;y;3;4;b;1;z;3;4;isra', /ambiguous/],
    ['Callgraph clone;a;0;x;1;2;b;1;x;1;2;b;1;x;3;4;isra', /ambiguous/],
  ];
  for (const [line, re] of bad) {
    assert.throws(
      () => parseIpaClones(`${ok}\n${line}\n`, 'dir/x.c.000i.ipa-clones'),
      (e: unknown) => {
        assert.ok(e instanceof KlpgenError, String(e));
        assert.match(e.message, /^dir\/x\.c\.000i\.ipa-clones:3: malformed ipa-clones line/);
        assert.match(e.message, re);
        return true;
      },
      line,
    );
  }
  assert.throws(
    () => readIpaClones(join(dir, 'nope.c.000i.ipa-clones')),
    (e: unknown) => e instanceof KlpgenError && /no ipa-clones dump/.test(e.message),
  );
});

test('closure: duplicates, several changed functions, cycles, shortest chains', () => {
  const d = parseIpaClones(
    [
      'Callgraph clone;c;0;f.c;1;1;b;1;f.c;2;1;inlining to',
      'Callgraph clone;c;0;f.c;1;1;b;1;f.c;2;1;inlining to',
      'Callgraph clone;b;1;f.c;2;1;a;2;f.c;3;1;inlining to',
      'Callgraph clone;c;5;f.c;1;1;a;2;f.c;3;1;inlining to',
      'Callgraph clone;a;2;f.c;3;1;a.constprop.0;6;f.c;3;1;constprop',
      'Callgraph clone;x;3;f.c;4;1;y;4;f.c;5;1;inlining to',
      'Callgraph clone;y;4;f.c;5;1;x;3;f.c;4;1;inlining to',
      'Callgraph clone;x;3;f.c;4;1;x;7;f.c;4;1;(null)',
      '',
    ].join('\n'),
    'syn',
  );
  const cl = inliningClosure(d, ['c', 'x', 'c']);
  assert.deepEqual([...cl.keys()], ['c', 'x', 'b', 'a', 'y', 'a.constprop.0']);
  assert.deepEqual(cl.get('a'), [{ kind: 'inlined', from: 'c', into: 'a' }]);
  assert.deepEqual(cl.get('a.constprop.0'), [
    { kind: 'inlined', from: 'c', into: 'a' },
    { kind: 'clone', suffix: 'constprop', of: 'a', clone: 'a.constprop.0' },
  ]);
  assert.deepEqual(cl.get('x'), []);
  assert.equal(formatReasons('c', []), 'c: changed');
  assert.deepEqual(closureSet(d, []), []);
});
