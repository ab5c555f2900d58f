import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildModule } from './kmod/build.js';
import { loadTarget } from './target/manifest.js';
import { cacheRoot } from './target/paths.js';
import { timed } from './util/progress.js';
import { vmTest, type VmReport } from './vm/vm-test.js';

/** The LOADED test for the kernel's sample: its patched cmdline_proc_show prints this. */
export const SAMPLE_TEST = "#!/bin/sh\ngrep -q 'this has been live patched' /proc/cmdline\n";

/**
 * Build the kernel's own samples/livepatch/livepatch-sample.c against the
 * target's headers and prove it in the VM.
 */
export async function runDemo(abi?: string): Promise<VmReport> {
  const target = await loadTarget(abi);
  const dir = join(cacheRoot(), 'demo', target.abi);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await copyFile(join(target.paths.source, 'samples/livepatch/livepatch-sample.c'), join(dir, 'livepatch-sample.c'));
  await writeFile(join(dir, 'Kbuild'), 'obj-m += livepatch-sample.o\n');
  await writeFile(join(dir, 'test-loaded.sh'), SAMPLE_TEST);
  const build = await timed('build livepatch-sample.ko', () => buildModule(target, dir));
  return vmTest(target, {
    modules: build.modules, testScript: join(dir, 'test-loaded.sh'), workDir: join(dir, 'vm'),
  });
}
