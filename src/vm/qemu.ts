import { readFile } from 'node:fs/promises';
import { run } from '../util/exec.js';

export interface QemuRun {
  /** Kernel console (ttyS0): boot log, oopses, panics. */
  console: string;
  /** Our init's result lines (ttyS1). */
  results: string;
  exitCode: number;
  timedOut: boolean;
  seconds: number;
  stderr: string;
}

export interface QemuOptions {
  kernel: string;
  initrd: string;
  /** A host directory shown to the guest read-only over virtio-9p. */
  share?: { path: string; tag: string };
  consoleLog: string;
  resultsLog: string;
  timeoutSeconds: number;
  memoryMiB?: number;
}

/**
 * Boot under TCG (KVM hangs on these machines). -no-reboot plus panic=-1
 * turns a kernel panic into a qemu exit; the timeout covers hangs.
 */
export async function bootQemu(o: QemuOptions): Promise<QemuRun> {
  const args = [
    '-accel',
    'tcg',
    '-m',
    String(o.memoryMiB ?? 1024),
    '-smp',
    '1',
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-monitor',
    'none',
    '-kernel',
    o.kernel,
    '-initrd',
    o.initrd,
    '-append',
    'console=ttyS0 panic=-1 loglevel=6',
    '-serial',
    `file:${o.consoleLog}`,
    '-serial',
    `file:${o.resultsLog}`,
  ];
  if (o.share) {
    args.push('-virtfs', `local,path=${o.share.path},mount_tag=${o.share.tag},security_model=none,readonly=on`);
  }
  const start = Date.now();
  const r = await run('qemu-system-x86_64', args, { timeoutMs: o.timeoutSeconds * 1000 });
  const read = (p: string) =>
    readFile(p, 'utf8').then(
      (t) => t.replace(/\r/g, ''),
      () => '',
    );
  return {
    console: await read(o.consoleLog),
    results: await read(o.resultsLog),
    exitCode: r.code,
    timedOut: r.timedOut,
    seconds: (Date.now() - start) / 1000,
    stderr: r.stderr,
  };
}
