import { KEYWORDS, PUNCT_BASE, PUNCTUATORS, T } from './tokens.js';

/** Chunks of preprocessed text, each ending at a line end (but the last). */
export interface TextSource {
  next(): string | null;
}

/**
 * Tokens of one preprocessed translation unit (gcc -E output with line
 * markers), stored column-wise in typed arrays: a kernel TU has over a
 * million tokens. Lexing is incremental: the parser asks for tokens with
 * fill(), and the lexer reads more text from its source as needed, so it can
 * run while gcc -E is still writing (see stream.ts).
 */
export class TokenStream {
  count = 0;
  code: Int16Array;
  start: Int32Array;
  end: Int32Array;
  /** For identifier tokens, the index of their spelling in `identifiers`. */
  ident: Int32Array;
  readonly lines = new LineMap();
  private readonly interner = new Interner();
  private readonly chunks: string[] = [];
  private readonly chunkBase: number[] = [];
  private length = 0;
  private iLine = 1;
  private joined: string | undefined;
  done = false;

  constructor(private readonly source: TextSource, expectedLength = 1 << 20) {
    const cap = Math.max(1024, Math.floor(expectedLength / 4));
    this.code = new Int16Array(cap);
    this.start = new Int32Array(cap);
    this.end = new Int32Array(cap);
    this.ident = new Int32Array(cap);
  }

  /** Distinct identifier spellings, interned. */
  get identifiers(): string[] {
    return this.interner.strings;
  }

  /** The whole preprocessed text (read to the end first). */
  get text(): string {
    this.fill(Number.MAX_SAFE_INTEGER);
    if (this.joined === undefined) this.joined = this.chunks.length === 1 ? (this.chunks[0] as string) : this.chunks.join('');
    return this.joined;
  }

  /** Lex until token i exists or the text ends (then the last token is EOF). */
  fill(i: number): void {
    while (this.count <= i && !this.done) {
      const chunk = this.source.next();
      if (chunk === null) {
        this.push(T.EOF, this.length, this.length);
        this.done = true;
        break;
      }
      const base = this.length;
      this.chunks.push(chunk);
      this.chunkBase.push(base);
      this.length += chunk.length;
      this.lexChunk(chunk, base);
    }
  }

  /** The text read so far, without lexing more (for error messages). */
  textSoFar(): string {
    return this.joined ?? this.chunks.join('');
  }

  /** Text between two offsets, across chunks. */
  slice(s: number, e: number): string {
    if (this.joined !== undefined) return this.joined.slice(s, e);
    let lo = 0;
    let hi = this.chunkBase.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.chunkBase[mid] as number) <= s) lo = mid;
      else hi = mid - 1;
    }
    let out = '';
    for (let k = lo; k < this.chunks.length && (this.chunkBase[k] as number) < e; k++) {
      const b = this.chunkBase[k] as number;
      out += (this.chunks[k] as string).slice(Math.max(0, s - b), e - b);
    }
    return out;
  }

  private push(c: number, s: number, e: number): void {
    if (this.count === this.code.length) {
      const cap = this.code.length * 2;
      const c2 = new Int16Array(cap); c2.set(this.code); this.code = c2;
      const s2 = new Int32Array(cap); s2.set(this.start); this.start = s2;
      const e2 = new Int32Array(cap); e2.set(this.end); this.end = e2;
      const i2 = new Int32Array(cap); i2.set(this.ident); this.ident = i2;
    }
    this.code[this.count] = c;
    this.start[this.count] = s;
    this.end[this.count] = e;
    this.count++;
  }

  private lexChunk(text: string, base: number): void {
    const n = text.length;
    const lines = this.lines;
    const interner = this.interner;
    let atLineStart = true;
    let i = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 10) {
        i++;
        this.iLine++;
        lines.addLineStart(base + i);
        atLineStart = true;
        continue;
      }
      if (c === 32 || c === 9 || c === 13 || c === 12 || c === 11) { i++; continue; }
      if (c === 35 && atLineStart) {
        // A line marker or a directive gcc -E keeps (#pragma): consume the line.
        let j = i + 1;
        while (j < n && (text.charCodeAt(j) === 32 || text.charCodeAt(j) === 9)) j++;
        let lineEnd = text.indexOf('\n', j);
        if (lineEnd < 0) lineEnd = n;
        if (isDigit(text.charCodeAt(j))) {
          const m = /^(\d+)\s+"((?:[^"\\]|\\.)*)"(.*)$/.exec(text.slice(j, lineEnd));
          if (m) {
            lines.markers.push({
              offset: base + lineEnd + 1,
              file: lines.fileId(m[2]!.replace(/\\(.)/g, '$1')),
              line: Number(m[1]),
              iLine: this.iLine + 1,
              returning: /\b2\b/.test(m[3] ?? ''),
            });
          }
        }
        i = lineEnd;
        continue;
      }
      atLineStart = false;
      const s = i;
      if (isIdentStart(c)) {
        let h = c;
        i++;
        for (; i < n; i++) {
          const d = text.charCodeAt(i);
          if (!isIdentChar(d)) break;
          h = (Math.imul(h, 31) + d) | 0;
        }
        // Prefixed literals: L"..", u8"..", u'..', U'..'
        const q = text.charCodeAt(i);
        if ((q === 34 || q === 39) && i - s <= 2 && /^(L|u8|u|U)$/.test(text.slice(s, i))) {
          i = skipQuoted(text, i, q, base);
          this.push(q === 34 ? T.STRING : T.CHAR, base + s, base + i);
          continue;
        }
        const id = interner.intern(text, s, i, h);
        const k = interner.keyword[id] as number;
        if (k !== 0) this.push(k, base + s, base + i);
        else {
          this.push(T.IDENT, base + s, base + i);
          this.ident[this.count - 1] = id; // after push: it may have grown the arrays
        }
        continue;
      }
      if (isDigit(c) || (c === 46 && isDigit(text.charCodeAt(i + 1)))) {
        // A pp-number: digits, letters, '.', and signs after e/E/p/P.
        i++;
        while (i < n) {
          const d = text.charCodeAt(i);
          if (isIdentChar(d) || d === 46) { i++; continue; }
          if ((d === 43 || d === 45) && /[eEpP]/.test(text[i - 1] as string)) { i++; continue; }
          break;
        }
        this.push(T.NUMBER, base + s, base + i);
        continue;
      }
      if (c === 34 || c === 39) {
        i = skipQuoted(text, i, c, base);
        this.push(c === 34 ? T.STRING : T.CHAR, base + s, base + i);
        continue;
      }
      if (c === 47 && text.charCodeAt(i + 1) === 42) {
        // Comments survive only with -C (which klpgen does not use); skip them anyway.
        const e = text.indexOf('*/', i + 2);
        const stop = e < 0 ? n : e + 2;
        for (let k = i; k < stop; k++) if (text.charCodeAt(k) === 10) { this.iLine++; lines.addLineStart(base + k + 1); }
        i = stop;
        continue;
      }
      if (c === 47 && text.charCodeAt(i + 1) === 47) {
        const e = text.indexOf('\n', i);
        i = e < 0 ? n : e;
        continue;
      }
      if (c === 92 && text.charCodeAt(i + 1) === 10) { i++; continue; }
      const cands = PUNCT_BY_CHAR.get(c);
      if (cands) {
        let matched = false;
        for (const p of cands) {
          if (p.text.length === 1 || text.startsWith(p.text, i)) {
            i += p.text.length;
            this.push(p.code, base + s, base + i);
            matched = true;
            break;
          }
        }
        if (matched) continue;
      }
      throw new LexError(`stray '${text[i]}' in program`, base + i);
    }
  }
}

/** Lex a whole text at once. */
export function lex(text: string): TokenStream {
  let given = false;
  const ts = new TokenStream({ next: () => (given ? null : ((given = true), text)) }, text.length);
  ts.fill(Number.MAX_SAFE_INTEGER);
  return ts;
}

/** One `# N "file" flags` marker: from `offset` on, .i text is `file` starting at line N. */
export interface LineMarker {
  offset: number;
  file: number;
  line: number;
  /** Line number in the .i text (1-based) of the line after the marker. */
  iLine: number;
  /** Flag 2: back in `file` after an #include (which was on line - 1). */
  returning: boolean;
}

/** Maps offsets of the .i text back to original files and lines. */
export class LineMap {
  readonly files: string[] = [];
  private readonly fileIndex = new Map<string, number>();
  readonly markers: LineMarker[] = [];
  /** Offsets where each .i line starts. */
  lineStarts: Int32Array = new Int32Array(1024);
  lineCount = 1;

  fileId(name: string): number {
    let id = this.fileIndex.get(name);
    if (id === undefined) {
      id = this.files.length;
      this.files.push(name);
      this.fileIndex.set(name, id);
    }
    return id;
  }

  addLineStart(offset: number): void {
    if (this.lineCount === this.lineStarts.length) {
      const bigger = new Int32Array(this.lineStarts.length * 2);
      bigger.set(this.lineStarts);
      this.lineStarts = bigger;
    }
    this.lineStarts[this.lineCount++] = offset;
  }

  /** 1-based line and column of an offset in the .i text. */
  iPosition(offset: number): { line: number; col: number } {
    let lo = 0;
    let hi = this.lineCount - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.lineStarts[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - (this.lineStarts[lo] as number) + 1 };
  }

  /** Original file and line of an offset in the .i text. */
  original(offset: number): { file: string; line: number; col: number } {
    const pos = this.iPosition(offset);
    let lo = 0;
    let hi = this.markers.length - 1;
    if (hi < 0 || (this.markers[0] as LineMarker).offset > offset) return { file: '<unknown>', line: pos.line, col: pos.col };
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.markers[mid] as LineMarker).offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    const m = this.markers[lo] as LineMarker;
    return { file: this.files[m.file] as string, line: m.line + (pos.line - m.iLine), col: pos.col };
  }

  /** Index into `files` of the file an offset belongs to. */
  fileAt(offset: number): number {
    let lo = 0;
    let hi = this.markers.length - 1;
    if (hi < 0) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.markers[mid] as LineMarker).offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return (this.markers[lo] as LineMarker).file;
  }
}

export class LexError extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
  }
}

// Punctuator lookup: for each first character, candidates longest first.
const PUNCT_BY_CHAR = new Map<number, { text: string; code: number }[]>();
PUNCTUATORS.forEach((p, i) => {
  const c = p.charCodeAt(0);
  const list = PUNCT_BY_CHAR.get(c) ?? [];
  list.push({ text: p, code: PUNCT_BASE + i });
  list.sort((a, b) => b.text.length - a.text.length);
  PUNCT_BY_CHAR.set(c, list);
});

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 36 || c >= 128;
}
function isIdentChar(c: number): boolean {
  return isIdentStart(c) || (c >= 48 && c <= 57);
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * Identifiers interned by a hash of their characters: each distinct name is
 * sliced once, and every later occurrence shares that string (the parser's
 * Map lookups then reuse its cached hash).
 */
class Interner {
  private table = new Int32Array(1 << 16).fill(-1);
  private hashes: number[] = [];
  readonly strings: string[] = [];
  readonly keyword: number[] = [];

  intern(text: string, s: number, e: number, h: number): number {
    const mask = this.table.length - 1;
    let slot = h & mask;
    for (;;) {
      const id = this.table[slot] as number;
      if (id < 0) break;
      if (this.hashes[id] === h) {
        const str = this.strings[id] as string;
        if (str.length === e - s && text.startsWith(str, s)) return id;
      }
      slot = (slot + 1) & mask;
    }
    const id = this.strings.length;
    const str = text.slice(s, e);
    this.strings.push(str);
    this.hashes.push(h);
    this.keyword.push(KEYWORDS.get(str) ?? 0);
    this.table[slot] = id;
    if (this.strings.length * 2 > this.table.length) this.grow();
    return id;
  }

  private grow(): void {
    const table = new Int32Array(this.table.length * 2).fill(-1);
    const mask = table.length - 1;
    this.hashes.forEach((h, id) => {
      let slot = h & mask;
      while ((table[slot] as number) >= 0) slot = (slot + 1) & mask;
      table[slot] = id;
    });
    this.table = table;
  }
}

function skipQuoted(text: string, i: number, quote: number, base: number): number {
  let j = i + 1;
  const n = text.length;
  while (j < n) {
    const d = text.charCodeAt(j);
    if (d === 92) { j += 2; continue; }
    if (d === quote) return j + 1;
    if (d === 10) throw new LexError(`missing terminating ${String.fromCharCode(quote)} character`, base + i);
    j++;
  }
  throw new LexError(`missing terminating ${String.fromCharCode(quote)} character`, base + i);
}
