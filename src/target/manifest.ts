import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KlpgenError } from '../util/errors.js';
import { readJson } from '../util/fsutil.js';
import { compareDebVersions } from './debversion.js';
import { normaliseAbi } from './apt.js';
import { targetLayout, targetsDir } from './paths.js';

/** What `klpgen target setup` leaves behind; written last, so its presence means "ready". */
export interface TargetManifest {
  schema: 1;
  abi: string;
  kernelRelease: string;
  debianVersion: string;
  arch: 'x86';
  packages: Record<string, { version: string; sha256: string }>;
  paths: {
    root: string;
    source: string;
    build: string;
    headers: string;
    vmlinuz: string;
    modules: string;
    vmlinux: string;
    systemMap: string;
    moduleSymvers: string;
    config: string;
  };
  compiler: { cc: string; version: string; configVersion: string; matches: boolean };
  configSha256: string;
  /** Lines olddefconfig changed in the headers package's .config (expected: none). */
  configDrift: string[];
}

/** ABIs with a complete setup, newest first. */
export function listTargets(env?: NodeJS.ProcessEnv): string[] {
  const dir = targetsDir(env);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((abi) => existsSync(targetLayout(abi, env).manifest))
    .sort((a, b) => compareDebVersions(b, a));
}

/** The target a command works on: the pinned ABI, else the newest one set up. */
export async function loadTarget(abi?: string, env?: NodeJS.ProcessEnv): Promise<TargetManifest> {
  const chosen = abi !== undefined ? normaliseAbi(abi) : listTargets(env)[0];
  if (chosen === undefined) {
    throw new KlpgenError('no target kernel is set up: run `klpgen target setup` first');
  }
  const path = targetLayout(chosen, env).manifest;
  if (!existsSync(path)) {
    throw new KlpgenError(`target ${chosen} is not set up: run \`klpgen target setup --abi ${chosen}\``);
  }
  return readJson<TargetManifest>(path);
}

export function headersDirName(abi: string): string {
  return join('usr', 'src', `linux-headers-${abi}-amd64`);
}
