import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { compileCommand } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import { targetLayout } from '../target/paths.js';
import { KlpgenError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsutil.js';
import { info } from '../util/progress.js';
import { builtCommands, commandOf, commandsHash, type BuiltCommands } from './commands.js';
import { FileHashes, makeUsageRecord, recordKey, type UsageRecord } from './record.js';

/**
 * The per-target usage index: one small binary record per built TU (what it
 * read, what it uses), kept under the target's cache dir. Records are made
 * on demand (the includers of one header, for one fix) or all at once
 * (`klpgen target index`), by the same code, so both give the same answer.
 *
 * Names and header paths are stored as 32-bit hashes in sorted arrays: a
 * query is a binary search, with no name table to keep consistent between
 * runs. A hash collision can only add a TU to an answer, never drop one.
 *
 * A record is trusted only when its checksum holds and its key (the hash of
 * the command, the source and every header it read) matches the files as
 * they are now: otherwise it is made again.
 */
const MAGIC = 0x55504c4b; // 'KLPU'
const VERSION = 1;

export function nameHash(name: string): number {
  // FNV-1a, 32 bits.
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export interface StoredRecord {
  file: string;
  key: string;
  headers: Uint32Array;
  names: Uint32Array;
  /** The header paths, deflated (the key is checked against them). */
  paths: Buffer;
}

export function headerPaths(r: StoredRecord): string[] {
  return inflateRawSync(r.paths).toString('utf8').split('\n').filter(Boolean);
}

function sortedHashes(xs: string[]): Uint32Array {
  const a = Uint32Array.from(new Set(xs.map(nameHash)));
  return a.sort();
}

export function encodeRecord(r: UsageRecord): Buffer {
  const headers = sortedHashes(r.headers);
  const names = sortedHashes(r.names);
  const paths = deflateRawSync(r.headers.join('\n'));
  const buf = Buffer.alloc(
    32 + 4 * (headers.length + names.length) + 4 + Buffer.byteLength(r.file) + 4 + paths.length + 4,
  );
  let o = 0;
  buf.writeUInt32LE(MAGIC, o);
  buf.writeUInt32LE(VERSION, (o += 4));
  Buffer.from(r.key, 'hex').copy(buf, (o += 4));
  buf.writeUInt32LE(headers.length, (o += 16));
  buf.writeUInt32LE(names.length, (o += 4));
  o += 4;
  for (const h of headers) o = buf.writeUInt32LE(h, o);
  for (const n of names) o = buf.writeUInt32LE(n, o);
  o = buf.writeUInt32LE(Buffer.byteLength(r.file), o);
  o += buf.write(r.file, o);
  o = buf.writeUInt32LE(paths.length, o);
  o += paths.copy(buf, o);
  buf.writeUInt32LE(crc32(buf.subarray(0, o)), o);
  return buf;
}

/** The record in `buf`, or why it cannot be trusted. */
export function decodeRecord(buf: Buffer): StoredRecord | string {
  if (buf.length < 40) return 'truncated';
  const body = buf.length - 4;
  if (crc32(buf.subarray(0, body)) !== buf.readUInt32LE(body)) return 'checksum mismatch';
  if (buf.readUInt32LE(0) !== MAGIC || buf.readUInt32LE(4) !== VERSION) return 'not a usage record of this version';
  const key = buf.subarray(8, 24).toString('hex');
  const nh = buf.readUInt32LE(24);
  const nn = buf.readUInt32LE(28);
  const namesEnd = 32 + 4 * (nh + nn);
  if (namesEnd + 4 > body) return 'truncated';
  const flen = buf.readUInt32LE(namesEnd);
  const pathsAt = namesEnd + 4 + flen;
  if (pathsAt + 4 > body) return 'truncated';
  const plen = buf.readUInt32LE(pathsAt);
  if (pathsAt + 4 + plen !== body) return 'truncated';
  const words = (from: number, n: number) => {
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = buf.readUInt32LE(from + 4 * i);
    return out;
  };
  return {
    file: buf.toString('utf8', namesEnd + 4, namesEnd + 4 + flen),
    key,
    headers: words(32, nh),
    names: words(32 + 4 * nh, nn),
    paths: buf.subarray(pathsAt + 4, body),
  };
}

function has(sorted: Uint32Array, x: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid] as number;
    if (v === x) return true;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

export function readsHeader(r: StoredRecord, header: string): boolean {
  return has(r.headers, nameHash(header));
}

/** The first of `names` the TU uses, if any. */
export function firstUsed(r: StoredRecord, names: string[]): string | undefined {
  return names.find((n) => has(r.names, nameHash(n)));
}

export interface IndexMeta {
  schema: 1;
  abi: string;
  configSha256: string;
  commands: string;
  /** Every built TU has a record. */
  complete: boolean;
  tus: number;
  seconds: number;
}

export class UsageIndex {
  readonly dir: string;
  private readonly hashes: FileHashes;

  constructor(
    readonly target: TargetManifest,
    readonly built: BuiltCommands,
  ) {
    this.dir = join(targetLayout(target.abi).root, 'usage');
    this.hashes = new FileHashes(target.paths.source, target.paths.build);
  }

  static async open(target: TargetManifest): Promise<UsageIndex> {
    return new UsageIndex(target, await builtCommands(target));
  }

  get files(): string[] {
    return Object.keys(this.built.commands);
  }

  isBuilt(file: string): boolean {
    return this.built.commands[file] !== undefined;
  }

  private recordPath(file: string): string {
    return join(this.dir, 'records', `${file}.rec`);
  }

  private get metaPath(): string {
    return join(this.dir, 'index.json');
  }

  /** The index is complete for this target and these commands (else records are made as asked for). */
  meta(): IndexMeta | null {
    if (!existsSync(this.metaPath)) return null;
    try {
      const m = JSON.parse(readFileSync(this.metaPath, 'utf8')) as IndexMeta;
      const ok =
        m.schema === 1 &&
        m.abi === this.target.abi &&
        m.configSha256 === this.target.configSha256 &&
        m.commands === commandsHash(this.built);
      return ok ? m : null;
    } catch {
      return null;
    }
  }

  /** A stored record that still matches its files, or null (missing, corrupt, stale). */
  async stored(file: string): Promise<StoredRecord | null> {
    const p = this.recordPath(file);
    if (!existsSync(p)) return null;
    const r = decodeRecord(await readFile(p));
    if (typeof r === 'string' || r.file !== file) return null;
    return r;
  }

  private fresh(r: StoredRecord): boolean {
    const cmd = commandOf(this.target, this.built, r.file);
    if (cmd === null) return false;
    try {
      return recordKey(cmd, headerPaths(r), this.hashes) === r.key;
    } catch {
      return false; // paths that do not inflate: corrupt
    }
  }

  /**
   * Records of `files` (built TUs), made where missing or stale, `jobs` at a
   * time, with progress and an ETA. A TU that does not preprocess is reported, not fatal.
   */
  async ensure(
    files: string[],
    opts: { jobs?: number; label?: string } = {},
  ): Promise<{ records: Map<string, StoredRecord>; failed: Map<string, string>; made: number }> {
    const jobs = Math.max(1, opts.jobs ?? cpus().length);
    const records = new Map<string, StoredRecord>();
    const failed = new Map<string, string>();
    const todo: string[] = [];
    for (const f of files) {
      const r = await this.stored(f);
      // The key names the headers the record says were read; checking it re-reads their hashes.
      if (r && this.fresh(r)) records.set(f, r);
      else todo.push(f);
    }
    let done = 0;
    const started = Date.now();
    let lastReport = started;
    const label = opts.label ?? 'usage index';
    if (todo.length)
      info(`${label}: ${todo.length} translation units to preprocess (${records.size} cached), ${jobs} at a time`);
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const f = todo[next++] as string;
        const cmd = commandOf(this.target, this.built, f);
        if (!cmd) {
          failed.set(f, 'not built in this configuration');
          continue;
        }
        try {
          const rec = await makeUsageRecord(cmd, this.target.paths.source, this.target.paths.build, this.hashes).catch(
            async (e: unknown) => {
              if (!(e instanceof KlpgenError)) throw e;
              // Some TUs read files Kbuild generates while building them (firmware tables, ...):
              // Kbuild builds the object once, in our object tree, and then it preprocesses.
              await compileCommand(this.target, f).catch(() => undefined);
              return makeUsageRecord(cmd, this.target.paths.source, this.target.paths.build, this.hashes);
            },
          );
          const buf = encodeRecord(rec);
          await writeFileAtomic(this.recordPath(f), buf);
          records.set(f, decodeRecord(buf) as StoredRecord);
        } catch (e) {
          if (!(e instanceof KlpgenError)) throw e;
          failed.set(f, e.message);
        }
        done++;
        const now = Date.now();
        if (now - lastReport > 10_000 || done === todo.length) {
          lastReport = now;
          const rate = done / ((now - started) / 1000);
          const eta = (todo.length - done) / rate;
          info(
            `${label}: ${done}/${todo.length} (${rate.toFixed(1)}/s${done < todo.length ? `, about ${formatEta(eta)} left` : `, ${((now - started) / 1000).toFixed(0)} s`})`,
          );
        }
      }
    };
    await Promise.all(Array.from({ length: jobs }, worker));
    return { records, failed, made: done };
  }

  /** Records of every built TU; marks the index complete. */
  async buildAll(
    opts: { jobs?: number; only?: string[] } = {},
  ): Promise<{ meta: IndexMeta; failed: Map<string, string> }> {
    const started = Date.now();
    const files = opts.only ? this.files.filter((f) => opts.only?.some((p) => f.startsWith(p))) : this.files;
    const { failed } = await this.ensure(files, { jobs: opts.jobs ?? cpus().length });
    const meta: IndexMeta = {
      schema: 1,
      abi: this.target.abi,
      configSha256: this.target.configSha256,
      commands: commandsHash(this.built),
      complete: opts.only === undefined && failed.size === 0,
      tus: files.length - failed.size,
      seconds: Math.round((Date.now() - started) / 1000),
    };
    if (meta.complete) await writeFileAtomic(this.metaPath, `${JSON.stringify(meta, null, 2)}\n`);
    return { meta, failed };
  }
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  return `${Math.round(seconds / 60)} min`;
}
