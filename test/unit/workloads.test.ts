import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BUSYBOX, initScript, type InitramfsSpec } from '../../src/vm/initramfs.js';
import { interpret } from '../../src/vm/vm-test.js';
import { parseWorkloads, WORKLOAD_KINDS, workloadScript, workloadsFor } from '../../src/vm/workloads.js';
import { tempDir } from '../helpers.js';

test('workloadsFor: the patched subsystems, proc always', () => {
  assert.deepEqual(workloadsFor(['fs/proc/version.c']), ['proc', 'fs']);
  assert.deepEqual(workloadsFor(['net/ipv4/tcp_dctcp.c']), ['proc', 'net']);
  assert.deepEqual(workloadsFor(['kernel/sched/core.c', 'mm/mlock.c']), ['proc', 'sched', 'mm']);
  assert.deepEqual(workloadsFor(['drivers/mtd/devices/block2mtd.c']), ['proc']);
  assert.deepEqual(workloadsFor(['drivers/net/tun.c', 'include/linux/fs.h']), ['proc', 'fs', 'net']);
});

test('parseWorkloads: lists, all, none, and a clear error for an unknown one', () => {
  assert.deepEqual(parseWorkloads('net,fs'), ['fs', 'net']);
  assert.deepEqual(parseWorkloads('all'), WORKLOAD_KINDS);
  assert.deepEqual(parseWorkloads('none'), []);
  assert.throws(() => parseWorkloads('fs,disk'), /unknown workload disk/);
});

const SPEC: InitramfsSpec = {
  kernelRelease: '6.1.0-54-amd64',
  bootstrap: [],
  preload: [],
  livepatches: [{ name: 'livepatch_x', path: '/p/x.ko' }],
  testTimeoutSeconds: 60,
  transitionTimeoutSeconds: 30,
  workloads: ['fs', 'net'],
};

test('initScript: workloads run after the patch is enabled and before it is disabled', () => {
  const s = initScript(SPEC);
  const at = (needle: string) => s.indexOf(needle);
  assert.ok(at('run_workload fs') > at('insmod /klpgen/patch/livepatch_x.ko'));
  assert.ok(at('run_workload net') > at('run_workload fs'));
  assert.ok(at('echo 0 > /sys/kernel/livepatch/livepatch_x/enabled') > at('run_workload net'));
  assert.ok(!initScript({ ...SPEC, workloads: [] }).includes('run_workload '));
});

test(
  'workload scripts and the init script parse with busybox sh -n',
  { skip: existsSync(BUSYBOX) ? false : 'busybox not installed' },
  () => {
    const d = tempDir('workloads');
    for (const [name, text] of [...WORKLOAD_KINDS.map((k) => [k, workloadScript(k)]), ['init', initScript(SPEC)]] as [
      string,
      string,
    ][]) {
      const f = join(d, name);
      writeFileSync(f, text);
      const r = spawnSync(BUSYBOX, ['sh', '-n', f], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    }
  },
);

const RESULTS = [
  '@@ booted 6.1.0-54-amd64',
  '@@ modules 0',
  '@@ lsmod 9p',
  '@@ load livepatch_x 0',
  '@@ transition livepatch_x 0 3.00 3.10',
  '@@ enabled livepatch_x 1',
  '@@ workload fs 0 3.20 4.45',
  '@@ wlout net ping: sendto: Network is unreachable',
  '@@ workload net 1 4.50 5.00',
  '@@ disable livepatch_x 0',
  '@@ disabled livepatch_x 0 5.10 5.20',
  '@@ unload livepatch_x 0',
  '@@ done',
  '',
].join('\n');
const CTX = {
  patches: [{ file: '/w/x.ko', name: 'livepatch_x' }],
  preload: [],
  abi: '6.1.0-54',
  kernelRelease: '6.1.0-54-amd64',
  workloads: ['fs', 'net'],
};

test('interpret: a workload that fails fails the run, with its last line', () => {
  const r = interpret(RESULTS, '', CTX);
  assert.deepEqual(r.workloads, [
    { kind: 'fs', exitCode: 0, seconds: 1.25, output: [] },
    { kind: 'net', exitCode: 1, seconds: 0.5, output: ['ping: sendto: Network is unreachable'] },
  ]);
  assert.equal(r.ok, false);
  assert.deepEqual(r.failures, ['workload net: exit 1 (ping: sendto: Network is unreachable)']);
  const fine = interpret(RESULTS.replace('@@ workload net 1', '@@ workload net 0'), '', CTX);
  assert.deepEqual(fine.failures, []);
  const missing = interpret(RESULTS.replace(/@@ workload net.*\n/, ''), '', CTX);
  assert.deepEqual(missing.failures, ['workload net did not finish']);
});
