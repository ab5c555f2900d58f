import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { alignLineNumbers, parseUnifiedZeroHunks } from '../../src/analyze/lines.js';
import { tempDir } from '../helpers.js';

/**
 * The original is compiled with the patched file's line numbers outside the hunks, so that
 * __LINE__ and debug lines agree where the fix changed nothing. diff pairs an inserted
 * comment's first line with an old `/*`, so the place after a hunk may be inside a comment,
 * where no directive can go: it moves down past the comment, numbered for where it lands.
 */
const ORIGINAL = [
  'int f(int x)', // 1
  '{', // 2
  '\tx++;', // 3
  '\t/*', // 4
  '\t * old comment', // 5
  '\t */', // 6
  '\treturn g(x);', // 7
  '}', // 8
  '',
].join('\n');
const PATCHED = [
  'int f(int x)',
  '{',
  '\tx++;',
  '\t/*',
  '\t * a new check',
  '\t */',
  '\tif (x < 0)',
  '\t\treturn 0;',
  '',
  '\t/*',
  '\t * old comment',
  '\t */',
  '\treturn g(x);',
  '}',
  '',
].join('\n');

/** Preprocess with cpp and read the line each output line claims, for a marker text. */
function lineOf(text: string, marker: string): number {
  const dir = tempDir('lines');
  const f = join(dir, 'x.c');
  writeFileSync(f, text);
  const out = execFileSync('gcc-12', ['-E', f], { encoding: 'utf8' }).split('\n');
  let line = 0;
  for (const l of out) {
    const m = /^# (\d+) /.exec(l);
    if (m) {
      line = Number(m[1]);
      continue;
    }
    if (l.includes(marker)) return line;
    line++;
  }
  return -1;
}

test('alignLineNumbers: a directive that would land inside a comment moves below it, numbered for its place', () => {
  const dir = tempDir('lines-diff');
  writeFileSync(join(dir, 'a.c'), ORIGINAL);
  writeFileSync(join(dir, 'b.c'), PATCHED);
  const d = spawnSync('diff', ['-U0', join(dir, 'a.c'), join(dir, 'b.c')], { encoding: 'utf8' });
  const hunks = parseUnifiedZeroHunks(d.stdout);
  const aligned = alignLineNumbers(ORIGINAL, hunks);
  assert.equal(aligned.skipped, 0, aligned.text);
  assert.equal(aligned.directives, 1);
  // `return g(x);` is line 13 in the patched file; so it must read in the aligned original.
  assert.equal(lineOf(PATCHED, 'return g'), 13);
  assert.equal(lineOf(aligned.text, 'return g'), 13, aligned.text);
  assert.equal(lineOf(aligned.text, 'x++'), 3);
});
