import { strict as assert } from 'node:assert';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { VmReport } from '../../src/vm/vm-test.js';
import { ROOT, ensureTarget, klpgen, tempDir } from '../helpers.js';

/** Copy a module's sources to a temp dir (never build in the repo) and build it against the target. */
function buildFixture(abi: string, from: string): { dir: string; result: ReturnType<typeof klpgen> } {
  const dir = tempDir('kmod');
  cpSync(from, dir, { recursive: true });
  return { dir, result: klpgen(['build-module', dir, '--abi', abi, '--json']) };
}

/** The LOADED test for the kernel's sample: its patched cmdline_proc_show prints this. */
const SAMPLE_TEST = "#!/bin/sh\ngrep -q 'this has been live patched' /proc/cmdline\n";

let sampleKo: string | undefined;
function sampleModule(): string {
  if (sampleKo) return sampleKo;
  const t = ensureTarget();
  const dir = tempDir('sample');
  cpSync(join(t.paths.source as string, 'samples/livepatch/livepatch-sample.c'), join(dir, 'livepatch-sample.c'));
  writeFileSync(join(dir, 'Kbuild'), 'obj-m += livepatch-sample.o\n');
  const r = klpgen(['build-module', dir, '--abi', t.abi, '--json']);
  assert.equal(r.code, 0, r.stderr);
  sampleKo = (JSON.parse(r.stdout) as { modules: string[] }).modules[0];
  assert.ok(sampleKo?.endsWith('livepatch-sample.ko'));
  return sampleKo!;
}

function loadedTest(): string {
  const p = join(tempDir('test'), 'cmdline-loaded.sh');
  writeFileSync(p, SAMPLE_TEST);
  return p;
}

test("vm-test proves the kernel's livepatch sample: LOADED test fails before, passes loaded, fails after", () => {
  const t = ensureTarget();
  const r = klpgen(['vm-test', sampleModule(), '--test', loadedTest(), '--abi', t.abi, '--json']);
  const rep = JSON.parse(r.stdout) as VmReport;
  assert.equal(r.code, 0, `${rep.failures.join('\n')}\n${r.stderr}`);
  assert.equal(rep.ok, true);
  assert.equal(rep.booted, true);
  const p = rep.patches[0]!;
  assert.equal(p.name, 'livepatch_sample');
  assert.deepEqual([p.loaded, p.enabled, p.disabled, p.unloaded], [true, true, true, true]);
  assert.ok(p.transitionSeconds !== null && p.transitionSeconds < 10, `transition ${p.transitionSeconds}`);
  assert.notEqual(rep.test?.before.exitCode, 0);
  assert.equal(rep.test?.after.exitCode, 0);
  assert.notEqual(rep.test?.unloaded.exitCode, 0);
  assert.deepEqual(rep.problems, []);
  const log = readFileSync(rep.serialLog, 'utf8');
  assert.match(log, /livepatch: 'livepatch_sample': patching complete/);
  assert.match(log, /livepatch: 'livepatch_sample': unpatching complete/);
});

test("vm-test loads the target's own modules first (with their dependencies)", () => {
  const t = ensureTarget();
  // xfs depends on libcrc32c, which has a soft dependency on crc32c.
  const r = klpgen(['vm-test', sampleModule(), '--load-modules', 'xfs', '--abi', t.abi, '--json']);
  const rep = JSON.parse(r.stdout) as VmReport;
  assert.equal(r.code, 0, rep.failures.join('\n'));
  assert.equal(rep.modulesAvailable, true);
  assert.deepEqual(rep.preloaded, [{ name: 'xfs', loaded: true }]);
  // libcrc32c needs crc32c, found by the kernel's request_module through the modules' aliases.
  for (const m of ['xfs', 'libcrc32c']) assert.ok(rep.loadedModules.includes(m), rep.loadedModules.join(' '));
});

test('vm-test: a LOADED test that hangs is cut off and reported', () => {
  const t = ensureTarget();
  const hang = join(tempDir('hang'), 'hang.sh');
  writeFileSync(hang, '#!/bin/sh\nsleep 100000\n');
  const r = klpgen(['vm-test', sampleModule(), '--test', hang, '--test-timeout', '3', '--abi', t.abi, '--json'], {
    timeoutMs: 120_000,
  });
  assert.equal(r.code, 1);
  const rep = JSON.parse(r.stdout) as VmReport;
  assert.equal(rep.ok, false);
  assert.equal(rep.test?.ok, false);
  assert.ok(
    rep.failures.some((f) => /LOADED test: .*timed out/.test(f)),
    rep.failures.join('\n'),
  );
  assert.ok(r.seconds < 90, `took ${r.seconds} s`);
});

test('vm-test: a module that panics the kernel gives a failed result, not a hang', () => {
  const t = ensureTarget();
  const { result } = buildFixture(t.abi, join(ROOT, 'test/fixtures/modules/panic'));
  assert.equal(result.code, 0, result.stderr);
  const ko = (JSON.parse(result.stdout) as { modules: string[] }).modules[0]!;
  const r = klpgen(['vm-test', ko, '--timeout', '120', '--abi', t.abi, '--json'], { timeoutMs: 200_000 });
  assert.equal(r.code, 1);
  const rep = JSON.parse(r.stdout) as VmReport;
  assert.equal(rep.ok, false);
  assert.equal(rep.timedOut, false);
  assert.ok(
    rep.problems.some((l) => /Kernel panic/.test(l)),
    rep.problems.join('\n'),
  );
});

test('vm-test: a VM that cannot finish in time is stopped and reported', () => {
  const t = ensureTarget();
  const r = klpgen(['vm-test', sampleModule(), '--timeout', '1', '--abi', t.abi, '--json'], { timeoutMs: 60_000 });
  assert.equal(r.code, 1);
  const rep = JSON.parse(r.stdout) as VmReport;
  assert.equal(rep.timedOut, true);
  assert.match(rep.failures[0] ?? '', /did not finish within 1 s/);
  assert.ok(r.seconds < 30);
});

test('vm-test: bad inputs are one clear error line', () => {
  const t = ensureTarget();
  const cases: [string[], RegExp][] = [
    [['/nonexistent/patch.ko'], /\/nonexistent\/patch\.ko: no such file/],
    [[join(ROOT, 'package.json')], /not a kernel module/],
    [[sampleModule(), '--test', '/nonexistent.sh'], /no such test script/],
    [[sampleModule(), '--load-modules', 'no_such_module_xyz'], /module no_such_module_xyz not found/],
    [[sampleModule(), '--timeout', 'soon'], /--timeout: not a positive number/],
  ];
  const plain = buildFixture(t.abi, join(ROOT, 'test/fixtures/modules/not-livepatch'));
  assert.equal(plain.result.code, 0, plain.result.stderr);
  cases.push([[join(plain.dir, 'plain.ko')], /not a livepatch module/]);
  for (const [args, msg] of cases) {
    const r = klpgen(['vm-test', ...args, '--abi', t.abi]);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test("build-module: a compile error shows the compiler's message", () => {
  const t = ensureTarget();
  const { result } = buildFixture(t.abi, join(ROOT, 'test/fixtures/modules/broken'));
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^klpgen: error: module build in .* failed:/m);
  assert.match(result.stderr, /broken\.c:6:\d+: error: ['‘]undeclared_variable['’] undeclared/);
});
