import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { VmReport } from '../../src/vm/vm-test.js';
import { ROOT, abiArgs, createFixture, ensureTarget, klpgen, tempDir } from '../helpers.js';

/**
 * Changed data on the real kernel: a fix to a string of fs/proc/array.c's
 * task_state_array (a static const table). No function's code changes; the
 * table's two readers (proc_pid_status and do_task_stat, through inlined
 * helpers) are replaced, the module carries the new table, and the verifier
 * checks the copy against the patched build's. Proven in the VM.
 */
const fixture = (name: string) => join(ROOT, 'test/fixtures/patches', name);

test('data: a changed static const table is carried by the module and its readers replaced; VM-proven', () => {
  ensureTarget();
  const dir = tempDir('data-task-state');
  try {
    const { ko, report: r } = createFixture('data-task-state.patch', 'klpgen_task_state', dir);
    assert.deepEqual(r.analysis.refusals, []);
    assert.deepEqual(
      r.analysis.mustReplace.map((e) => `${e.symbol}:${e.reasons.map((x) => x.kind).join('+')}`).sort(),
      ['do_task_stat:data', 'proc_pid_status:data'],
    );
    assert.deepEqual(r.analysis.tus[0]?.codeChanged, [], 'no function of array.c changes its code');
    assert.deepEqual(r.analysis.tus[0]?.changedData, [
      { name: 'task_state_array', readers: ['do_task_stat', 'proc_pid_status'] },
    ]);
    assert.equal(r.verification.status, 'passed', JSON.stringify(r.verification));
    assert.deepEqual(
      (r.verification.data ?? []).map((d) => `${d.name}:${d.equal}`),
      ['task_state_array:true'],
    );
    assert.deepEqual(
      r.code.map((x) => `${x.file}:${x.how}`),
      ['fs/proc/array.c:extracted'],
    );

    const v = klpgen(['vm-test', ko, '--test', fixture('data-task-state-LOADED.test'), '--json', ...abiArgs()]);
    const rep = JSON.parse(v.stdout) as VmReport;
    assert.equal(v.code, 0, rep.failures.join('\n'));
    assert.equal(rep.test?.before?.exitCode, 1, 'the running kernel says "R (running)"');
    assert.equal(rep.test?.after?.exitCode, 0);
    assert.equal(rep.test?.unloaded?.exitCode, 1, 'unloaded, the old table is read again');
    const p = rep.patches[0]!;
    assert.ok(p.loaded && p.enabled && p.disabled && p.unloaded, JSON.stringify(p));
    assert.deepEqual(rep.problems, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('syscall: a fix in a SYSCALL_DEFINE1 body replaces the real entry points (__x64_sys_umask, __ia32_sys_umask); VM-proven', () => {
  ensureTarget();
  const dir = tempDir('syscall-umask');
  try {
    const { ko, report: r } = createFixture('syscall-umask.patch', 'klpgen_umask', dir);
    // __do_sys_umask and __se_sys_umask exist only inlined: the wrappers the syscall table calls are replaced.
    assert.deepEqual(r.analysis.tus[0]?.sourceChanged, ['__do_sys_umask']);
    assert.deepEqual(r.analysis.mustReplace.map((e) => e.symbol).sort(), ['__ia32_sys_umask', '__x64_sys_umask']);
    assert.equal(r.verification.status, 'passed', JSON.stringify(r.verification));
    const v = klpgen(['vm-test', ko, '--test', fixture('syscall-umask-LOADED.test'), '--json', ...abiArgs()]);
    const rep = JSON.parse(v.stdout) as VmReport;
    assert.equal(v.code, 0, rep.failures.join('\n'));
    assert.equal(rep.test?.before?.exitCode, 1, 'the running kernel keeps umask 000');
    assert.equal(rep.test?.after?.exitCode, 0);
    assert.equal(rep.test?.unloaded?.exitCode, 1, 'unloaded, umask(2) behaves as before');
    assert.deepEqual(rep.problems, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("new globals: a variable the fix adds in one file and uses from another is the module's own, global there; VM-proven", () => {
  ensureTarget();
  const dir = tempDir('new-global');
  try {
    const { ko, report: r } = createFixture('new-global-two-files.patch', 'klpgen_new_global', dir);
    assert.deepEqual(
      r.code.map((x) => `${x.file}:${x.how}`),
      ['fs/proc/cmdline.c:extracted', 'fs/proc/version.c:extracted'],
    );
    assert.equal(r.verification.status, 'passed', JSON.stringify(r.verification));
    const v = klpgen(['vm-test', ko, '--test', fixture('new-global-two-files-LOADED.test'), '--json', ...abiArgs()]);
    const rep = JSON.parse(v.stdout) as VmReport;
    assert.equal(v.code, 0, rep.failures.join('\n'));
    assert.equal(rep.test?.before?.exitCode, 1);
    assert.equal(rep.test?.after?.exitCode, 0);
    assert.equal(rep.test?.unloaded?.exitCode, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
