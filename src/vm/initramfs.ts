import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { KlpgenError } from '../util/errors.js';
import { parseElf, readModinfo } from '../elf/elf64.js';
import { cpioArchive, S_IFDIR, S_IFLNK, S_IFREG, type CpioEntry } from './cpio.js';
import { workloadScript, type WorkloadKind } from './workloads.js';

export const BUSYBOX = '/bin/busybox';

/** Module names are compared as the kernel does: '-' and '_' are the same. */
export function moduleKey(name: string): string {
  return name.replace(/\.ko(\.xz|\.zst|\.gz)?$/, '').replace(/-/g, '_');
}

export interface ModuleInfo {
  name: string;
  depends: string[];
  vermagic: string;
  livepatch: boolean;
}

export function moduleInfo(file: string, data: Buffer = readFileSync(file)): ModuleInfo {
  let info: Map<string, string[]>;
  try {
    info = readModinfo(parseElf(data));
  } catch (e) {
    throw new KlpgenError(`${file}: not a kernel module (${e instanceof Error ? e.message : String(e)})`);
  }
  const one = (k: string) => info.get(k)?.[0] ?? '';
  const name = one('name') || moduleKey(basename(file));
  return {
    name,
    depends: one('depends').split(',').filter(Boolean),
    vermagic: one('vermagic'),
    livepatch: one('livepatch') === 'Y',
  };
}

/** Index of the target's loadable modules: kernel name -> path. */
export function indexModules(modulesDir: string): Map<string, string> {
  const index = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(e.name)) index.set(moduleKey(e.name), p);
    }
  };
  walk(join(modulesDir, 'kernel'));
  return index;
}

/** The named modules and everything they depend on, dependencies first. */
export function moduleLoadOrder(names: string[], index: Map<string, string>): { name: string; path: string }[] {
  const order: { name: string; path: string }[] = [];
  const seen = new Set<string>();
  const visit = (raw: string, chain: string[]) => {
    const key = moduleKey(raw);
    if (seen.has(key)) return;
    const path = index.get(key);
    if (!path) {
      const via = chain.length ? ` (needed by ${chain.join(' <- ')})` : '';
      throw new KlpgenError(`module ${raw} not found among the target's modules${via}`);
    }
    seen.add(key);
    for (const dep of moduleInfo(path).depends) visit(dep, [key, ...chain]);
    order.push({ name: key, path });
  };
  for (const n of names) visit(n, []);
  return order;
}

/**
 * Modules that let the VM mount the target's whole module tree over 9p, so
 * modprobe (and the kernel's request_module) find any module of the image.
 */
export const SHARE_MODULES = ['virtio_pci', '9pnet_virtio', '9p'];
export const MODULES_TAG = 'klpgen_modules';

export interface InitramfsSpec {
  kernelRelease: string;
  /** Modules insmod-ed from the initramfs to mount the module tree, in order. */
  bootstrap: { name: string; path: string }[];
  /** Target modules to modprobe before the test. */
  preload: string[];
  /** Livepatch modules to test, in order. */
  livepatches: { name: string; path: string }[];
  testScript?: string;
  testTimeoutSeconds: number;
  transitionTimeoutSeconds: number;
  /** Workloads run while the livepatches are enabled (src/vm/workloads.ts). */
  workloads?: WorkloadKind[];
}

/** Shell for busybox: results go to the second serial port, one `@@ key value` line each. */
export function initScript(spec: InitramfsSpec): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const lines = [
    '#!/bin/busybox sh',
    '/bin/busybox --install -s /bin',
    'mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev',
    // The kernel's request_module() runs this path; busybox's applets live in /bin.
    'echo /bin/modprobe > /proc/sys/kernel/modprobe',
    'R=/dev/ttyS1',
    'say() { echo "@@ $*" > $R; }',
    // Seconds since boot with centiseconds, from /proc/uptime.
    'now() { cut -d" " -f1 /proc/uptime; }',
    `wait_transition() { i=0; while [ -e "$1/transition" ] && [ "$(cat $1/transition)" != 0 ]; do i=$((i+1)); [ $i -gt ${spec.transitionTimeoutSeconds * 10} ] && return 1; sleep 0.1; done; return 0; }`,
    `wait_gone() { i=0; while [ -e "$1" ]; do i=$((i+1)); [ $i -gt ${spec.transitionTimeoutSeconds * 10} ] && return 1; sleep 0.1; done; return 0; }`,
    `run_test() { if [ -x /klpgen/test ]; then timeout ${spec.testTimeoutSeconds} sh /klpgen/test > /tmp/out 2>&1; rc=$?; sed "s/^/@@ out $1 /" /tmp/out | head -n 50 > $R; say test $1 $rc; fi; }`,
    `run_workload() { t0=$(now); timeout ${spec.testTimeoutSeconds} sh /klpgen/workload/$1 > /tmp/wl 2>&1; rc=$?; tail -n 5 /tmp/wl | sed "s/^/@@ wlout $1 /" > $R; say workload $1 $rc $t0 $(now); }`,
    'say booted $(uname -r)',
  ];
  for (const m of spec.bootstrap) lines.push(`insmod /klpgen/boot/${m.name}.ko`);
  const modDir = `/lib/modules/${spec.kernelRelease}`;
  lines.push(
    `mkdir -p ${modDir}; mount -t 9p -o trans=virtio,version=9p2000.L,ro ${MODULES_TAG} ${modDir}; say modules $?`,
  );
  for (const m of spec.preload) lines.push(`modprobe ${q(m)}; say preload ${q(m)} $?`);
  lines.push('say lsmod $(cut -d" " -f1 /proc/modules | tr "\\n" " ")');
  lines.push('run_test before');
  for (const p of spec.livepatches) {
    const dir = `/sys/kernel/livepatch/${p.name}`;
    lines.push(
      `t0=$(now); insmod /klpgen/patch/${p.name}.ko; rc=$?; say load ${p.name} $rc`,
      `if [ $rc = 0 ]; then wait_transition ${dir}; say transition ${p.name} $? $t0 $(now); say enabled ${p.name} $(cat ${dir}/enabled 2>/dev/null || echo missing); fi`,
    );
  }
  // A patch an atomic-replace patch loaded after it took over is gone from sysfs: the kernel disabled it.
  for (const p of spec.livepatches) lines.push(`[ -e /sys/kernel/livepatch/${p.name} ] || say replaced ${p.name}`);
  lines.push('run_test after');
  for (const w of spec.workloads ?? []) lines.push(`run_workload ${w}`);
  for (const p of [...spec.livepatches].reverse()) {
    const dir = `/sys/kernel/livepatch/${p.name}`;
    lines.push(
      `if [ -e ${dir}/enabled ]; then t0=$(now); echo 0 > ${dir}/enabled; say disable ${p.name} $?; wait_transition ${dir}; wait_gone ${dir}; say disabled ${p.name} $? $t0 $(now); fi`,
      `rmmod ${p.name}; say unload ${p.name} $?`,
    );
  }
  lines.push('run_test unloaded', 'say done', 'sync', 'poweroff -f', '');
  return lines.join('\n');
}

export function buildInitramfs(spec: InitramfsSpec): Buffer {
  const entries: CpioEntry[] = [];
  for (const d of [
    'bin',
    'sbin',
    'dev',
    'proc',
    'sys',
    'tmp',
    'mnt',
    'lib',
    'lib/modules',
    'klpgen',
    'klpgen/boot',
    'klpgen/patch',
  ]) {
    entries.push({ path: d, mode: S_IFDIR | 0o755 });
  }
  entries.push({ path: 'bin/busybox', mode: S_IFREG | 0o755, data: readFileSync(BUSYBOX) });
  entries.push({ path: 'bin/sh', mode: S_IFLNK | 0o777, linkTarget: 'busybox' });
  entries.push({ path: 'init', mode: S_IFREG | 0o755, data: Buffer.from(initScript(spec)) });
  for (const m of spec.bootstrap) {
    entries.push({ path: `klpgen/boot/${m.name}.ko`, mode: S_IFREG | 0o644, data: readFileSync(m.path) });
  }
  for (const p of spec.livepatches) {
    entries.push({ path: `klpgen/patch/${p.name}.ko`, mode: S_IFREG | 0o644, data: readFileSync(p.path) });
  }
  if (spec.workloads?.length) entries.push({ path: 'klpgen/workload', mode: S_IFDIR | 0o755 });
  for (const w of spec.workloads ?? []) {
    entries.push({ path: `klpgen/workload/${w}`, mode: S_IFREG | 0o755, data: Buffer.from(workloadScript(w)) });
  }
  if (spec.testScript !== undefined) {
    if (statSync(spec.testScript).size > 1 << 20)
      throw new KlpgenError(`${spec.testScript}: test script larger than 1 MiB`);
    // Run with busybox sh whatever its #! line says: the VM has no other shell.
    entries.push({ path: 'klpgen/test', mode: S_IFREG | 0o755, data: readFileSync(spec.testScript) });
  }
  return cpioArchive(entries);
}
