import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { KlpgenError } from '../util/errors.js';
import type { TextSource } from './lexer.js';

/**
 * gcc -E's output read while gcc is still writing it, so preprocessing (in
 * gcc's process) and lexing/parsing (in ours) run on two cores at once.
 * gcc writes a regular file, never a pipe: a pipe would stall gcc whenever
 * the parser is busy. We read the file as it grows; when a read finds
 * nothing new, gcc is either still working (wait 50 µs) or gone (the end).
 * Our event loop is blocked meanwhile, so an exited gcc stays a zombie in
 * /proc until we return: that is how its end is seen.
 */
const MIN_CHUNK = 256 * 1024;

export class StreamedPreprocessor implements TextSource {
  private fd = -1;
  private position = 0;
  private readonly buf = Buffer.allocUnsafe(1 << 20);
  private carry = '';
  private pending: string[] = [];
  private pendingBytes = 0;
  private eof = false;
  private stderr = '';
  private exitCode: number | null = null;
  private readonly child: ChildProcess;
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));
  readonly startedAt = performance.now();
  /** When gcc's output was complete (for timings). */
  endedAt = 0;

  constructor(argv: string[], cwd: string, private readonly output: string) {
    this.child = spawn(argv[0] as string, argv.slice(1), { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr?.on('data', (b: Buffer) => { this.stderr += b.toString('utf8'); });
    this.child.on('exit', (code) => { this.exitCode = code ?? -1; });
  }

  private gccRunning(): boolean {
    const pid = this.child.pid;
    if (pid === undefined) return false;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  }

  waitMs = 0; waits = 0; chunks = 0; firstAt = 0;
  private wait(): void {
    const t = performance.now();
    Atomics.wait(this.sleeper, 0, 0, 0.05);
    this.waitMs += performance.now() - t; this.waits++;
  }

  next(): string | null {
    if (this.eof) return null;
    while (this.fd < 0) {
      // gcc creates its output file as it starts; a gcc that died first never does.
      if (existsSync(this.output)) this.fd = openSync(this.output, 'r');
      else if (!this.gccRunning()) return this.end();
      else this.wait();
    }
    for (;;) {
      let n = readSync(this.fd, this.buf, 0, this.buf.length, this.position);
      if (n === 0) {
        if (this.gccRunning()) {
          this.wait();
          continue;
        }
        // Gone: whatever it wrote before exiting is in the file now.
        n = readSync(this.fd, this.buf, 0, this.buf.length, this.position);
        if (n === 0) return this.end();
      }
      this.position += n;
      this.pending.push(this.buf.toString('latin1', 0, n));
      this.pendingBytes += n;
      // Hand out large chunks: many small strings would cost more to join and scan than they save.
      if (this.pendingBytes < MIN_CHUNK && this.gccRunning()) continue;
      // latin1: one char per byte, so offsets are byte offsets of the .i text.
      const text = this.carry + this.pending.join('');
      this.pending = [];
      this.pendingBytes = 0;
      const cut = text.lastIndexOf('\n') + 1;
      this.carry = text.slice(cut);
      if (cut > 0) { if (!this.chunks++) this.firstAt = performance.now() - this.startedAt; return text.slice(0, cut); }
    }
  }

  private end(): string | null {
    this.eof = true;
    this.endedAt = performance.now();
    if (process.env.KLPGEN_STREAM_DEBUG) process.stderr.write(`stream: waited ${this.waitMs.toFixed(1)} ms in ${this.waits} waits, ${this.chunks} chunks, first at ${this.firstAt.toFixed(1)} ms, end at ${(this.endedAt - this.startedAt).toFixed(1)} ms\n`);
    if (this.fd >= 0) closeSync(this.fd);
    const rest = this.carry + this.pending.join('');
    this.carry = '';
    this.pending = [];
    return rest.length ? rest : null;
  }

  /** After the text is consumed: gcc's exit status and messages (the event loop must run for them). */
  async finish(): Promise<{ code: number; stderr: string }> {
    if (this.exitCode === null) await new Promise<void>((res) => this.child.on('exit', () => res()));
    if (!this.eof) throw new KlpgenError('gcc -E output was not read to its end');
    return { code: this.exitCode ?? -1, stderr: this.stderr };
  }
}
