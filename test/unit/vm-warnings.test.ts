/**
 * --expect-warn without a VM: which console lines stay problems when a WARN is expected, and
 * what the run reports about each expected text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { consoleProblems, formatVmReport, interpret } from '../../src/vm/vm-test.js';

const TEXT = 'klpgen: rcu_expedited=2 is out of range';

/** A WARN() report as the VM's console shows it (special-warn.patch, shortened). */
const WARN_REPORT = `[    2.161777] ------------[ cut here ]------------
[    2.161967] ${TEXT}
[    2.162236] WARNING: CPU: 0 PID: 117 at kernel/ksysfs.c:169 livepatch_rcu_expedited_store+0x70/0xfd0 [livepatch_warn]
[    2.162582] Modules linked in: livepatch_warn(OEK) 9p fscache netfs 9pnet_virtio 9pnet virtio_pci
[    2.162992] CPU: 0 PID: 117 Comm: sh Tainted: G           OE K    6.1.0-57-amd64 #1  Debian 6.1.192-3
[    2.163358] RIP: 0010:livepatch_rcu_expedited_store+0x70/0xfd0 [livepatch_warn]
[    2.164011] RSP: 0018:ffffd438805cba10 EFLAGS: 00000282
[    2.165048] Call Trace:
[    2.165186]  <TASK>
[    2.165288]  kernfs_fop_write_iter+0x12e/0x200
[    2.166347]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[    2.166449] RIP: 0033:0x47b7a0
[    2.167577]  </TASK>
[    2.167642] ---[ end trace 0000000000000000 ]---`;

const OTHER_WARN = `[    3.000000] ------------[ cut here ]------------
[    3.000100] WARNING: CPU: 0 PID: 1 at kernel/livepatch/transition.c:123 klp_complete_transition+0x1a/0x1f0
[    3.000200] RIP: 0010:klp_complete_transition+0x1a/0x1f0
[    3.000300] Call Trace:
[    3.000400] ---[ end trace 0000000000000000 ]---`;

const BOOT = `[    0.000000] Linux version 6.1.0-57-amd64
[    0.000000] Command line: console=ttyS0 panic=-1 loglevel=6
[    1.110000] Run /init as init process`;

const log = (...parts: string[]) => `${[BOOT, ...parts].join('\n')}\n`;

test('consoleProblems: without expected texts every WARN line is a problem, as before', () => {
  const r = consoleProblems(log(WARN_REPORT));
  assert.deepEqual(r.expectedWarnings, []);
  assert.equal(r.problems.length, 4, r.problems.join('\n'));
  assert.match(r.problems[0] as string, /WARNING: CPU: 0 PID: 117 at kernel\/ksysfs\.c:169/);
});

test('consoleProblems: a WARN whose report contains the expected text is not a problem', () => {
  const r = consoleProblems(log(WARN_REPORT), [TEXT]);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.expectedWarnings, [
    {
      text: TEXT,
      seen: 1,
      warnings: [
        '[    2.162236] WARNING: CPU: 0 PID: 117 at kernel/ksysfs.c:169 livepatch_rcu_expedited_store+0x70/0xfd0 [livepatch_warn]',
      ],
    },
  ]);
  // Any line of the report matches (the WARNING: line's location too), and a report can fire twice.
  const twice = consoleProblems(log(WARN_REPORT, WARN_REPORT), ['at kernel/ksysfs.c:169']);
  assert.deepEqual(twice.problems, []);
  assert.equal(twice.expectedWarnings[0]?.seen, 2);
});

test('consoleProblems: another WARN stays a problem next to the expected one', () => {
  const r = consoleProblems(log(WARN_REPORT, OTHER_WARN), [TEXT]);
  assert.equal(r.expectedWarnings[0]?.seen, 1);
  assert.deepEqual(r.problems, [
    '[    3.000100] WARNING: CPU: 0 PID: 1 at kernel/livepatch/transition.c:123 klp_complete_transition+0x1a/0x1f0',
    '[    3.000200] RIP: 0010:klp_complete_transition+0x1a/0x1f0',
    '[    3.000300] Call Trace:',
  ]);
});

test('consoleProblems: the text outside a WARN report, or in an oops, excuses nothing', () => {
  // The same words printed without a WARN report after them.
  const printed = consoleProblems(log(`[    2.0] ${TEXT}`), [TEXT]);
  assert.equal(printed.expectedWarnings[0]?.seen, 0);
  // An oops report also starts with "cut here"; containing the text does not make it a WARN.
  const oops = `[    4.0] ------------[ cut here ]------------
[    4.1] ${TEXT}
[    4.2] kernel BUG at kernel/ksysfs.c:169!
[    4.3] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[    4.4] RIP: 0010:livepatch_rcu_expedited_store+0x70/0xfd0 [livepatch_warn]
[    4.5] ---[ end trace 0000000000000000 ]---`;
  const r = consoleProblems(log(oops), [TEXT]);
  assert.equal(r.expectedWarnings[0]?.seen, 0);
  assert.deepEqual(r.problems, [
    '[    4.2] kernel BUG at kernel/ksysfs.c:169!',
    '[    4.4] RIP: 0010:livepatch_rcu_expedited_store+0x70/0xfd0 [livepatch_warn]',
  ]);
  // A WARN in the text of the report after an unterminated one is judged on its own.
  const cut = WARN_REPORT.split('\n').slice(0, 6).join('\n');
  const both = consoleProblems(log(cut, OTHER_WARN), [TEXT]);
  assert.equal(both.expectedWarnings[0]?.seen, 1);
  assert.equal(both.problems.length, 3, both.problems.join('\n'));
  assert.match(both.problems[0] as string, /transition\.c:123/);
});

const CTX = {
  patches: [{ file: '/w/livepatch-warn.ko', name: 'livepatch_warn' }],
  preload: [] as string[],
  testScript: '/w/test.sh',
  abi: '6.1.0-57',
  kernelRelease: '6.1.0-57-amd64',
};

const GOOD = `@@ booted 6.1.0-57-amd64
@@ modules 0
@@ lsmod 9p
@@ test before 1
@@ load livepatch_warn 0
@@ transition livepatch_warn 0 1.31 1.37
@@ enabled livepatch_warn 1
@@ test after 0
@@ disable livepatch_warn 0
@@ disabled livepatch_warn 0 1.39 1.43
@@ unload livepatch_warn 0
@@ test unloaded 1
@@ done
`;

test('interpret: an expected WARN passes the run and is reported', () => {
  const r = interpret(GOOD, log(WARN_REPORT), { ...CTX, expectWarnings: [TEXT] });
  assert.equal(r.ok, true, r.failures.join('; '));
  assert.deepEqual(r.failures, []);
  assert.deepEqual(r.problems, []);
  assert.equal(r.expectedWarnings[0]?.seen, 1);
  assert.match(
    formatVmReport(r),
    /expected WARN "klpgen: rcu_expedited=2 is out of range": seen 1x, .*kernel\/ksysfs\.c:169/,
  );
  // The same console without the expectation fails the run.
  const plain = interpret(GOOD, log(WARN_REPORT), CTX);
  assert.equal(plain.ok, false);
  assert.match(plain.failures[0] as string, /^kernel reported problems: .*WARNING: CPU: 0 PID: 117/);
});

test('interpret: each expected text never seen is a failure; an unexpected WARN still fails', () => {
  const missing = interpret(GOOD, log(WARN_REPORT), { ...CTX, expectWarnings: [TEXT, 'klpgen: never printed'] });
  assert.equal(missing.ok, false);
  assert.deepEqual(missing.failures, ['expected WARN not seen: klpgen: never printed']);
  assert.match(formatVmReport(missing), /expected WARN "klpgen: never printed": NOT seen/);
  const none = interpret(GOOD, log(), { ...CTX, expectWarnings: [TEXT] });
  assert.deepEqual(none.failures, [`expected WARN not seen: ${TEXT}`]);
  const other = interpret(GOOD, log(OTHER_WARN), { ...CTX, expectWarnings: ['transition.c:999'] });
  assert.deepEqual(other.failures, [
    'kernel reported problems: [    3.000100] WARNING: CPU: 0 PID: 1 at kernel/livepatch/transition.c:123 klp_complete_transition+0x1a/0x1f0',
    'expected WARN not seen: transition.c:999',
  ]);
});
