/**
 * Hotness of kernel functions, read from one of three text formats; the
 * format is detected from the content:
 *  - `perf report --stdio`: `  12.34%  comm  [kernel.kallsyms]  [k] func`
 *    (with --children two percentages: Children then Self; Self is used).
 *    Entries of one symbol (several comms or DSOs) are summed.
 *  - `perf script`: one sample per header line; its IP is either at the
 *    end of the header line or the first frame line below it (with -g the
 *    following frames are its callers). The IP's `symbol+0xoff` gets one
 *    sample; caller frames are ignored (self weight only).
 *  - a plain list: `symbol weight` per line, `#` comments.
 */
import { KlpgenError } from '../util/errors.js';
import { foldNumbers } from '../analyze/objdiff.js';

export type ProfileFormat = 'perf-report' | 'perf-script' | 'plain';

export interface Profile {
  format: ProfileFormat;
  /** Self weight by symbol name as the profile spells it. */
  weights: Map<string, number>;
  total: number;
}

const REPORT_LINE = /^\s*(\d+(?:\.\d+)?)%\s+(?:(\d+(?:\.\d+)?)%\s+)?.*?\[([k.gus])\]\s+(\S+)/;
// `ffffffff81234567 native_safe_halt+0x7 ([kernel.kallsyms])`, on the header or an indented frame line.
const FRAME = /(?:^|\s)([0-9a-f]{6,16})\s+(\S+?)\+0x[0-9a-f]+\s+\(([^)]*)\)\s*$/;
// A call-chain line holds only the address, the symbol and the DSO.
const FRAME_ONLY = /^\s*[0-9a-f]{6,16}\s+\S+\s+\([^)]*\)\s*$/;
const PLAIN_LINE = /^(\S+)\s+([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$/;

export function parseProfile(text: string, source = 'profile'): Profile {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  if (lines.some((l) => !l.startsWith('#') && REPORT_LINE.test(l))) return parsePerfReport(lines);
  if (lines.some((l) => FRAME.test(l))) return parsePerfScript(lines);
  return parsePlain(lines, source);
}

function add(weights: Map<string, number>, symbol: string, w: number): void {
  weights.set(symbol, (weights.get(symbol) ?? 0) + w);
}

function finish(format: ProfileFormat, weights: Map<string, number>): Profile {
  let total = 0;
  for (const w of weights.values()) total += w;
  return { format, weights, total };
}

function parsePerfReport(lines: string[]): Profile {
  const weights = new Map<string, number>();
  for (const line of lines) {
    if (line.startsWith('#')) continue;
    const m = REPORT_LINE.exec(line);
    if (!m) continue; // call-graph lines (`|--12%--foo`), blank lines
    const [, first, second, , symbol] = m;
    // Only kernel samples are about the functions we compile; `[k] 0xffff...` has no symbol.
    if (m[3] !== 'k' || !symbol || /^0x[0-9a-f]+$/.test(symbol)) continue;
    add(weights, symbol, Number(second ?? first));
  }
  return finish('perf-report', weights);
}

function parsePerfScript(lines: string[]): Profile {
  const weights = new Map<string, number>();
  // The first frame after a header is the sampled IP; later frames of the same sample are callers.
  let expectIp = false;
  for (const line of lines) {
    if (line.trim() === '') {
      expectIp = false;
      continue;
    }
    const frame = FRAME.exec(line);
    if (!FRAME_ONLY.test(line)) {
      // A header line: the IP may be on it (perf script without -g).
      expectIp = !frame;
      if (frame) countFrame(weights, frame);
      continue;
    }
    if (expectIp && frame) countFrame(weights, frame);
    expectIp = false;
  }
  return finish('perf-script', weights);
}

function countFrame(weights: Map<string, number>, frame: RegExpExecArray): void {
  const symbol = frame[2];
  if (symbol && symbol !== '[unknown]') add(weights, symbol, 1);
}

function parsePlain(lines: string[], source: string): Profile {
  const weights = new Map<string, number>();
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = PLAIN_LINE.exec(line);
    if (!m) {
      throw new KlpgenError(
        `${source}:${i + 1}: not a profile: expected \`perf report --stdio\` or \`perf script\` output, or \`symbol weight\` lines; got: ${line.slice(0, 120)}`,
      );
    }
    add(weights, m[1] as string, Number(m[2]));
  });
  if (weights.size === 0) throw new KlpgenError(`${source}: empty profile`);
  return finish('plain', weights);
}

/**
 * Weight of one function: its own name, else every profile symbol equal to
 * it once clone and static-local numbers are folded (`foo.isra.0` vs
 * `foo.isra.1`). A static name in several files gets the weight in each:
 * the profile does not say which one it sampled.
 */
export class ProfileIndex {
  private readonly folded = new Map<string, number>();
  constructor(readonly profile: Profile) {
    for (const [s, w] of profile.weights) {
      const k = foldNumbers(s);
      this.folded.set(k, (this.folded.get(k) ?? 0) + w);
    }
  }

  weightOf(name: string): number {
    return this.profile.weights.get(name) ?? this.folded.get(foldNumbers(name)) ?? 0;
  }
}
