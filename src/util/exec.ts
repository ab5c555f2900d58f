import { spawn, type SpawnOptions } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { KlpgenError, errnoCode } from './errors.js';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the process group after this many milliseconds. */
  timeoutMs?: number;
  /** Also append stdout+stderr to this file (for long builds). */
  logFile?: string;
  input?: string | Buffer;
  /** Print a heartbeat with the latest output line every 15 s (long builds). */
  heartbeat?: string;
}

export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Run a program without a shell; never throws for a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      // Own process group, so a timeout kills the whole tree (make, qemu, ...).
      detached: true,
    };
    const child = spawn(cmd, args, spawnOpts);
    const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        killGroup(child.pid);
      }, opts.timeoutMs);
    }
    let lastLine = '';
    const started = Date.now();
    const beat =
      opts.heartbeat === undefined
        ? undefined
        : setInterval(() => {
            const secs = Math.round((Date.now() - started) / 1000);
            process.stderr.write(`    ${opts.heartbeat}: ${secs} s${lastLine ? `: ${lastLine.slice(0, 100)}` : ''}\n`);
          }, 15000);
    const onData = (sink: Buffer[]) => (b: Buffer) => {
      sink.push(b);
      log?.write(b);
      if (beat) {
        const lines = b.toString('utf8').trimEnd().split('\n');
        lastLine = (lines[lines.length - 1] ?? '').trim() || lastLine;
      }
    };
    child.stdout?.on('data', onData(out));
    child.stderr?.on('data', onData(err));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      if (beat) clearInterval(beat);
      log?.end();
      if (errnoCode(e) === 'ENOENT') reject(new KlpgenError(`${cmd}: command not found`));
      else reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (beat) clearInterval(beat);
      const finish = () =>
        resolve({
          code: code ?? -1,
          signal,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          timedOut,
        });
      if (log) log.end(finish);
      else finish();
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

/** Run and require exit 0; on failure the error names the command and its last output lines. */
export async function runChecked(
  cmd: string,
  args: readonly string[],
  opts: RunOptions & { what?: string } = {},
): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0 || r.timedOut) {
    const what = opts.what ?? `${cmd} ${args.join(' ')}`;
    const tail = lastLines(r.stderr.trim() || r.stdout.trim(), 15);
    const why = r.timedOut ? 'timed out' : `exit ${r.code}`;
    const logHint = opts.logFile ? ` (full log: ${opts.logFile})` : '';
    throw new KlpgenError(`${what} failed (${why})${logHint}${tail ? `:\n${tail}` : ''}`);
  }
  return r;
}

export function lastLines(text: string, n: number): string {
  const lines = text.split('\n');
  return lines.slice(Math.max(0, lines.length - n)).join('\n');
}

/** True if a program is on PATH. */
export async function haveProgram(name: string): Promise<boolean> {
  const r = await run('sh', ['-c', `command -v '${name.replace(/'/g, '')}'`]);
  return r.code === 0;
}
