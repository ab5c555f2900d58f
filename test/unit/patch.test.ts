/**
 * Reading and applying unified diffs in memory, cross-checked against the
 * real tools: diffs come from `diff -u` and `git diff`, and results are
 * compared byte for byte with GNU `patch -p1` (no fuzz) and `git apply`
 * when they are installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { applyFilePatch, applyPatches, parsePatch } from '../../src/analyze/patch.js';
import { KlpgenError } from '../../src/util/errors.js';

type Tree = Record<string, string>;

// git must not pick up the user's configuration (signing, hooks, diff options).
const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'T',
  GIT_AUTHOR_EMAIL: 't@example.org',
  GIT_COMMITTER_NAME: 'T',
  GIT_COMMITTER_EMAIL: 't@example.org',
  GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z',
  GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z',
  TZ: 'UTC',
};

function has(cmd: string): boolean {
  return spawnSync(cmd, ['--version'], { encoding: 'utf8' }).status === 0;
}
const HAVE_DIFF = has('diff');
const HAVE_PATCH = has('patch') && /GNU patch/.test(spawnSync('patch', ['--version'], { encoding: 'utf8' }).stdout);
const HAVE_GIT = has('git');

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = GIT_ENV) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const temps: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'klpgen-patch-'));
  temps.push(d);
  return d;
}
process.on('exit', () => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

function writeTree(dir: string, tree: Tree): void {
  mkdirSync(dir, { recursive: true });
  for (const [p, text] of Object.entries(tree)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
}

function readTree(dir: string, prefix = ''): Tree {
  const out: Tree = {};
  for (const e of readdirSync(join(dir, prefix)).sort()) {
    if (prefix === '' && e === '.git') continue;
    const rel = prefix ? `${prefix}/${e}` : e;
    if (statSync(join(dir, rel)).isDirectory()) Object.assign(out, readTree(dir, rel));
    else out[rel] = readFileSync(join(dir, rel), 'utf8');
  }
  return out;
}

/** `diff -urN a b` (with extra options) between two trees. */
function diffU(a: Tree, b: Tree, opts: string[] = [], env: NodeJS.ProcessEnv = process.env): string {
  const d = temp();
  writeTree(join(d, 'a'), a);
  writeTree(join(d, 'b'), b);
  const r = run('diff', ['-urN', ...opts, 'a', 'b'], d, env);
  assert.ok(r.code === 0 || r.code === 1, r.stderr);
  return r.stdout;
}

/** `git diff --no-index` between two trees; --no-prefix makes the a/ b/ directories the prefixes. */
function gitDiff(a: Tree, b: Tree, opts: string[] = []): string {
  const d = temp();
  writeTree(join(d, 'a'), a);
  writeTree(join(d, 'b'), b);
  const r = run('git', ['diff', '--no-index', '--no-prefix', ...opts, 'a', 'b'], d);
  assert.ok(r.code === 0 || r.code === 1, r.stderr);
  return r.stdout;
}

/** A real repository: commit `a`, then `b` with `message`, and return `git format-patch` of the second commit. */
function formatPatch(a: Tree, b: Tree, message: string): string {
  const d = temp();
  run('git', ['init', '-q'], d);
  writeTree(d, a);
  run('git', ['add', '-A'], d);
  assert.equal(run('git', ['commit', '-q', '-m', 'base'], d).code, 0);
  for (const p of Object.keys(a)) if (!(p in b)) rmSync(join(d, p));
  writeTree(d, b);
  run('git', ['add', '-A'], d);
  assert.equal(run('git', ['commit', '-q', '-m', message], d).code, 0);
  const r = run('git', ['format-patch', '-1', '-M', '--stdout'], d);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** Ours, through applyPatches: the resulting whole tree. */
function ours(orig: Tree, ...patches: string[]): Tree {
  const res = applyPatches(
    patches.map((text, k) => ({ name: `fix${k || ''}.patch`, text })),
    (p) => orig[p] ?? null,
  );
  const out: Tree = { ...orig };
  for (const [p, text] of res) {
    if (text === null) delete out[p];
    else out[p] = text;
  }
  return sortTree(out);
}

function sortTree(t: Tree): Tree {
  return Object.fromEntries(Object.entries(t).sort(([x], [y]) => (x < y ? -1 : 1)));
}

/** GNU patch -p1 without fuzz; null when it reports a failure. */
function gnu(orig: Tree, patch: string): Tree | null {
  const d = temp();
  writeTree(join(d, 't'), orig);
  writeFileSync(join(d, 'p'), patch);
  const r = run(
    'patch',
    ['-p1', '-s', '-F0', '--batch', '--no-backup-if-mismatch', '-r', '-', '-i', '../p'],
    join(d, 't'),
  );
  return r.code === 0 ? readTree(join(d, 't')) : null;
}

/** git apply outside a repository; null when it refuses. */
function gitApply(orig: Tree, patch: string): Tree | null {
  const d = temp();
  writeTree(join(d, 't'), orig);
  writeFileSync(join(d, 'p'), patch);
  const r = run('git', ['apply', '../p'], join(d, 't'));
  return r.code === 0 ? readTree(join(d, 't')) : null;
}

/** Ours must produce `want`, and so must GNU patch and git apply where asked and installed. */
function crossCheck(orig: Tree, patch: string, want: Tree, tools: { git?: boolean } = {}): void {
  assert.deepEqual(ours(orig, patch), sortTree(want), 'klpgen');
  if (HAVE_PATCH) assert.deepEqual(gnu(orig, patch), sortTree(want), 'GNU patch');
  if (tools.git && HAVE_GIT) assert.deepEqual(gitApply(orig, patch), sortTree(want), 'git apply');
}

function throwsKlpgen(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KlpgenError, `expected KlpgenError, got ${String(e)}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), `one-line message: ${e.message}`);
    return true;
  });
}

const lines = (n: number, f: (k: number) => string) => Array.from({ length: n }, (_, k) => f(k + 1) + '\n').join('');

// Kernel-like C with tabs, long enough for several separate hunks.
const C_ORIG =
  '// SPDX-License-Identifier: GPL-2.0\n#include <linux/module.h>\n#include <linux/slab.h>\n\n' +
  Array.from(
    { length: 12 },
    (_, f) =>
      `static int f${f}(struct foo *p, int n)\n{\n\tint i, ret = ${f};\n\n\tfor (i = 0; i < n; i++)\n\t\tret += p->v${f}[i];\n\treturn ret;\n}\n\n`,
  ).join('') +
  'MODULE_LICENSE("GPL");\n';
const C_NEW = C_ORIG.replace('\tint i, ret = 2;\n', '\tint i, ret = 2;\n\n\tif (!p)\n\t\treturn -EINVAL;\n')
  .replace(
    '\tint i, ret = 7;\n\n\tfor (i = 0; i < n; i++)',
    '\tint i, ret = 7;\n\n\tfor (i = 0; i < n && i < MAX; i++)',
  )
  .replace('\treturn ret;\n}\n\nMODULE', '\treturn ret ?: -ENOENT;\n}\n\nMODULE');

// ---------------------------------------------------------------- parsing

test('parses a git diff: paths stripped, counts, section header, patch line', () => {
  const text =
    [
      'diff --git a/drivers/net/x.c b/drivers/net/x.c',
      'index 1111111..2222222 100644',
      '--- a/drivers/net/x.c',
      '+++ b/drivers/net/x.c',
      '@@ -10,3 +10,4 @@ static int probe(struct device *dev)',
      ' \tint a;',
      '-\tint b;',
      '+\tint b = 0;',
      '+\tint c;',
      ' ',
      '@@ -20 +21 @@',
      '-x',
      '+y',
    ].join('\n') + '\n';
  const fps = parsePatch(text, 'fix.patch');
  assert.equal(fps.length, 1);
  const fp = fps[0]!;
  assert.equal(fp.oldPath, 'drivers/net/x.c');
  assert.equal(fp.newPath, 'drivers/net/x.c');
  assert.equal(fp.isNew, false);
  assert.equal(fp.isDeleted, false);
  assert.equal(fp.hunks.length, 2);
  const [h1, h2] = fp.hunks;
  assert.deepEqual([h1!.oldStart, h1!.oldLines, h1!.newStart, h1!.newLines], [10, 3, 10, 4]);
  assert.equal(h1!.header, 'static int probe(struct device *dev)');
  assert.equal(h1!.patchLine, 5);
  assert.deepEqual(
    h1!.lines.map((l) => l.kind + l.text),
    [' \tint a;', '-\tint b;', '+\tint b = 0;', '+\tint c;', ' '],
  );
  assert.deepEqual([h2!.oldStart, h2!.oldLines, h2!.newStart, h2!.newLines], [20, 1, 21, 1], 'omitted counts are 1');
  assert.equal(h2!.patchLine, 11);
  assert.equal(h2!.header, '');
});

test('parses plain diff -u: timestamps dropped, first directory stripped, several files', () => {
  const text = [
    'diff -urN linux-6.1.orig/a.c linux-6.1/a.c',
    '--- linux-6.1.orig/a.c\t2024-01-02 03:04:05.000000000 +0100',
    '+++ linux-6.1/a.c\t2024-01-02 03:04:06.000000000 +0100',
    '@@ -1 +1 @@',
    '-a',
    '+b',
    'Only in linux-6.1: junk',
    '--- linux-6.1.orig/sub/dir/b.h\t2024-01-02 03:04:05.000000000 +0100',
    '+++ linux-6.1/sub/dir/b.h\t2024-01-02 03:04:06.000000000 +0100',
    '@@ -0,0 +1,2 @@',
    '+x',
    '+y',
  ].join('\n');
  const fps = parsePatch(text, 'p.diff');
  assert.deepEqual(
    fps.map((f) => [f.oldPath, f.newPath, f.isNew]),
    [
      ['a.c', 'a.c', false],
      ['sub/dir/b.h', 'sub/dir/b.h', false],
    ],
  );
  assert.deepEqual(fps[1]!.hunks[0]!.lines, [
    { kind: '+', text: 'x' },
    { kind: '+', text: 'y' },
  ]);
});

test('records "\\ No newline at end of file" on the line it follows', () => {
  const text = '--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n';
  const h = parsePatch(text, 'f.patch')[0]!.hunks[0]!;
  assert.deepEqual(h.lines, [
    { kind: ' ', text: 'a' },
    { kind: '-', text: 'b', noNewline: true },
    { kind: '+', text: 'c' },
  ]);
  assert.equal(applyFilePatch('a\nb', parsePatch(text, 'f.patch')[0]!, 'f.patch').text, 'a\nc\n');
  throwsKlpgen(() => applyFilePatch('a\nb\n', parsePatch(text, 'f.patch')[0]!, 'f.patch'), /does not apply .*newline/);
});

test('git headers: new, deleted, renamed, mode-only and empty files', () => {
  const text =
    [
      'diff --git a/new.c b/new.c',
      'new file mode 100644',
      'index 0000000..3e75765',
      '--- /dev/null',
      '+++ b/new.c',
      '@@ -0,0 +1 @@',
      '+new',
      'diff --git a/gone.c b/gone.c',
      'deleted file mode 100644',
      'index 3367afd..0000000',
      '--- a/gone.c',
      '+++ /dev/null',
      '@@ -1 +0,0 @@',
      '-old',
      'diff --git a/old name.c b/new name.c',
      'similarity index 100%',
      'rename from old name.c',
      'rename to new name.c',
      'diff --git a/script.sh b/script.sh',
      'old mode 100644',
      'new mode 100755',
      'diff --git a/empty b/empty',
      'new file mode 100644',
      'index 0000000..e69de29',
    ].join('\n') + '\n';
  const fps = parsePatch(text, 'x.patch');
  assert.deepEqual(
    fps.map((f) => [f.oldPath, f.newPath, f.isNew, f.isDeleted, f.hunks.length]),
    [
      [null, 'new.c', true, false, 1],
      ['gone.c', null, false, true, 1],
      ['old name.c', 'new name.c', false, false, 0],
      ['script.sh', 'script.sh', false, false, 0],
      [null, 'empty', true, false, 0],
    ],
  );
  const res = applyPatches(
    [{ name: 'x.patch', text }],
    (p) => ({ 'gone.c': 'old\n', 'old name.c': 'keep\n', 'script.sh': 'echo\n' })[p] ?? null,
  );
  assert.deepEqual(Object.fromEntries(res), {
    'new.c': 'new\n',
    'gone.c': null,
    'old name.c': null,
    'new name.c': 'keep\n',
    'script.sh': 'echo\n',
    empty: '',
  });
});

test('git C-quoted file names are unquoted', () => {
  const text =
    'diff --git "a/t\\tq" "b/t\\tq"\nindex 1..2 100644\n--- "a/t\\tq"\n+++ "b/t\\tq"\n@@ -1 +1 @@\n-x\n+\\303\\251\n';
  const fp = parsePatch(text, 'q.patch')[0]!;
  assert.equal(fp.oldPath, 't\tq');
  assert.deepEqual(fp.hunks[0]!.lines[1], { kind: '+', text: '\\303\\251' }, 'hunk text is not unquoted');
});

test('diff -N epoch timestamps mark new and deleted files, in any time zone', { skip: !HAVE_DIFF }, () => {
  const a = { 'keep.c': 'k\n', 'old.c': 'o1\no2\n' };
  const b = { 'keep.c': 'k\n', 'new.c': 'n1\n' };
  for (const tz of ['UTC', 'Europe/Berlin', 'America/New_York']) {
    const patch = diffU(a, b, [], { ...process.env, TZ: tz });
    const fps = parsePatch(patch, 'n.patch');
    assert.deepEqual(
      fps.map((f) => [f.oldPath, f.newPath, f.isNew, f.isDeleted]),
      [
        [null, 'new.c', true, false],
        ['old.c', null, false, true],
      ],
      tz,
    );
    crossCheck(a, patch, b);
  }
});

// ---------------------------------------------------------------- applying, cross-checked

test(
  'C code with tabs, several hunks: diff -u and git diff apply like patch and git apply',
  { skip: !HAVE_DIFF || !HAVE_GIT },
  () => {
    const a = { 'drivers/foo.c': C_ORIG };
    const b = { 'drivers/foo.c': C_NEW };
    for (const patch of [diffU(a, b), gitDiff(a, b)]) {
      assert.equal(parsePatch(patch, 'p')[0]!.hunks.length, 3);
      crossCheck(a, patch, b, { git: true });
    }
  },
);

test('offset hunks: lines added above and between hunks in the target', { skip: !HAVE_DIFF }, () => {
  const a = { 'drivers/foo.c': C_ORIG };
  const patch = diffU(a, { 'drivers/foo.c': C_NEW });
  // The tree we patch has drifted: 5 lines more at the top, 2 fewer in f5.
  const drift = (s: string) =>
    s
      .replace(
        '#include <linux/slab.h>\n',
        '#include <linux/slab.h>\n#include <linux/a.h>\n#include <linux/b.h>\n#include <linux/c.h>\n#include <linux/d.h>\n#include <linux/e.h>\n',
      )
      .replace('{\n\tint i, ret = 5;\n\n', '{\n');
  const target = { 'drivers/foo.c': drift(C_ORIG) };
  const want = { 'drivers/foo.c': drift(C_NEW) };
  assert.notEqual(drift(C_NEW), C_NEW);
  crossCheck(target, patch, want, { git: true });
  const fp = parsePatch(patch, 'p')[0]!;
  assert.deepEqual(applyFilePatch(target['drivers/foo.c'], fp, 'p').offsets, [5, 3, 3]);
  assert.deepEqual(applyFilePatch(C_ORIG, fp, 'p').offsets, [0, 0, 0]);
});

test('offset search goes both ways, nearest first, and below the stated line', () => {
  const orig = lines(40, (k) => `l${k}`);
  const patch = '--- a/f\n+++ b/f\n@@ -20,3 +20,3 @@\n l20\n-l21\n+L21\n l22\n';
  const fp = parsePatch(patch, 'p')[0]!;
  const removed = orig.replace('l3\nl4\nl5\n', '');
  const r = applyFilePatch(removed, fp, 'p');
  assert.deepEqual(r.offsets, [-3]);
  assert.equal(r.text, removed.replace('l21\n', 'L21\n'));
  // Two candidate places, 2 lines above and 2 below the stated one: like
  // GNU patch, the one below wins.
  const two = Array.from({ length: 40 }, (_, k) => `u${k}`);
  two.splice(17, 3, 'l20', 'l21', 'l22');
  two.splice(21, 3, 'l20', 'l21', 'l22');
  const twice = two.join('\n') + '\n';
  const r2 = applyFilePatch(twice, fp, 'p');
  assert.deepEqual(r2.offsets, [2]);
  assert.equal(r2.text, twice.replace('u20\nl20\nl21\n', 'u20\nl20\nL21\n'));
  if (HAVE_PATCH) assert.deepEqual(gnu({ f: twice }, patch), { f: r2.text });
});

test('several files, new and deleted files: diff -urN and git diff', { skip: !HAVE_DIFF || !HAVE_GIT }, () => {
  const a = {
    'fs/a.c': lines(30, (k) => `\ta${k}();`),
    'fs/b.c': lines(10, (k) => `b${k}`),
    'include/gone.h': '#define GONE 1\n#define ALSO 2\n',
    'kernel/z.c': 'z\n',
  };
  const b = {
    'fs/a.c': a['fs/a.c'].replace('\ta3();\n', '\ta3();\n\tnew3();\n').replace('\ta25();\n', ''),
    'fs/b.c': a['fs/b.c'].replace('b10\n', 'b10\nb11'),
    'include/new.h': '#ifndef NEW_H\n#define NEW_H\n#endif\n',
    'kernel/z.c': 'z\n',
  };
  for (const patch of [diffU(a, b), gitDiff(a, b)]) {
    assert.equal(parsePatch(patch, 'p').length, 4);
    crossCheck(a, patch, b, { git: true });
  }
});

test('newline at end of file: every combination, at the end and before it', { skip: !HAVE_DIFF }, () => {
  const bodies = [
    ['a\nb\nc', 'a\nb\nc\n'], // only the final newline changes
    ['a\nb\nc\n', 'a\nb\nc'],
    ['a\nb\nc', 'a\nb\nX'],
    ['a\nb\nc', 'a\nb\nc\nd'],
    ['a\nb\nc', 'a\nb\nc\nd\n'],
    ['a\nb\nc\n', 'a\nb\nc\nd'],
    ['a\nb\nc', 'a\nb'],
    ['a\nb\nc', 'X\nb\nc'], // change far from the unterminated last line
    ['a', ''],
    ['', 'a'],
    [lines(10, (k) => `${k}`) + 'end', 'X\n' + lines(10, (k) => `${k}`) + 'end'],
  ];
  for (const [x, y] of bodies) {
    const patch = diffU({ f: x! }, { f: y! });
    crossCheck({ f: x! }, patch, { f: y! });
    if (HAVE_GIT) crossCheck({ f: x! }, gitDiff({ f: x! }, { f: y! }), { f: y! }, { git: true });
  }
});

test('a newline-at-end-of-file mismatch is refused, like GNU patch and git apply', () => {
  const cases: [string, string][] = [
    ['a\nb', '--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n'],
    ['a\nb\n', '--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+B\n'],
  ];
  for (const [orig, patch] of cases) {
    throwsKlpgen(
      () => ours({ f: orig }, patch),
      /^fix\.patch:3: hunk #1 of f does not apply \(the lines match, but not whether the file ends with a newline\)$/,
    );
    if (HAVE_PATCH) assert.equal(gnu({ f: orig }, patch), null);
    if (HAVE_GIT) assert.equal(gitApply({ f: orig }, patch), null);
  }
  // Appending after an unterminated last line: GNU patch adds a newline,
  // git apply joins the lines; refusing is the only safe answer.
  throwsKlpgen(
    () => ours({ f: 'a\nb' }, '--- a/f\n+++ b/f\n@@ -2,0 +3 @@\n+c\n'),
    /^fix\.patch:3: hunk #1 of f does not apply/,
  );
  assert.deepEqual(ours({ f: 'a\nb\n' }, '--- a/f\n+++ b/f\n@@ -2,0 +3 @@\n+c\n'), { f: 'a\nb\nc\n' });
});

test('new and deleted files without a trailing newline', { skip: !HAVE_DIFF || !HAVE_GIT }, () => {
  const a = { 'old.c': 'one\ntwo' };
  const b = { 'new.c': 'three' };
  crossCheck(a, diffU(a, b), b);
  crossCheck(a, gitDiff(a, b), b, { git: true });
});

test(
  'git format-patch with dashes and diff-like text in the commit message, and a signature',
  { skip: !HAVE_GIT },
  () => {
    const a = { 'mm/slab.c': C_ORIG, 'mm/old.c': lines(20, (k) => `old ${k}`) };
    const b = { 'mm/slab.c': C_NEW, 'mm/renamed.c': a['mm/old.c'].replace('old 10\n', 'new 10\n') };
    const message = [
      'mm: fix a leak',
      '',
      '--- this line starts with three dashes',
      '---',
      'diff this is not a diff',
      '    diff --git a/mm/quoted.c b/mm/quoted.c',
      '    --- a/mm/quoted.c',
      '---- more dashes',
      'diff --git a/mm/not-real.c b/mm/not-real.c',
      'is mentioned in prose.',
      '+++ plus',
      '',
      'Signed-off-by: T <t@example.org>',
    ].join('\n');
    const patch = formatPatch(a, b, message);
    assert.match(patch, /^Subject: \[PATCH\] mm: fix a leak$/m);
    assert.match(patch, /^-- \n2\.\d+/m, 'format-patch signature present');
    assert.ok(patch.indexOf('diff --git a/mm/not-real.c') < patch.indexOf('diff --git a/mm/slab.c'));
    const fps = parsePatch(patch, 'fix.patch');
    assert.deepEqual(
      fps.map((f) => [f.oldPath, f.newPath]),
      [
        ['mm/old.c', 'mm/renamed.c'],
        ['mm/slab.c', 'mm/slab.c'],
      ],
    );
    crossCheck(a, patch, b, { git: true });
  },
);

test(
  'a commit message quoting file headers and a hunk is skipped (GNU patch and git apply give up on it)',
  { skip: !HAVE_GIT },
  () => {
    const a = { 'mm/slab.c': C_ORIG };
    const b = { 'mm/slab.c': C_NEW };
    const message = [
      'mm: fix a leak',
      '',
      '--- a/mm/slab.c',
      '+++ b/mm/slab.c',
      'diff --git a/mm/not-real.c b/mm/not-real.c',
      'The lines above are quoted, and so is this hunk:',
      '@@ -1,2 +1,2 @@',
      '-\tkfree(p);',
      '--- dashes',
      'diff --git a/mm/prose.c b/mm/prose.c',
      'index of this paragraph: it starts with "index".',
    ].join('\n');
    const patch = formatPatch(a, b, message);
    assert.deepEqual(
      parsePatch(patch, 'fix.patch').map((f) => f.newPath),
      ['mm/slab.c'],
    );
    assert.deepEqual(ours(a, patch), b);
  },
);

test('a later patch applies on top of an earlier one', () => {
  const orig = { 'k/a.c': lines(12, (k) => `a${k}`) };
  const p1 = '--- a/k/a.c\n+++ b/k/a.c\n@@ -5,4 +5,5 @@\n a5\n a6\n+inserted\n a7\n a8\n';
  const p2 =
    '--- a/k/a.c\n+++ b/k/a.c\n@@ -6,3 +6,3 @@\n a6\n-inserted\n+changed\n a7\n--- /dev/null\n+++ b/k/n.c\n@@ -0,0 +1 @@\n+n\n';
  const p3 = 'diff --git a/k/n.c b/k/n.c\ndeleted file mode 100644\n--- a/k/n.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-n\n';
  assert.deepEqual(ours(orig, p1, p2), { 'k/a.c': orig['k/a.c'].replace('a6\n', 'a6\nchanged\n'), 'k/n.c': 'n\n' });
  assert.deepEqual(ours(orig, p1, p2, p3), { 'k/a.c': orig['k/a.c'].replace('a6\n', 'a6\nchanged\n') });
  // Without the first patch the second one has nothing to change.
  throwsKlpgen(
    () => ours(orig, p2),
    /^fix\.patch:3: hunk #1 of k\/a\.c does not apply \(line 7 is "a7", but the patch expects "inserted"\)$/,
  );
});

test('the original contents passed in are not modified and the reader is only asked', () => {
  const orig = { 'x.c': 'a\nb\n' };
  const asked: string[] = [];
  const res = applyPatches([{ name: 'p', text: '--- a/x.c\n+++ b/x.c\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n' }], (p) => {
    asked.push(p);
    return orig[p as 'x.c'] ?? null;
  });
  assert.deepEqual(asked, ['x.c']);
  assert.equal(res.get('x.c'), 'a\nc\n');
  assert.equal(orig['x.c'], 'a\nb\n');
});

// ---------------------------------------------------------------- refusals

test('a hunk that does not apply names the patch line, hunk number and first difference', { skip: !HAVE_DIFF }, () => {
  const a = { 'drivers/foo.c': C_ORIG };
  const patch = diffU(a, { 'drivers/foo.c': C_NEW });
  const second = parsePatch(patch, 'fix.patch')[0]!.hunks[1]!;
  const broken = { 'drivers/foo.c': C_ORIG.replace('p->v7[i]', 'p->w7[i]') };
  throwsKlpgen(
    () => ours(broken, patch),
    new RegExp(
      `^fix\\.patch:${second.patchLine}: hunk #2 of drivers/foo\\.c does not apply \\(line \\d+ is "\\\\t\\\\tret \\+= p->w7\\[i\\];", but the patch expects "\\\\t\\\\tret \\+= p->v7\\[i\\];"\\)$`,
    ),
  );
  if (HAVE_PATCH) assert.equal(gnu(broken, patch), null, 'GNU patch without fuzz refuses it too');
});

test('a hunk near the end of the file does not apply in the middle (like GNU patch)', { skip: !HAVE_DIFF }, () => {
  const a = { f: lines(20, (k) => `l${k}`) };
  const patch = diffU(a, { f: a.f.replace('l19\n', 'L19\n') });
  const grown = { f: a.f + 'more\n' };
  throwsKlpgen(
    () => ours(grown, patch),
    /^fix\.patch:4: hunk #1 of f does not apply \(the hunk must be at the end of the file\)$/,
  );
  if (HAVE_PATCH) assert.equal(gnu(grown, patch), null);
});

test('truncated and miscounted hunks are errors with the patch line', () => {
  const good = 'diff --git a/f b/f\nindex 1..2 100644\n--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n d\n';
  assert.equal(parsePatch(good, 'f.patch').length, 1);
  throwsKlpgen(
    () => parsePatch(good.replace(/ d\n$/, ''), 'f.patch'),
    /^f\.patch:5: truncated hunk: the patch ends after 2 old and 2 new lines/,
  );
  throwsKlpgen(
    () => parsePatch(good.replace(/ d\n$/, '') + 'diff --git a/g b/g\n', 'f.patch'),
    /^f\.patch:9: truncated or corrupt hunk: found "diff --git a\/g b\/g"/,
  );
  throwsKlpgen(
    () => parsePatch(good.replace(' d\n', '+e\n d\n'), 'f.patch'),
    /^f\.patch:10: corrupt hunk: more lines than its header says/,
  );
  throwsKlpgen(
    () => parsePatch(good + '-extra\n', 'f.patch'),
    /^f\.patch:10: corrupt hunk: more lines than its header says/,
  );
  throwsKlpgen(
    () => parsePatch(good + 'garbage\n@@ -7 +7 @@\n-x\n+y\n', 'f.patch'),
    /^f\.patch:11: hunk without a file header/,
  );
  throwsKlpgen(
    () => parsePatch(good.replace('@@ -1,3 +1,3 @@', '@@ -1,3 +1,3'), 'f.patch'),
    /^f\.patch:5: malformed hunk header/,
  );
  throwsKlpgen(
    () => parsePatch(good.replace('-b\n', '-b\n\\ No newline at end of file\n'), 'f.patch'),
    /^f\.patch:5: misplaced/,
  );
  throwsKlpgen(() => parsePatch('diff --git a/f b/f\nindex 1..2 100644\n', 'f.patch'), /^f\.patch:1: no hunks for f$/);
  throwsKlpgen(
    () => parsePatch('diff --git a/f b/f\n', 'f.patch'),
    /^f\.patch:1: diff --git header without any changes$/,
  );
});

test('large files: 300000 lines, hunk moved by an offset near the end', () => {
  const big = lines(300_000, (k) => `\tline(${k});`);
  const patch =
    '--- a/big.c\n+++ b/big.c\n@@ -299990,7 +299990,7 @@\n \tline(299990);\n \tline(299991);\n \tline(299992);\n-\tline(299993);\n+\tLINE(299993);\n \tline(299994);\n \tline(299995);\n \tline(299996);\n';
  const target = '/* one more */\n' + big;
  const r = applyFilePatch(target, parsePatch(patch, 'big.patch')[0]!, 'big.patch');
  assert.deepEqual(r.offsets, [1]);
  assert.equal(r.text, target.replace('\tline(299993);\n', '\tLINE(299993);\n'));
});

test('a patch with CRLF line endings is refused with a hint', () => {
  throwsKlpgen(
    () => parsePatch('--- a/f\r\n+++ b/f\r\n@@ -1 +1 @@\r\n-a\r\n+b\r\n', 'dos.patch'),
    /^dos\.patch:3: the patch has CRLF line endings/,
  );
});

test('trailing text after the last hunk is ignored', () => {
  const text = '--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n-- \n2.39.5\n\nThanks!\n';
  assert.equal(ours({ f: 'a\n' }, text).f, 'b\n');
});

test('binary patches are refused', { skip: !HAVE_GIT }, () => {
  const a = { 'fw.bin': 'ab\0cd\n' };
  const b = { 'fw.bin': 'ab\0ce\n' };
  throwsKlpgen(() => parsePatch(gitDiff(a, b), 'bin.patch'), /^bin\.patch:\d+: binary patches are not supported$/);
  throwsKlpgen(
    () => parsePatch(gitDiff(a, b, ['--binary']), 'bin.patch'),
    /^bin\.patch:\d+: binary patches are not supported$/,
  );
  if (HAVE_DIFF) throwsKlpgen(() => parsePatch(diffU(a, b), 'bin.patch'), /binary patches are not supported/);
});

test('paths outside the tree are refused', () => {
  const hunk = '@@ -1 +1 @@\n-a\n+b\n';
  for (const [hdr, re] of [
    ['--- a/../etc/passwd\n+++ b/../etc/passwd\n', /^evil\.patch:1: path a\/\.\.\/etc\/passwd leaves the source tree/],
    ['--- a/x/../../y\n+++ b/x/../../y\n', /leaves the source tree/],
    ['--- /etc/passwd\n+++ /etc/passwd\n', /^evil\.patch:1: absolute path \/etc\/passwd is outside the source tree/],
    ['--- a//etc/passwd\n+++ b//etc/passwd\n', /absolute path \/etc\/passwd/],
    [
      'diff --git a/x b/y\nsimilarity index 90%\nrename from x\nrename to ../y\n--- a/x\n+++ b/../y\n',
      /leaves the source tree/,
    ],
  ] as const) {
    throwsKlpgen(() => applyPatches([{ name: 'evil.patch', text: hdr + hunk }], () => 'a\n'), re);
  }
});

test('input without any diff is refused', () => {
  for (const text of [
    '',
    'hello\nworld\n',
    'From: x\nSubject: y\n\n---\n diffstat | 1 +\n',
    '--- a/f\n+++ b/f\nno hunk\n',
  ]) {
    throwsKlpgen(() => parsePatch(text, 'junk.patch'), /^junk\.patch: no file changes found/);
    throwsKlpgen(() => applyPatches([{ name: 'junk.patch', text }], () => null), /no file changes found/);
  }
});

test('new files must not exist, deleted files must match exactly, patched files must exist', () => {
  const mk = 'diff --git a/n.c b/n.c\nnew file mode 100644\n--- /dev/null\n+++ b/n.c\n@@ -0,0 +1 @@\n+n\n';
  const fpNew = parsePatch(mk, 'p')[0]!;
  assert.equal(applyFilePatch(null, fpNew, 'p').text, 'n\n');
  assert.equal(applyFilePatch('', fpNew, 'p').text, 'n\n');
  throwsKlpgen(() => applyFilePatch('x\n', fpNew, 'p'), /^p:5: patch creates n\.c, which already exists$/);
  const del = 'diff --git a/d.c b/d.c\ndeleted file mode 100644\n--- a/d.c\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n';
  const fpDel = parsePatch(del, 'p')[0]!;
  assert.deepEqual(applyFilePatch('a\nb\n', fpDel, 'p'), { text: null, offsets: [0] });
  throwsKlpgen(
    () => applyFilePatch('a\nb\nc\n', fpDel, 'p'),
    /^p:5: patch deletes d\.c, but the file has lines the patch does not remove$/,
  );
  throwsKlpgen(
    () => applyFilePatch('a\nb', fpDel, 'p'),
    /does not apply \(the lines match, but not whether the file ends with a newline\)/,
  );
  throwsKlpgen(() => applyFilePatch(null, fpDel, 'p'), /d\.c to patch does not exist/);
  throwsKlpgen(
    () =>
      applyPatches(
        [{ name: 'r', text: 'diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n' }],
        () => 'same\n',
      ),
    /cannot rename x to y, which already exists/,
  );
});

// ---------------------------------------------------------------- randomized

/** mulberry32: small, seeded, reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test(
  'randomized: random files and edits, diff -u or git diff, reproduce the edit (200 seeded cases)',
  { skip: !HAVE_DIFF },
  () => {
    const rand = rng(20240601);
    const int = (n: number) => Math.floor(rand() * n);
    // A small pool of lines makes repeated lines, so context is ambiguous.
    const pool = ['{', '}', '\treturn 0;', '', '\tif (x)', '\t\tgoto out;', 'out:', '\tkfree(p);', '/* c */'];
    const line = () => (rand() < 0.7 ? pool[int(pool.length)]! : `v${int(1000)}`);
    let offsetsSeen = 0;
    let gnuCompared = 0;
    for (let c = 0; c < 200; c++) {
      const orig = Array.from({ length: int(40) }, line);
      const edited = [...orig];
      for (let e = 1 + int(5); e > 0; e--) {
        const at = int(edited.length + 1);
        const op = int(3);
        if (op === 0) edited.splice(at, 0, ...Array.from({ length: 1 + int(3) }, line));
        else if (op === 1) edited.splice(at, 1 + int(3));
        else edited.splice(at, 1, line());
      }
      const text = (ls: string[], nl: boolean) => (ls.length ? ls.join('\n') + (nl ? '\n' : '') : '');
      const origNl = rand() < 0.8;
      const a = text(orig, origNl);
      const b = text(edited, rand() < 0.2 ? !origNl : origNl);
      if (a === b) continue;
      const ctx = int(4);
      const useGit = c % 4 === 3 && HAVE_GIT;
      const patch = useGit ? gitDiff({ f: a }, { f: b }, [`-U${ctx}`]) : diffU({ f: a }, { f: b }, [`-U${ctx}`]);
      const msg = `case ${c}\n${patch}`;
      const fp = parsePatch(patch, 'r.patch');
      assert.equal(fp.length, 1, msg);
      const r = applyFilePatch(a, fp[0]!, 'r.patch');
      assert.equal(r.text, b, msg);
      assert.ok(
        r.offsets.every((o) => o === 0),
        msg,
      );
      // The same patch on a drifted target (unique lines added at the top):
      // ours and GNU patch must agree on success and on the result.
      if (HAVE_PATCH && ctx > 0) {
        const drifted = `added ${c}\nadded too\n` + a;
        let mine: string | null;
        try {
          const rr = applyFilePatch(drifted, fp[0]!, 'r.patch');
          mine = rr.text;
          if (rr.offsets.some((o) => o !== 0)) offsetsSeen++;
        } catch (err) {
          assert.ok(err instanceof KlpgenError, String(err));
          mine = null;
        }
        const theirs = gnu({ f: drifted }, patch);
        assert.equal(mine, theirs === null ? null : (theirs.f ?? ''), `drifted ${msg}`);
        gnuCompared++;
      }
    }
    if (HAVE_PATCH) {
      assert.ok(gnuCompared > 100, `compared ${gnuCompared} with GNU patch`);
      assert.ok(offsetsSeen > 50, `offsets used in ${offsetsSeen} cases`);
    }
  },
);

test('a labelled diff -N of a missing file creates it, as GNU patch does; other hunks on a missing file still fail', () => {
  const text = '--- a/include/new.h\n+++ b/include/new.h\n@@ -0,0 +1,2 @@\n+#define NEW 1\n+int new_fn(void);\n';
  const fp = parsePatch(text, 'n.patch')[0]!;
  assert.equal(applyFilePatch(null, fp, 'n.patch').text, '#define NEW 1\nint new_fn(void);\n');
  const edit = parsePatch('--- a/x.c\n+++ b/x.c\n@@ -1,1 +1,1 @@\n-a\n+b\n', 'e.patch')[0]!;
  throwsKlpgen(() => applyFilePatch(null, edit, 'e.patch'), /x\.c to patch does not exist/);
});
