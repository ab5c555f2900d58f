/**
 * Debian version ordering, from the rules of deb-version(7), and checked
 * against dpkg itself (`dpkg --compare-versions`) when it is installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { compareDebVersions } from '../../src/target/debversion.js';

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);
const neg = (n: number) => (n === 0 ? 0 : -n);

function assertLess(a: string, b: string) {
  assert.equal(sign(compareDebVersions(a, b)), -1, `${a} < ${b}`);
  assert.equal(sign(compareDebVersions(b, a)), 1, `${b} > ${a}`);
}

function assertEqual(a: string, b: string) {
  assert.equal(compareDebVersions(a, b), 0, `${a} == ${b}`);
  assert.equal(compareDebVersions(b, a), 0, `${b} == ${a}`);
}

test('returns -1, 0 or 1', () => {
  assert.equal(compareDebVersions('1.0', '2.0'), -1);
  assert.equal(compareDebVersions('2.0', '1.0'), 1);
  assert.equal(compareDebVersions('2.0', '2.0'), 0);
  assert.equal(compareDebVersions('1.0~rc1', '1.0'), -1);
  assert.equal(compareDebVersions('1.0a', '1.0'), 1);
});

test('identical versions compare equal', () => {
  for (const v of ['0', '1.0', '6.1.192-2', '1:2.3~rc1-4+deb12u1', '2.36.1-8+deb12u1', '']) {
    assert.equal(compareDebVersions(v, v), 0, v);
  }
});

test('Debian kernel versions order by upload', () => {
  assertLess('6.1.192-1', '6.1.192-2');
  assertLess('6.1.190-1', '6.1.192-1');
  assertLess('6.1.76-1', '6.1.190-1');
  // Numeric, not lexical: 76 < 190 although "7" > "1".
  assertLess('6.1.76-1', '6.1.192-2');
  assertLess('6.1.9-1', '6.1.10-1');
});

test('epoch outranks everything else', () => {
  assertLess('6.1.192-2', '1:6.1.76-1');
  assertLess('1:9.9', '2:0.1');
  assertLess('1:1.0-1', '2:0~0');
  assertEqual('0:1.0', '1.0');
  assertEqual('0:6.1.192-2', '6.1.192-2');
  assertLess('1.0', '1:1.0');
});

test('~ sorts before everything, even the end of the string', () => {
  assertLess('1.0~rc1', '1.0');
  assertLess('1.0~rc1', '1.0~rc2');
  assertLess('1.0~~', '1.0~');
  assertLess('1.0~~a', '1.0~');
  assertLess('1.0~', '1.0');
  assertLess('1.0~rc1-1', '1.0-1');
  assertLess('6.1~rc7', '6.1');
  assertLess('1.0-1~bpo1', '1.0-1');
  assertLess('1.0~beta', '1.0~rc');
});

test('letters sort before non-letters; anything sorts after the end', () => {
  assertLess('1.0', '1.0a');
  assertLess('1.0', '1.0+');
  assertLess('1.0a', '1.0+');
  assertLess('1.0a', '1.0.');
  assertLess('1.0+', '1.0.');
  assertLess('1.0A', '1.0a'); // ASCII order among letters
  assertLess('1.0a', '1.0b');
  assertLess('1.0a', '1.0aa');
  assertLess('1.0+deb12u1', '1.0+deb12u2');
  assertLess('2.36.1-8', '2.36.1-8+deb12u1');
});

test('letters against digits: a non-digit run ends where digits start', () => {
  // After "1.", 'a' meets a digit, i.e. the end of the other's non-digit
  // run: a letter sorts after that end, '~' before it.
  assertLess('1.1', '1.a');
  assertLess('1.~', '1.1');
  assertLess('1.0a', '1.01'); // 0 < 1 decides before the letter is reached
  assertLess('1a', '1.');
  assertLess('a', 'b');
  assertLess('1.2a', '1.2.3');
});

test('digit runs compare numerically; leading zeros do not count', () => {
  assertEqual('01.0', '1.0');
  assertEqual('1.000', '1.0');
  assertLess('1.9', '1.10');
  assertLess('1.0.9', '1.0.10');
  assertLess('2.0', '10.0');
});

test('revision: absent equals -0 and sorts before -1', () => {
  assertEqual('1.0', '1.0-0');
  assertLess('1.0', '1.0-1');
  assertLess('1.0-1', '1.0.1');
  assertLess('1.0-9', '1.0-10');
  // The last hyphen starts the revision: upstream may contain hyphens.
  assertLess('1.0-beta-2', '1.0-beta-10');
  assertLess('1.0-beta-2', '1.0-gamma-1');
  assertLess('1.0-1', '1.0-1.1');
  assertLess('1.0-1', '1.0-1ubuntu1');
  assertLess('1.0-1~deb12u1', '1.0-1');
});

test('sorting a shuffled list gives the expected order (antisymmetric, transitive)', () => {
  const expected = [
    '1.0~~',
    '1.0~~a',
    '1.0~',
    '1.0~beta1',
    '1.0~rc1',
    '1.0~rc2',
    '1.0',
    '1.0-1',
    '1.0-1+b1',
    '1.0-2',
    '1.0a',
    '1.0+dfsg-1',
    '1.0.1',
    '1.1',
    '6.1.76-1',
    '6.1.190-1',
    '6.1.192-1',
    '6.1.192-2',
    '10.0',
    '1:0.1',
    '1:1.0~rc1',
    '2:0~0',
  ];
  // Deterministic shuffles (a fixed LCG), several of them.
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 20; round++) {
    const shuffled = [...expected];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j] as string, shuffled[i] as string];
    }
    assert.deepEqual([...shuffled].sort(compareDebVersions), expected);
    assert.deepEqual(
      [...shuffled].sort((a, b) => compareDebVersions(b, a)),
      [...expected].reverse(),
    );
  }
  // Every pair: antisymmetric, and consistent with the list's order.
  for (let i = 0; i < expected.length; i++) {
    for (let j = 0; j < expected.length; j++) {
      const a = expected[i] as string;
      const b = expected[j] as string;
      const c = compareDebVersions(a, b);
      assert.equal(sign(c), sign(i - j), `${a} vs ${b}`);
      assert.equal(sign(c), neg(sign(compareDebVersions(b, a))), `antisymmetry ${a} vs ${b}`);
    }
  }
});

// ---------------------------------------------------------------- dpkg cross-check

const hasDpkg = spawnSync('dpkg', ['--version'], { stdio: 'ignore' }).status === 0;

function dpkgCompare(a: string, b: string): number {
  for (const [op, r] of [
    ['lt', -1],
    ['eq', 0],
    ['gt', 1],
  ] as const) {
    const s = spawnSync('dpkg', ['--compare-versions', a, op, b], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (s.status === 0) return r;
  }
  throw new Error(`dpkg could not compare ${a} and ${b}`);
}

const PAIRS: [string, string][] = [
  ['6.1.192-2', '6.1.192-1'],
  ['6.1.192-1', '6.1.190-1'],
  ['6.1.190-1', '6.1.76-1'],
  ['6.1.176-1', '6.1.192-2'],
  ['1.0~rc1', '1.0'],
  ['1.0~rc1', '1.0~rc2'],
  ['1.0~~', '1.0~'],
  ['1.0~', '1.0'],
  ['1.0', '1.0a'],
  ['1.0a', '1.0+'],
  ['1.0+', '1.0.'],
  ['1.0A', '1.0a'],
  ['1.01', '1.0a'],
  ['1.1', '1.a'],
  ['1.~', '1.1'],
  ['1a', '1.'],
  ['1.2.3', '1.2a'],
  ['01.0', '1.0'],
  ['1.000', '1.0'],
  ['1.9', '1.10'],
  ['1.0', '1.0-0'],
  ['1.0', '1.0-1'],
  ['1.0-1', '1.0.1'],
  ['1.0-beta-2', '1.0-beta-10'],
  ['1.0-1', '1.0-1ubuntu1'],
  ['1.0-1~deb12u1', '1.0-1'],
  ['1.0-1', '1.0-1+b1'],
  ['0:1.0', '1.0'],
  ['1:1.0', '1.0'],
  ['1:0.1', '6.1.192-2'],
  ['2:0~0', '1:9.9'],
  ['2.36.1-8', '2.36.1-8+deb12u1'],
  ['2.36.1-8+deb12u1', '2.36.1-8+deb12u2'],
  ['1.0+dfsg-1', '1.0-1'],
  ['1.0+dfsg', '1.0.1'],
  ['3.0.11-1~deb12u2', '3.0.11-1'],
  ['4.3~', '4.3'],
  ['0.120+deb8u2', '0.120'],
  ['2019.06.03-1~', '2019.06.03-1'],
  ['12-7', '12.7'],
  ['1.0.0', '1.0'],
  ['abc', 'abd'],
  ['1.0-a', '1.0-1'],
  ['7.88.1-10+deb12u5', '7.88.1-10+deb12u12'],
];

test('agrees with dpkg --compare-versions', { skip: hasDpkg ? false : 'dpkg not installed' }, () => {
  assert.ok(PAIRS.length >= 40);
  for (const [a, b] of PAIRS) {
    const want = dpkgCompare(a, b);
    assert.equal(sign(compareDebVersions(a, b)), want, `${a} vs ${b} (dpkg: ${want})`);
    assert.equal(sign(compareDebVersions(b, a)), neg(want), `${b} vs ${a} (dpkg: ${neg(want)})`);
  }
});
