import { strict as assert } from 'node:assert';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import { abiArgs, ensureTarget, klpgen } from '../helpers.js';

test('target setup: manifest names the ABI, the Debian version and an unchanged .config', () => {
  const t = ensureTarget();
  assert.match(t.abi, /^6\.1\.0-\d+$/);
  assert.equal(t.kernelRelease, `${t.abi}-amd64`);
  const r = klpgen(['target', 'show', '--abi', t.abi, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout) as {
    debianVersion: string;
    configDrift: string[];
    compiler: { matches: boolean };
    paths: Record<string, string>;
  };
  assert.match(m.debianVersion, /^6\.1\.\d+-\d+/);
  assert.deepEqual(m.configDrift, [], 'olddefconfig changed the headers package .config');
  assert.equal(m.compiler.matches, true, 'gcc-12 is not the compiler the target was built with');
  for (const key of ['vmlinuz', 'vmlinux', 'systemMap', 'moduleSymvers', 'config']) {
    assert.ok(statSync(m.paths[key] as string).size > 0, `${key} missing`);
  }
  // The real symbol table, not the image package's stub.
  assert.ok(statSync(m.paths.systemMap as string).size > 1_000_000);
});

test('target setup: a second run is a no-op under 10 s', () => {
  const t = ensureTarget();
  const manifestMtime = statSync(`${t.paths.root}/manifest.json`).mtimeMs;
  const configMtime = statSync(t.paths.config as string).mtimeMs;
  const r = klpgen(['target', 'setup', '--abi', t.abi, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { abi: string; changed: boolean; timings: { skipped: boolean; name: string }[] };
  assert.equal(out.abi, t.abi);
  assert.equal(out.changed, false);
  assert.ok(r.seconds < 10, `second setup took ${r.seconds} s`);
  assert.equal(statSync(`${t.paths.root}/manifest.json`).mtimeMs, manifestMtime);
  assert.equal(statSync(t.paths.config as string).mtimeMs, configMtime);
  assert.ok(out.timings.filter((s) => s.name !== 'resolve ABI').every((s) => s.skipped));
});

test('target setup without --abi picks the newest ABI, and target list shows it', () => {
  if (abiArgs().length) return; // pinned by KLPGEN_TEST_ABI
  const t = ensureTarget();
  const r = klpgen(['target', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok((JSON.parse(r.stdout) as string[]).includes(t.abi));
});

test('target setup: an unknown ABI is one clear error line, non-zero, nothing set up', () => {
  const r = klpgen(['target', 'setup', '--abi', '6.1.0-9999']);
  assert.notEqual(r.code, 0);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('klpgen: error:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, /ABI 6\.1\.0-9999 not found.*available: 6\.1\.0-\d+/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'stack trace printed');
  assert.equal(klpgen(['target', 'show', '--abi', '6.1.0-9999']).code, 1);
});

test('target setup: a malformed ABI is rejected before any work', () => {
  const r = klpgen(['target', 'setup', '--abi', 'latest']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^klpgen: error: bad ABI 'latest'/m);
});
