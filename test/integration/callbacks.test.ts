import { strict as assert } from 'node:assert';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { VmReport } from '../../src/vm/vm-test.js';
import { ROOT, abiArgs, createFixture, ensureTarget, klpgen, tempDir } from '../helpers.js';

/**
 * A fix that carries state, on the real kernel: proc_pid_status counts each task's status
 * reads in a shadow variable (klp_shadow_get_or_alloc); the fix declares the four callbacks
 * and a klp_state with <klpgen/livepatch.h>, and its post-unpatch callback frees every shadow
 * variable. Then a cumulative patch (atomic replace, state version 2) takes the shadow
 * variables over from the first: the kernel runs its callbacks, not the replaced patch's
 * unpatch callbacks. Both are proven in one VM run, the callback order read from the console.
 */
const fixture = (name: string) => join(ROOT, 'test/fixtures/patches', name);

/** The fixture's console lines, in order, without timestamps. */
function fixtureLines(serialLog: string): string[] {
  return readFileSync(serialLog, 'utf8')
    .split('\n')
    .map((l) => /klpgen-fixture: ([^\r]*)/.exec(l)?.[1]?.trim())
    .filter((l): l is string => l !== undefined);
}

test('callbacks and shadow variables: declared in the fix, wired into the klp_object and klp_patch, fired in order; a cumulative patch takes the state over', () => {
  ensureTarget();
  const dir = tempDir('callbacks');
  try {
    const a = createFixture('shadow-callbacks.patch', 'klpgen_status_a', dir);
    assert.equal(a.report.verification.status, 'passed', JSON.stringify(a.report.verification));
    assert.deepEqual(
      a.report.analysis.mustReplace.map((e) => e.symbol),
      ['proc_pid_status'],
    );
    const scaffolding = readFileSync(join(dir, 'klpgen_status_a', '4-source', 'klpgen-status-a-klp.c'), 'utf8');
    for (const line of [
      '.pre_patch = status_reads_pre_patch,',
      '.post_patch = status_reads_post_patch,',
      '.pre_unpatch = status_reads_pre_unpatch,',
      '.post_unpatch = status_reads_post_unpatch,',
      '{ .id = 0x6b6c7001, .version = 1 },',
      '.states = states,',
    ])
      assert.ok(scaffolding.includes(line), `scaffolding lacks ${line}:\n${scaffolding}`);

    const b = createFixture('shadow-callbacks-cumulative.patch', 'klpgen_status_b', dir);
    assert.equal(b.report.verification.status, 'passed', JSON.stringify(b.report.verification));

    // A alone: the callbacks in the kernel's order, the shadow variable made and freed.
    const one = klpgen(['vm-test', a.ko, '--test', fixture('shadow-callbacks-LOADED.test'), '--json', ...abiArgs()]);
    const r1 = JSON.parse(one.stdout) as VmReport;
    assert.equal(one.code, 0, r1.failures.join('\n'));
    assert.equal(r1.test?.before?.exitCode, 1);
    assert.equal(r1.test?.after?.exitCode, 0);
    assert.equal(r1.test?.unloaded?.exitCode, 1);
    const l1 = fixtureLines(r1.serialLog);
    assert.deepEqual(l1.slice(0, 3), ['pre_patch', 'post_patch (state version 1)', 'pre_unpatch'], r1.serialLog);
    assert.match(l1[3] ?? '', /^post_unpatch: [1-9]\d* shadow variables freed$/);
    assert.equal(l1.length, 4, l1.join('\n'));

    // A, then B replacing it: B takes the state over; A is replaced, its unpatch callbacks never run.
    const two = klpgen([
      'vm-test',
      a.ko,
      b.ko,
      '--test',
      fixture('shadow-callbacks-cumulative-LOADED.test'),
      '--json',
      ...abiArgs(),
    ]);
    const r2 = JSON.parse(two.stdout) as VmReport;
    assert.equal(two.code, 0, r2.failures.join('\n'));
    assert.equal(r2.patches[0]?.replaced, true, JSON.stringify(r2.patches));
    assert.equal(r2.patches[1]?.replaced, false);
    assert.ok(r2.patches.every((p) => p.unloaded));
    const l2 = fixtureLines(r2.serialLog);
    assert.deepEqual(l2.slice(0, 5), [
      'pre_patch',
      'post_patch (state version 1)',
      'B pre_patch: takes over the shadow variables of the patch it replaces',
      'B post_patch (state version 2)',
      'B pre_unpatch',
    ]);
    assert.match(l2[5] ?? '', /^B post_unpatch: [1-9]\d* shadow variables freed$/);
    assert.equal(l2.length, 6, l2.join('\n'));
    assert.deepEqual(r2.problems, []);

    // B built with --no-replace: stacked on A, both stay enabled; unloading runs B's callbacks,
    // then A's (B's post-unpatch already freed the shadow variables).
    const c = createFixture('shadow-callbacks-cumulative.patch', 'klpgen_status_c', dir, ['--no-replace']);
    assert.ok(
      readFileSync(join(dir, 'klpgen_status_c', '4-source', 'klpgen-status-c-klp.c'), 'utf8').includes(
        '.replace = false,',
      ),
    );
    const three = klpgen([
      'vm-test',
      a.ko,
      c.ko,
      '--test',
      fixture('shadow-callbacks-cumulative-LOADED.test'),
      '--json',
      ...abiArgs(),
    ]);
    const r3 = JSON.parse(three.stdout) as VmReport;
    assert.equal(three.code, 0, r3.failures.join('\n'));
    assert.ok(
      r3.patches.every((p) => !p.replaced && p.disabled && p.unloaded),
      JSON.stringify(r3.patches),
    );
    const l3 = fixtureLines(r3.serialLog);
    assert.deepEqual(l3.slice(0, 5), l2.slice(0, 5));
    assert.match(l3[5] ?? '', /^B post_unpatch: [1-9]\d* shadow variables freed$/);
    assert.deepEqual(l3.slice(6), ['pre_unpatch', 'post_unpatch: 0 shadow variables freed']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
