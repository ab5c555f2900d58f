/**
 * Times target setup step by step (in a scratch cache, so every step really
 * runs), the no-op re-run, and a VM round trip against a bare boot, side by
 * side in one run. Prints; asserts nothing.
 *
 *   npm run bench            # fresh scratch cache: downloads ~1.1 GB
 *   npm run bench -- --reuse # use the normal cache (setup steps show as skipped)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpioArchive, S_IFDIR, S_IFLNK, S_IFREG } from '../src/vm/cpio.js';
import { bootQemu } from '../src/vm/qemu.js';
import { readFileSync } from 'node:fs';

const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const klpgen = join(root, 'bin', 'klpgen.js');
const reuse = process.argv.includes('--reuse');
const env = { ...process.env };
let scratch: string | undefined;
if (!reuse) {
  scratch = mkdtempSync(join(tmpdir(), 'klpgen-bench-'));
  env.KLPGEN_CACHE = scratch;
}

function cli(args: string[]): { seconds: number; stdout: string } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [klpgen, ...args], {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`klpgen ${args.join(' ')} failed`);
  return { seconds: (Date.now() - t0) / 1000, stdout: r.stdout };
}

try {
  const first = cli(['target', 'setup', '--json']);
  const m = JSON.parse(first.stdout) as {
    abi: string;
    kernelRelease: string;
    paths: { vmlinuz: string };
    timings: { name: string; seconds: number; skipped: boolean }[];
  };
  const second = cli(['target', 'setup', '--abi', m.abi, '--json']);

  const demo = cli(['demo', '--abi', m.abi, '--json']);
  const report = JSON.parse(demo.stdout) as { seconds: number; ok: boolean; patches: { transitionSeconds: number }[] };

  // Baseline: the same kernel booted to poweroff with a minimal busybox initramfs.
  const dir = mkdtempSync(join(tmpdir(), 'klpgen-bench-vm-'));
  const initrd = join(dir, 'initrd.cpio');
  writeFileSync(
    initrd,
    cpioArchive([
      { path: 'bin', mode: S_IFDIR | 0o755 },
      { path: 'bin/busybox', mode: S_IFREG | 0o755, data: readFileSync('/bin/busybox') },
      { path: 'bin/sh', mode: S_IFLNK | 0o777, linkTarget: 'busybox' },
      { path: 'init', mode: S_IFREG | 0o755, data: Buffer.from('#!/bin/busybox sh\n/bin/busybox poweroff -f\n') },
    ]),
  );
  const bare = await bootQemu({
    kernel: m.paths.vmlinuz,
    initrd,
    consoleLog: join(dir, 'console.log'),
    resultsLog: join(dir, 'results.log'),
    timeoutSeconds: 120,
  });
  rmSync(dir, { recursive: true, force: true });

  console.log(`\nklpgen bench, target ${m.abi}${reuse ? ' (reused cache)' : ' (fresh scratch cache)'}`);
  console.log('setup step                                         seconds');
  for (const s of m.timings) console.log(`  ${s.name.padEnd(48)} ${s.skipped ? 'skipped' : s.seconds.toFixed(1)}`);
  console.log(`  ${'whole first setup (klpgen process)'.padEnd(48)} ${first.seconds.toFixed(1)}`);
  console.log(`  ${'second setup (no-op)'.padEnd(48)} ${second.seconds.toFixed(1)}`);
  console.log(`  ratio second / first                             ${(second.seconds / first.seconds).toFixed(3)}`);
  console.log('VM');
  console.log(`  ${'bare boot to poweroff (qemu tcg)'.padEnd(48)} ${bare.seconds.toFixed(1)}`);
  console.log(
    `  ${'vm-test round trip (boot, load, test x3, unload)'.padEnd(48)} ${report.seconds.toFixed(1)}  ok=${report.ok}`,
  );
  console.log(`  ${'demo incl. module build (klpgen process)'.padEnd(48)} ${demo.seconds.toFixed(1)}`);
  console.log(`  ratio vm-test / bare boot                        ${(report.seconds / bare.seconds).toFixed(2)}`);
  console.log(`  transition                                       ${report.patches[0]?.transitionSeconds} s`);
} finally {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}
