import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, join, normalize, relative } from 'node:path';
import { compileArgv, type CompileCommand } from '../target/compile-command.js';
import { KlpgenError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { reachableIdents, scanUnits } from './units.js';

/**
 * What one translation unit of the target reads and uses, from one run of
 * its exact Kbuild command with `-E -dU`: the headers it read (line
 * markers), the macros it expanded or tested (-dU), and the identifiers its
 * code can depend on (units.ts). A header change can only change the code of
 * a TU that read the header and uses one of the names the change touches.
 */
export interface UsageRecord {
  /** Source path relative to the tree. */
  file: string;
  /** Hash of what the record was made from: command, source and every header read. */
  key: string;
  /** Headers read, relative to the source tree; generated ones as `build:<path>`. */
  headers: string[];
  /** Macros expanded or tested, and identifiers the code can depend on, sorted. */
  names: string[];
}

/** A file name of a line marker, as the index stores it (null: not a file). */
export function treePath(marker: string, source: string, build: string): string | null {
  if (marker.startsWith('<') || marker === '') return null;
  const abs = isAbsolute(marker) ? normalize(marker) : join(build, marker);
  if (abs.startsWith(`${source}/`)) return relative(source, abs);
  if (abs.startsWith(`${build}/`)) return `build:${relative(build, abs)}`;
  return abs;
}

/** Content hashes of files, each read once per process. */
export class FileHashes {
  private readonly cache = new Map<string, string>();
  constructor(
    private readonly source: string,
    private readonly build: string,
  ) {}

  of(path: string): string {
    let h = this.cache.get(path);
    if (h === undefined) {
      const abs = path.startsWith('build:')
        ? join(this.build, path.slice(6))
        : isAbsolute(path)
          ? path
          : join(this.source, path);
      try {
        h = createHash('sha256').update(readFileSync(abs)).digest('hex').slice(0, 16);
      } catch {
        h = 'missing';
      }
      this.cache.set(path, h);
    }
    return h;
  }
}

/** The key of a record: it is stale as soon as the command or any file it read changes. */
export function recordKey(cmd: CompileCommand, headers: string[], hashes: FileHashes): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(cmd.argv));
  h.update(`\0${cmd.file}\0${hashes.of(cmd.file)}`);
  for (const f of headers) h.update(`\0${f}\0${hashes.of(f)}`);
  return h.digest('hex').slice(0, 32);
}

export async function makeUsageRecord(
  cmd: CompileCommand,
  source: string,
  build: string,
  hashes: FileHashes,
): Promise<UsageRecord> {
  const argv = compileArgv(cmd, { output: '-', preprocess: true, extraFlags: ['-dU'] });
  const r = await run(argv[0] as string, argv.slice(1), { cwd: cmd.cwd });
  if (r.code !== 0) {
    const first = r.stderr.split('\n').find((l) => /error/.test(l)) ?? r.stderr.trim().split('\n').at(-1);
    throw new KlpgenError(`${cmd.file}: preprocessing failed: ${first ?? `exit ${r.code}`}`);
  }
  return usageFromPreprocessed(cmd, r.stdout, source, build, hashes);
}

export function usageFromPreprocessed(
  cmd: CompileCommand,
  text: string,
  source: string,
  build: string,
  hashes: FileHashes,
): UsageRecord {
  const scan = scanUnits(text, { preprocessed: true });
  const isHeader = (f: string) => !f.endsWith('.c');
  const used = reachableIdents(scan.units, isHeader);
  for (const m of scan.macros) used.add(m);
  const headers = new Set<string>();
  for (const f of scan.files) {
    const p = treePath(f, source, build);
    if (p !== null && p !== cmd.file && isHeader(p)) headers.add(p);
    else if (p !== null && p !== cmd.file && p.endsWith('.c')) headers.add(p); // an #included .c
  }
  const sortedHeaders = [...headers].sort();
  return {
    file: cmd.file,
    key: recordKey(cmd, sortedHeaders, hashes),
    headers: sortedHeaders,
    names: [...used].sort(),
  };
}
