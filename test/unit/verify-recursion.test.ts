/**
 * verify() on gcc-12 objects: a recursive call reads the same whether the assembler resolved
 * it (a static function) or left a relocation (the module's global copy); a call elsewhere at
 * that place still differs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verify } from '../../src/verify/verify.js';
import { ROOT } from '../helpers.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'verify');
const FLAGS = [
  '-c',
  '-O2',
  '-fno-pic',
  '-mcmodel=kernel',
  '-ffunction-sections',
  '-fdata-sections',
  '-fno-optimize-sibling-calls',
  '-fno-ipa-cp',
  '-fno-ipa-sra',
];

test('a recursive call matches across static and global copies; a call to another function does not', () => {
  const dir = mkdtempSync(join(tmpdir(), 'klpgen-verify-'));
  try {
    const build = (name: string) => {
      const out = join(dir, `${name}.o`);
      execFileSync('gcc-12', [...FLAGS, '-o', out, join(FIXTURES, `${name}.c`)]);
      return out;
    };
    const patchedObject = build('recursive-static');
    const input = (moduleObject: string) => ({
      moduleObject,
      patchedObject,
      functions: new Map([['livepatch_walk', 'walk']]),
      codeChanged: ['walk'],
      replaced: new Set(['walk']),
      coveredByCallers: new Set<string>(),
    });
    const same = verify(input(build('recursive-global')));
    assert.equal(same.status, 'passed', JSON.stringify(same.functions));
    const other = verify(input(build('recursive-other')));
    assert.equal(other.status, 'failed', JSON.stringify(other.functions));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
