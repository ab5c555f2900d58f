import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CreateReport } from '../../src/create/create.js';
import type { VmReport } from '../../src/vm/vm-test.js';
import { workloadsFor } from '../../src/vm/workloads.js';
import { ROOT, klpgen, tempDir } from '../helpers.js';

/**
 * Real fixes from the corpus (the hand-checked ones that are not refused, at least 20):
 * each becomes a livepatch that loads in the VM, finishes its transition
 * within 10 s (the kernel's reliable stack check passes: ORC is right), runs a
 * workload of the patched subsystem while enabled, and unloads cleanly; a fix
 * inside a module is tested with that module loaded first.
 */
interface Expected {
  patch: string;
  abi: string;
  mustReplace: string[];
  refused: boolean;
  todo?: string;
  verified?: boolean;
}
const DIR = join(ROOT, 'test/corpus/expected');
const cases = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ name: f.replace(/\.json$/, ''), exp: JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Expected }))
  .filter(({ exp }) => !exp.refused && !exp.todo && exp.mustReplace.length > 0);

test('create corpus: at least twenty real fixes to prove', () => {
  assert.ok(cases.length >= 20, `${cases.length} cases`);
  assert.ok(
    cases.some(({ exp }) => exp.mustReplace.some((e) => !e.startsWith('vmlinux:'))),
    'no fix inside a module',
  );
});

const verified = new Map<string, string>();

for (const { name, exp } of cases) {
  test(`create corpus: ${name} loads, transitions and unloads in the VM`, () => {
    const setup = klpgen(['target', 'setup', '--abi', exp.abi]);
    assert.equal(setup.code, 0, setup.stderr);
    const dir = tempDir('create-corpus');
    try {
      const ko = join(dir, `${name}.ko`);
      // livepatch_NAME must fit in a module name: long patch names are cut.
      const modName = name.replace(/[^A-Za-z0-9]/g, '_').slice(0, 40);
      const c = klpgen([
        'create',
        join(ROOT, exp.patch),
        '--name',
        modName,
        '-o',
        ko,
        '--work-dir',
        join(dir, 'work'),
        '--abi',
        exp.abi,
        '--json',
        '--allow-unverified',
      ]);
      assert.equal(c.code, 0, c.stderr);
      const made = JSON.parse(c.stdout) as CreateReport;
      verified.set(name, made.verification.status);
      if (exp.verified)
        assert.equal(
          made.verification.status,
          'passed',
          JSON.stringify(made.verification.functions.filter((f) => !f.equal)),
        );
      assert.deepEqual(
        made.analysis.mustReplace.map((e) => `${e.object}:${e.symbol},${e.sympos}`).sort(),
        exp.mustReplace,
      );
      const objects = [...new Set(exp.mustReplace.map((e) => e.split(':')[0] as string))].filter(
        (o) => o !== 'vmlinux',
      );
      const workloads = workloadsFor(made.analysis.files.map((f) => f.path));
      const v = klpgen([
        'vm-test',
        ko,
        ...objects.flatMap((o) => ['--load-modules', o]),
        '--workload',
        workloads.join(','),
        '--abi',
        exp.abi,
        '--json',
      ]);
      const rep = JSON.parse(v.stdout) as VmReport;
      assert.equal(v.code, 0, rep.failures.join('\n'));
      const p = rep.patches[0]!;
      assert.ok(p.transitionSeconds !== null && p.transitionSeconds <= 10, `transition ${p.transitionSeconds}`);
      assert.deepEqual([p.loaded, p.enabled, p.disabled, p.unloaded], [true, true, true, true]);
      assert.deepEqual(
        rep.workloads.map((w) => [w.kind, w.exitCode]),
        workloads.map((k) => [k, 0]),
      );
      assert.deepEqual(rep.problems, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('create corpus: every one of the real fixes verifies byte for byte against its patched build (extracted code)', () => {
  const passed = [...verified].filter(([, s]) => s === 'passed').map(([n]) => n);
  process.stderr.write(
    `verified: ${passed.length}/${verified.size}: ${[...verified].map(([n, s]) => `${n}=${s}`).join(' ')}\n`,
  );
  assert.ok(
    verified.size >= 20 && passed.length === verified.size,
    [...verified].map(([n, s]) => `${n}=${s}`).join('\n'),
  );
});
