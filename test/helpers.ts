import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
