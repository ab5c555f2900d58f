import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { KlpgenError } from '../util/errors.js';
import type { TextSource } from './lexer.js';

/**
 * gcc -E's output read while gcc is still writing it, so preprocessing (in
 * gcc's process) and lexing/parsing (in ours) run on two cores at once.
 * gcc writes a regular file, never a pipe: a pipe would stall gcc whenever
 * the parser is busy. We read the file as it grows; when a read finds
 * nothing new, gcc is either still working (wait 200 µs) or gone (the end).
 * Our event loop is blocked meanwhile, so an exited gcc stays a zombie in
 * /proc until we return: that is how its end is seen.
 *
 * Bytes gather in one buffer and are handed out in chunks of complete
 * lines (the lexer copies them): at least MIN_CHUNK of them, or whatever gcc
 * has written when the parser has caught up with it, so the parser never
 * waits on text already written.
 */
const MIN_CHUNK = 64 * 1024;

export class StreamedPreprocessor implements TextSource {
  private fd = -1;
  private position = 0;
  private buf = Buffer.allocUnsafe(1 << 20);
  /** Bytes read into buf and not handed out yet. */
  private length = 0;
  private eof = false;
  private stderr = '';
  private exitCode: number | null = null;
  private readonly child: ChildProcess;
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));
  readonly startedAt = performance.now();
  /** When gcc's output was complete (for timings). */
  endedAt = 0;
  /** Time spent waiting for gcc to write more (for timings). */
  waitedMs = 0;

  constructor(
    argv: string[],
    cwd: string,
    private readonly output: string,
  ) {
    this.child = spawn(argv[0] as string, argv.slice(1), { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr?.on('data', (b: Buffer) => {
      this.stderr += b.toString('utf8');
    });
    this.child.on('exit', (code) => {
      this.exitCode = code ?? -1;
    });
  }

  /** gcc's /proc/PID/stat, kept open: reading it again from offset 0 gives the state now. */
  private statFd = -1;
  private readonly statBuf = Buffer.allocUnsafe(1024);

  private gccRunning(): boolean {
    const pid = this.child.pid;
    if (pid === undefined) return false;
    try {
      if (this.statFd < 0) this.statFd = openSync(`/proc/${pid}/stat`, 'r');
      const n = readSync(this.statFd, this.statBuf, 0, this.statBuf.length, 0);
      // "PID (comm) S ...": the state letter follows the last ')'; Z is a zombie (gone).
      const close = n > 0 ? this.statBuf.lastIndexOf(41, n - 1) : -1;
      if (close < 0 || close + 2 >= n) return false;
      return this.statBuf[close + 2] !== 90;
    } catch {
      return false;
    }
  }

  /** Sleep a little: gcc writes some 25 KB a millisecond. */
  private wait(): void {
    const t = performance.now();
    Atomics.wait(this.sleeper, 0, 0, 0.2);
    this.waitedMs += performance.now() - t;
  }

  /** Read what gcc has written since; the number of bytes. */
  private read(): number {
    if (this.length === this.buf.length) {
      const bigger = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(bigger, 0, 0, this.length);
      this.buf = bigger;
    }
    const n = readSync(this.fd, this.buf, this.length, this.buf.length - this.length, this.position);
    this.position += n;
    this.length += n;
    return n;
  }

  /** The complete lines read so far (their bytes stay in buf until the next call). */
  private take(): Buffer | null {
    const cut = this.buf.lastIndexOf(10, this.length - 1) + 1;
    if (cut === 0) return null;
    this.handedOut = cut;
    return this.buf.subarray(0, cut);
  }

  /** Bytes handed out by the last call, dropped from buf at the next. */
  private handedOut = 0;

  next(): string | null {
    const bytes = this.nextBytes();
    return bytes === null ? null : bytes.toString('latin1');
  }

  nextBytes(): Buffer | null {
    if (this.handedOut > 0) {
      this.buf.copyWithin(0, this.handedOut, this.length);
      this.length -= this.handedOut;
      this.handedOut = 0;
    }
    if (this.eof) return null;
    while (this.fd < 0) {
      // gcc creates its output file as it starts; a gcc that died first never does.
      if (existsSync(this.output)) this.fd = openSync(this.output, 'r');
      else if (!this.gccRunning()) return this.end();
      else this.wait();
    }
    for (;;) {
      const n = this.read();
      if (n > 0 && this.length < MIN_CHUNK) continue; // more may be there already
      if (n === 0) {
        if (!this.gccRunning()) {
          // Gone: whatever it wrote before exiting is in the file now.
          while (this.read() > 0);
          return this.end();
        }
        // The parser has caught up: hand out what there is, else wait.
        const bytes = this.length > 0 ? this.take() : null;
        if (bytes !== null) return bytes;
        this.wait();
        continue;
      }
      const bytes = this.take();
      if (bytes !== null) return bytes;
    }
  }

  private end(): Buffer | null {
    this.eof = true;
    this.endedAt = performance.now();
    if (this.fd >= 0) closeSync(this.fd);
    if (this.statFd >= 0) closeSync(this.statFd);
    if (this.length === 0) return null;
    this.handedOut = this.length;
    return this.buf.subarray(0, this.length);
  }

  /** After the text is consumed: gcc's exit status and messages (the event loop must run for them). */
  async finish(): Promise<{ code: number; stderr: string }> {
    if (this.exitCode === null) await new Promise<void>((res) => this.child.on('exit', () => res()));
    if (!this.eof) throw new KlpgenError('gcc -E output was not read to its end');
    return { code: this.exitCode ?? -1, stderr: this.stderr };
  }
}
