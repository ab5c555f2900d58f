import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create } from './create/create.js';
import { loadTarget } from './target/manifest.js';
import { cacheRoot } from './target/paths.js';
import { defaultWorkDir } from './util/workdir.js';
import { vmTest, type VmReport } from './vm/vm-test.js';

/** The bundled example: a fix to fs/proc/version.c whose effect shows in /proc/version. */
export const EXAMPLE_DIR = resolve(fileURLToPath(import.meta.url), '..', '..', '..', 'examples', 'proc-version');

/**
 * `klpgen demo`: make a livepatch for the bundled example patch with
 * `klpgen create`, then prove it in the VM with its LOADED test.
 */
export async function runDemo(abi?: string): Promise<VmReport> {
  const target = await loadTarget(abi);
  const patch = join(EXAMPLE_DIR, 'proc-version.patch');
  const out = join(cacheRoot(), 'demo', target.abi, 'livepatch-proc-version.ko');
  const made = await create(target, {
    patches: [patch],
    name: 'proc_version',
    out,
    replace: true,
    workDir: defaultWorkDir(target, 'create', [patch]),
  });
  return vmTest(target, {
    modules: [made.module],
    testScript: join(EXAMPLE_DIR, 'proc-version-LOADED.test'),
    workDir: join(cacheRoot(), 'demo', target.abi, 'vm'),
  });
}
