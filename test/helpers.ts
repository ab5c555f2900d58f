import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CreateReport } from '../src/create/create.js';

/** The project root (tests run from dist/test/...). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const KLPGEN = join(ROOT, 'bin', 'klpgen.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Run the real CLI, as users and outside tests do. */
export function klpgen(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): CliResult {
  const start = Date.now();
  const r = spawnSync(process.execPath, [KLPGEN, ...args], {
    env: opts.env ?? process.env,
    cwd: opts.cwd ?? ROOT,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30 * 60 * 1000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '', seconds: (Date.now() - start) / 1000 };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `klpgen-${prefix}-`));
}

/** Pinned by KLPGEN_TEST_ABI, else the newest ABI in the archive. */
export function abiArgs(): string[] {
  return process.env.KLPGEN_TEST_ABI ? ['--abi', process.env.KLPGEN_TEST_ABI] : [];
}

let targetJson: { abi: string; paths: Record<string, string>; kernelRelease: string } | undefined;

/** Set up the target once per test process (a no-op when it already is). */
export function ensureTarget(): { abi: string; paths: Record<string, string>; kernelRelease: string } {
  if (targetJson) return targetJson;
  const r = klpgen(['target', 'setup', ...abiArgs(), '--json']);
  if (r.code !== 0) throw new Error(`target setup failed:\n${r.stderr}`);
  targetJson = JSON.parse(r.stdout) as typeof targetJson;
  return targetJson!;
}

/** `klpgen create` of a fixture patch of test/fixtures/patches, which must succeed: the module and its report. */
export function createFixture(
  patch: string,
  name: string,
  dir: string,
  extra: string[] = [],
): { ko: string; report: CreateReport } {
  const ko = join(dir, `${name}.ko`);
  const c = klpgen([
    'create',
    join(ROOT, 'test/fixtures/patches', patch),
    '--name',
    name,
    '-o',
    ko,
    '--work-dir',
    join(dir, name),
    '--json',
    ...extra,
    ...abiArgs(),
  ]);
  assert.equal(c.code, 0, c.stderr);
  return { ko, report: JSON.parse(c.stdout) };
}
