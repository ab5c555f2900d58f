import { spawn } from 'node:child_process';
import { readSync } from 'node:fs';
import { KlpgenError } from '../util/errors.js';
import type { TextSource } from './lexer.js';

/**
 * gcc -E's output read while gcc is still writing it: the lexer and parser
 * pull text synchronously from the pipe, so preprocessing (in gcc's process)
 * and parsing (in ours) run on two cores at once. The pipe is non-blocking;
 * an empty read waits 50 µs and tries again.
 */
export class PipedPreprocessor implements TextSource {
  private readonly fd: number;
  private readonly buf = Buffer.allocUnsafe(1 << 20);
  private carry = '';
  private eof = false;
  private stderr = '';
  private exitCode: number | null = null;
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));
  readonly startedAt = performance.now();
  /** When gcc's output ended (for timings). */
  endedAt = 0;

  constructor(argv: string[], cwd: string) {
    const child = spawn(argv[0] as string, argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const handle = (child.stdout as unknown as { _handle?: { fd?: number } })._handle;
    if (handle?.fd === undefined || handle.fd < 0) throw new KlpgenError('cannot read gcc -E output through a pipe');
    this.fd = handle.fd;
    child.stderr?.on('data', (b: Buffer) => { this.stderr += b.toString('utf8'); });
    child.on('exit', (code) => { this.exitCode = code ?? -1; });
    this.child = child;
  }

  private readonly child: ReturnType<typeof spawn>;

  next(): string | null {
    if (this.eof) return null;
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (e) {
        if ((e as { code?: string }).code === 'EAGAIN') {
          Atomics.wait(this.sleeper, 0, 0, 0.05); // 50 µs: gcc refills the pipe quickly
          continue;
        }
        throw e;
      }
      if (n === 0) {
        this.eof = true;
        this.endedAt = performance.now();
        const rest = this.carry;
        this.carry = '';
        return rest.length ? rest : null;
      }
      // latin1: one char per byte, so offsets are byte offsets of the .i text.
      const text = this.carry + this.buf.toString('latin1', 0, n);
      const cut = text.lastIndexOf('\n') + 1;
      this.carry = text.slice(cut);
      if (cut > 0) return text.slice(0, cut);
    }
  }

  /** After the text is consumed: gcc's exit status and messages (the event loop must run for them). */
  async finish(): Promise<{ code: number; stderr: string }> {
    if (this.exitCode === null) await new Promise<void>((res) => this.child.on('exit', () => res()));
    this.child.stdout?.destroy();
    return { code: this.exitCode ?? -1, stderr: this.stderr };
  }
}
