import { KlpgenError } from '../util/errors.js';

/**
 * Workloads run in the VM while the livepatch is enabled: they make the
 * patched subsystem execute the new code (and its callers) so that an oops,
 * WARN or hang shows on the console. busybox shell only; each exits 0 on a
 * healthy kernel, so a non-zero exit is a finding too.
 */
export const WORKLOADS = {
  proc: [
    // Every readable file of /proc and /proc/self, except those that block or are huge.
    'for f in /proc/* /proc/self/* /proc/sys/kernel/*; do',
    '  case "$f" in /proc/kmsg|/proc/kcore|/proc/self/pagemap|/proc/self/mem|*/sysrq-trigger) continue;; esac',
    '  [ -f "$f" ] && [ -r "$f" ] && cat "$f" > /dev/null 2>&1',
    'done',
    'cat /proc/cpuinfo /proc/meminfo /proc/stat /proc/interrupts /proc/filesystems /proc/version > /dev/null',
  ],
  fs: [
    'set -e',
    'mkdir -p /mnt/wl && mount -t tmpfs tmpfs /mnt/wl && cd /mnt/wl',
    'i=0; while [ $i -lt 64 ]; do echo "line $i" > f$i; i=$((i+1)); done',
    'cat f* > all; [ "$(wc -l < all)" = 64 ]',
    'mv f1 g1; ln -s g1 s1; ln g1 h1; cat s1 h1 > /dev/null; chmod 600 g1; touch -c g1',
    'mkdir -p d/e/f; echo x > d/e/f/x; find . -type f | wc -l > /dev/null; ls -laR > /dev/null',
    'dd if=/dev/urandom of=big bs=64k count=32 2>/dev/null; cp big big2; cmp big big2; sync',
    'rm -rf ./*; cd /; umount /mnt/wl',
  ],
  net: [
    'set -e',
    'ip link set lo up',
    'ping -c 2 -W 2 127.0.0.1 > /dev/null',
    // TCP over loopback: a listener, a client, the bytes checked.
    '(nc -l -p 5555 > /tmp/nc.out &) ; sleep 0.5',
    'echo "klpgen tcp" | nc -w 2 127.0.0.1 5555 || true; sleep 0.5',
    'grep -q "klpgen tcp" /tmp/nc.out',
    'echo udp | nc -u -w 1 127.0.0.1 5556 || true',
    'cat /proc/net/tcp /proc/net/udp /proc/net/dev /proc/net/netstat > /dev/null',
  ],
  sched: [
    'set -e',
    // Forks, exits, signals, priorities and CPU affinity.
    'i=0; while [ $i -lt 20 ]; do sleep 0.2 & i=$((i+1)); done',
    'sleep 5 & p=$!; kill -STOP $p; kill -CONT $p; renice -n 5 -p $p > /dev/null; kill $p; wait $p || true',
    'ionice -c 3 true; taskset -p 1 $$ > /dev/null 2>&1 || true',
    'wait',
  ],
  mm: [
    'set -e',
    'dd if=/dev/zero bs=1M count=32 2>/dev/null | md5sum > /dev/null',
    'sync; echo 3 > /proc/sys/vm/drop_caches',
    'cat /proc/vmstat /proc/zoneinfo /proc/buddyinfo /proc/slabinfo > /dev/null 2>&1 || true',
  ],
} as const satisfies Record<string, readonly string[]>;

export type WorkloadKind = keyof typeof WORKLOADS;
export const WORKLOAD_KINDS = Object.keys(WORKLOADS) as WorkloadKind[];

/** `fs,net`, `all` or `none` → the kinds, in a fixed order. */
export function parseWorkloads(spec: string): WorkloadKind[] {
  const asked = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (asked.includes('none')) return [];
  if (asked.includes('all')) return [...WORKLOAD_KINDS];
  for (const a of asked) {
    if (!(WORKLOAD_KINDS as string[]).includes(a))
      throw new KlpgenError(`--workload: unknown workload ${a} (known: ${WORKLOAD_KINDS.join(', ')}, all, none)`);
  }
  return WORKLOAD_KINDS.filter((k) => asked.includes(k));
}

/** The workloads that exercise the subsystems these source files belong to (proc always). */
export function workloadsFor(files: string[]): WorkloadKind[] {
  const kinds = new Set<WorkloadKind>(['proc']);
  for (const f of files) {
    if (/^(fs|block)\//.test(f) || /^include\/linux\/fs/.test(f)) kinds.add('fs');
    if (/^(net|drivers\/net)\//.test(f) || /^include\/(net|linux\/(skbuff|netdevice|tcp|udp))/.test(f))
      kinds.add('net');
    if (/^kernel\/(sched|signal|fork|exit|sys|time)/.test(f) || /^kernel\/[^/]+\.c$/.test(f)) kinds.add('sched');
    if (/^mm\//.test(f) || /^include\/linux\/(mm|gfp|slab)/.test(f)) kinds.add('mm');
  }
  return WORKLOAD_KINDS.filter((k) => kinds.has(k));
}

export function workloadScript(kind: WorkloadKind): string {
  return `#!/bin/sh\n${WORKLOADS[kind].join('\n')}\n`;
}
