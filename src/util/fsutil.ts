import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KlpgenError, errnoCode } from './errors.js';

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Write through a temporary name and rename, so a reader never sees half a file. */
export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw diskError(e, path);
  }
}

/** Write only when the content differs: a re-run that changes nothing leaves mtimes alone. */
export async function writeIfChanged(path: string, data: string): Promise<boolean> {
  if (existsSync(path) && (await readFile(path, 'utf8')) === data) return false;
  await writeFileAtomic(path, data);
  return true;
}

export function diskError(e: unknown, where: string): unknown {
  if (errnoCode(e) === 'ENOSPC') {
    return new KlpgenError(
      `disk full while writing ${where}: free some space (or point KLPGEN_CACHE elsewhere) and run again`,
    );
  }
  return e;
}

export async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T;
}

export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * An exclusive lock held by this process for the duration of fn. A lock left
 * by a dead process is taken over; a live holder makes us fail fast.
 */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(dirname(lockPath), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(lockPath, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      try {
        return await fn();
      } finally {
        await rm(lockPath, { force: true });
      }
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
      const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (holder > 0 && holder !== process.pid && pidAlive(holder)) {
        throw new KlpgenError(`${lockPath} is held by running process ${holder}: wait for it to finish`);
      }
      await rm(lockPath, { force: true });
    }
  }
  throw new KlpgenError(`could not take lock ${lockPath}`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
}
