import { homedir } from 'node:os';
import { join } from 'node:path';

/** Root of klpgen's cache: $KLPGEN_CACHE, else $XDG_CACHE_HOME/klpgen, else ~/.cache/klpgen. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KLPGEN_CACHE) return env.KLPGEN_CACHE;
  const xdg = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(xdg, 'klpgen');
}

export function targetsDir(env?: NodeJS.ProcessEnv): string {
  return join(cacheRoot(env), 'targets');
}

/** Where each part of one target lives; every stage of setup fills one of these. */
export interface TargetLayout {
  root: string;
  debs: string;
  /** dpkg -x root of the image, headers, headers-common and kbuild packages. */
  pkg: string;
  /** Pristine kernel source, never written to after extraction. */
  source: string;
  /** Kbuild object tree (O=): .config, generated headers, captured objects. */
  build: string;
  dbg: string;
  steps: string;
  logs: string;
  manifest: string;
  lock: string;
}

export function targetLayout(abi: string, env?: NodeJS.ProcessEnv): TargetLayout {
  const root = join(targetsDir(env), abi);
  return {
    root,
    debs: join(root, 'debs'),
    pkg: join(root, 'pkg'),
    source: join(root, 'source'),
    build: join(root, 'build'),
    dbg: join(root, 'dbg'),
    steps: join(root, 'steps'),
    logs: join(root, 'logs'),
    manifest: join(root, 'manifest.json'),
    lock: join(root, '.lock'),
  };
}

export const ABI_PATTERN = /^6\.1\.0-\d+$/;
export const CC = 'gcc-12';
export const ARCH = 'x86';
export const FLAVOUR = 'amd64';

export function kernelRelease(abi: string): string {
  return `${abi}-${FLAVOUR}`;
}
