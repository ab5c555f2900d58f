import { KEYWORDS, PUNCT_BASE, PUNCTUATORS, Pu, Tk } from './tokens.js';

/** Chunks of preprocessed text, each ending at a line end (but the last). */
export interface TextSource {
  next(): string | null;
  /**
   * The next chunk as latin1 bytes (one per character), if the source has
   * them: then preferred over next(). Valid until the following call.
   */
  nextBytes?: (() => Uint8Array | null) | undefined;
}

/** The text read so far: bytes, or UTF-16 code units once a string chunk had a character past latin1. */
type Store = Uint8Array | Uint16Array;

/**
 * Tokens of one preprocessed translation unit (gcc -E output with line
 * markers), stored column-wise in typed arrays: a kernel TU has over a
 * million tokens. Lexing is incremental: the parser asks for tokens with
 * fill(), and the lexer reads more text from its source as needed, so it can
 * run while gcc -E is still writing (see stream.ts). The text is kept as
 * bytes (gcc -E's output, read as latin1: offsets are byte offsets), which
 * the lexer scans and reads strings off.
 */
export class TokenStream {
  count = 0;
  // Each array field is assigned twice on construction, so V8 never treats
  // it as a constant: growing it later then deoptimizes nothing.
  /** Token codes (all below 256). */
  code: Uint8Array = new Uint8Array(0);
  start: Int32Array = new Int32Array(0);
  end: Int32Array = new Int32Array(0);
  /** For identifier tokens, the index of their spelling in `identifiers`. */
  ident: Int32Array = new Int32Array(0);
  readonly lines: LineMap;
  private readonly interner: Interner;
  /** The text read so far: `length` characters of `store`. */
  private store: Store = new Uint8Array(0);
  /** `store` as a Buffer (latin1 strings are read off it), while it holds bytes. */
  private bytes: Buffer | undefined;
  private length = 0;
  private iLine = 1;
  /** Where lexing is. */
  private curPos = 0;
  private atLineStart = true;
  done = false;

  /**
   * `expectedLength` sizes the arrays: growing them while lexing would cost
   * a copy and, worse, throw away optimized code that never saw it happen.
   * Large typed arrays are zeroed lazily by the OS, so room unused is cheap.
   */
  constructor(
    private readonly source: TextSource,
    expectedLength = 1 << 20,
  ) {
    const cap = Math.max(256, Math.floor(expectedLength / 4));
    this.code = new Uint8Array(cap);
    this.start = new Int32Array(cap);
    this.end = new Int32Array(cap);
    this.ident = new Int32Array(cap);
    this.lines = new LineMap(Math.max(64, Math.floor(expectedLength / 32)));
    this.interner = new Interner(Math.floor(expectedLength / 128));
    this.setStore(new Uint8Array(Math.max(1024, expectedLength)));
  }

  /** Distinct identifier spellings, interned. */
  get identifiers(): string[] {
    return this.interner.strings;
  }

  /** How many identifiers there is room for before the interner grows. */
  get nameCapacity(): number {
    return this.interner.capacity;
  }

  /** The identifier id of a name, interned if new (names the parser predeclares). */
  internName(name: string): number {
    let h = 0;
    for (let k = 0; k < name.length; k++)
      h = k === 0 ? name.charCodeAt(0) : (Math.imul(h, 31) + name.charCodeAt(k)) | 0;
    const found = this.interner.findString(name, h);
    return found >= 0 ? found : this.interner.add(name, h, -found - 1);
  }

  /** The whole preprocessed text (read to the end first). */
  get text(): string {
    this.fill(Number.MAX_SAFE_INTEGER);
    return this.decode(0, this.length);
  }

  /** Lex until token i exists or the text ends (then the last token is EOF). */
  fill(i: number): void {
    while (this.count <= i && !this.done) {
      if (this.curPos >= this.length) {
        if (!this.read()) {
          if (this.count === this.code.length) this.grow();
          this.code[this.count] = Tk.EOF;
          this.start[this.count] = this.length;
          this.end[this.count] = this.length;
          this.ident[this.count] = 0;
          this.count++;
          this.done = true;
          break;
        }
        this.atLineStart = true;
      }
      // A slice of the chunk at a time, up to a line end: lexChunk is then
      // called often enough for V8 to optimize it once, rather than compile
      // it again on the stack (OSR) for each long chunk.
      let stop = this.length;
      if (stop - this.curPos > SLICE) {
        const nl = this.store.indexOf(10, this.curPos + SLICE);
        if (nl >= 0 && nl < this.length) stop = nl + 1;
      }
      this.curPos = this.lexChunk(this.curPos, stop);
    }
  }

  /** The text read so far, without lexing more (for error messages). */
  textSoFar(): string {
    return this.decode(0, this.length);
  }

  /** Text between two offsets. */
  slice(s: number, e: number): string {
    return this.decode(Math.max(0, s), Math.min(e, this.length));
  }

  private decode(s: number, e: number): string {
    if (e <= s) return '';
    if (this.bytes !== undefined) return this.bytes.toString('latin1', s, e);
    let out = '';
    for (let k = s; k < e; k += 8192)
      out += String.fromCharCode.apply(null, Array.from(this.store.subarray(k, Math.min(e, k + 8192))));
    return out;
  }

  private setStore(store: Store): void {
    this.store = store;
    this.bytes =
      store instanceof Uint8Array ? Buffer.from(store.buffer, store.byteOffset, store.byteLength) : undefined;
  }

  /** Room for n more characters. */
  private reserve(n: number): void {
    if (this.length + n <= this.store.length) return;
    let size = this.store.length * 2;
    while (size < this.length + n) size *= 2;
    const bigger = this.store instanceof Uint8Array ? new Uint8Array(size) : new Uint16Array(size);
    bigger.set(this.store.subarray(0, this.length));
    this.setStore(bigger);
  }

  /** Append the next chunk of the source; false at its end. */
  private read(): boolean {
    if (this.source.nextBytes !== undefined && this.bytes !== undefined) {
      const chunk = this.source.nextBytes();
      if (chunk === null) return false;
      this.reserve(chunk.length);
      this.store.set(chunk, this.length);
      this.length += chunk.length;
      return true;
    }
    const chunk = this.source.next();
    if (chunk === null) return false;
    if (this.bytes !== undefined && /[^\x00-\xff]/.test(chunk)) {
      // Past latin1: the store holds UTF-16 code units from now on (offsets stay those of the string).
      const wide = new Uint16Array(Math.max(this.store.length, this.length + chunk.length));
      wide.set(this.store.subarray(0, this.length));
      this.setStore(wide);
    }
    this.reserve(chunk.length);
    if (this.bytes !== undefined) this.bytes.write(chunk, this.length, 'latin1');
    else for (let k = 0; k < chunk.length; k++) this.store[this.length + k] = chunk.charCodeAt(k);
    this.length += chunk.length;
    return true;
  }

  /** Double the token arrays. */
  private grow(): void {
    const cap = this.code.length * 2;
    const c2 = new Uint8Array(cap);
    c2.set(this.code);
    this.code = c2;
    const s2 = new Int32Array(cap);
    s2.set(this.start);
    this.start = s2;
    const e2 = new Int32Array(cap);
    e2.set(this.end);
    this.end = e2;
    const i2 = new Int32Array(cap);
    i2.set(this.ident);
    this.ident = i2;
  }

  /**
   * Text from `from` to about `stop` (a line start), in one loop: the token
   * arrays, the count and the line table are locals, written back when they
   * grow and at the end. Returns where it stopped.
   */
  private lexChunk(from: number, stop: number): number {
    const text = this.store;
    const n = this.length;
    const lines = this.lines;
    const interner = this.interner;
    let code = this.code;
    let start = this.start;
    let end = this.end;
    let ident = this.ident;
    let cap = code.length;
    let count = this.count;
    let lineStarts = lines.lineStarts;
    let lineCount = lines.lineCount;
    let iLine = this.iLine;
    let atLineStart = this.atLineStart;
    let i = from;
    while (i < stop) {
      const c = text[i] as number;
      const cls = c < 128 ? (CLASS[c] as number) : C.IDENT;
      if (cls === C.SPACE) {
        i++;
        continue;
      }
      if (cls === C.NEWLINE) {
        i++;
        iLine++;
        if (lineCount === lineStarts.length) {
          lines.lineCount = lineCount;
          lineStarts = lines.grow();
        }
        lineStarts[lineCount++] = i;
        atLineStart = true;
        continue;
      }
      const s = i;
      let k = 0;
      let id = 0;
      if (cls === C.IDENT) {
        let h = c;
        i++;
        while (i < n) {
          const d = text[i] as number;
          if (d < 128 && IDENT_CHAR[d] === 0) break;
          h = (Math.imul(h, 31) + d) | 0;
          i++;
        }
        const q = i < n ? (text[i] as number) : 0;
        if ((q === 34 || q === 39) && i - s <= 2 && isLiteralPrefix(text, s, i)) {
          // Prefixed literals: L"..", u8"..", u'..', U'..'
          i = skipQuoted(text, i, q, n);
          k = q === 34 ? Tk.STRING : Tk.CHAR;
        } else {
          id = interner.find(text, s, i, h);
          if (id < 0) id = interner.add(this.decode(s, i), h, -id - 1);
          k = interner.keyword[id] as number;
          if (k === 0) k = Tk.IDENT;
        }
      } else if (cls === C.PUNCT) {
        const d = i + 1 < n ? (text[i + 1] as number) : 0;
        const two = d < 128 ? (PUNCT2[(c << 7) | d] as number) : 0;
        if (two !== 0) {
          // <<= and >>= extend << and >>.
          if ((c === 60 || c === 62) && d === c && i + 2 < n && text[i + 2] === 61) {
            k = c === 60 ? Pu.ShlAssign : Pu.ShrAssign;
            i += 3;
          } else {
            k = two;
            i += 2;
          }
        } else {
          k = PUNCT1[c] as number;
          i++;
        }
      } else if (cls === C.DOT) {
        const d = i + 1 < n ? (text[i + 1] as number) : 0;
        if (d >= 48 && d <= 57) {
          i = skipNumber(text, i + 1, n);
          k = Tk.NUMBER;
        } else if (d === 46 && i + 2 < n && text[i + 2] === 46) {
          k = Pu.Ellipsis;
          i += 3;
        } else {
          k = Pu.Dot;
          i++;
        }
      } else if (cls === C.DIGIT) {
        i = skipNumber(text, i + 1, n);
        k = Tk.NUMBER;
      } else if (cls === C.QUOTE) {
        i = skipQuoted(text, i, c, n);
        k = c === 34 ? Tk.STRING : Tk.CHAR;
      } else if (cls === C.HASH && atLineStart) {
        // A line marker or a directive gcc -E keeps (#pragma): consume the line.
        let j = i + 1;
        while (j < n && (text[j] === 32 || text[j] === 9)) j++;
        let lineEnd = j;
        while (lineEnd < n && text[lineEnd] !== 10) lineEnd++;
        if (j < n && isDigit(text[j] as number)) {
          const m = /^(\d+)\s+"((?:[^"\\]|\\.)*)"(.*)$/.exec(this.decode(j, lineEnd));
          if (m) {
            lines.markers.push(
              new Marker(
                lineEnd + 1,
                lines.fileId(m[2]!.replace(/\\(.)/g, '$1')),
                Number(m[1]),
                iLine + 1,
                /\b2\b/.test(m[3] ?? ''),
              ),
            );
          }
        }
        i = lineEnd;
        continue;
      } else if (cls === C.HASH) {
        if (i + 1 < n && text[i + 1] === 35) {
          k = Pu.HashHash;
          i += 2;
        } else {
          k = Pu.Hash;
          i++;
        }
      } else if (cls === C.SLASH) {
        const d = i + 1 < n ? (text[i + 1] as number) : 0;
        if (d === 42) {
          // Comments survive only with -C (which klpgen does not use); skip them anyway.
          let stopAt = i + 2;
          while (stopAt < n && !(text[stopAt] === 42 && stopAt + 1 < n && text[stopAt + 1] === 47)) stopAt++;
          stopAt = stopAt < n ? stopAt + 2 : n;
          for (let q = i; q < stopAt; q++) {
            if (text[q] !== 10) continue;
            iLine++;
            if (lineCount === lineStarts.length) {
              lines.lineCount = lineCount;
              lineStarts = lines.grow();
            }
            lineStarts[lineCount++] = q + 1;
          }
          i = stopAt;
          continue;
        }
        if (d === 47) {
          while (i < n && text[i] !== 10) i++;
          continue;
        }
        if (d === 61) {
          k = Pu.DivAssign;
          i += 2;
        } else {
          k = Pu.Slash;
          i++;
        }
      } else if (cls === C.BACKSLASH && i + 1 < n && text[i + 1] === 10) {
        i++;
        continue;
      } else {
        this.count = count;
        throw new LexError(`stray '${String.fromCharCode(c)}' in program`, i);
      }
      atLineStart = false;
      if (count === cap) {
        this.count = count;
        this.grow();
        code = this.code;
        start = this.start;
        end = this.end;
        ident = this.ident;
        cap = code.length;
      }
      code[count] = k;
      start[count] = s;
      end[count] = i;
      ident[count] = id;
      count++;
    }
    this.count = count;
    this.iLine = iLine;
    this.atLineStart = atLineStart;
    lines.lineCount = lineCount;
    return i;
  }
}

/** Characters lexed per lexChunk call (then up to a line end). */
const SLICE = 8 * 1024;

/** A text as a source of one chunk. */
export function wholeText(text: string): TextSource {
  let given = false;
  return { next: () => (given ? null : ((given = true), text)) };
}

/** Lex a whole text at once. */
export function lex(text: string): TokenStream {
  const ts = new TokenStream(wholeText(text), text.length);
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

/**
 * A class, not object literals: V8 tracks literals' allocation sites and,
 * deciding later that they live long, throws away the lexer's optimized
 * code to allocate them elsewhere.
 */
class Marker implements LineMarker {
  constructor(
    readonly offset: number,
    readonly file: number,
    readonly line: number,
    readonly iLine: number,
    readonly returning: boolean,
  ) {}
}

/** Maps offsets of the .i text back to original files and lines. */
export class LineMap {
  readonly files: string[] = [];
  private readonly fileIndex = new Map<string, number>();
  readonly markers: LineMarker[] = [];
  /** Offsets where each .i line starts. */
  lineStarts: Int32Array = new Int32Array(0);
  lineCount = 1;

  constructor(expectedLines = 4096) {
    this.lineStarts = new Int32Array(expectedLines); // assigned twice: not a V8 constant field (see TokenStream)
  }

  /** Double lineStarts (keeping lineCount entries); returns the new array. */
  grow(): Int32Array {
    const bigger = new Int32Array(this.lineStarts.length * 2);
    bigger.set(this.lineStarts.subarray(0, this.lineCount));
    this.lineStarts = bigger;
    return bigger;
  }

  fileId(name: string): number {
    let id = this.fileIndex.get(name);
    if (id === undefined) {
      id = this.files.length;
      this.files.push(name);
      this.fileIndex.set(name, id);
    }
    return id;
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
    if (hi < 0 || (this.markers[0] as LineMarker).offset > offset)
      return { file: '<unknown>', line: pos.line, col: pos.col };
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.markers[mid] as LineMarker).offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    const m = this.markers[lo] as LineMarker;
    return { file: this.files[m.file] as string, line: m.line + (pos.line - m.iLine), col: pos.col };
  }

  /** Set by locate(). */
  origFile = '';
  origLine = 0;

  /** original() without allocating: the file and line are left in origFile and origLine. */
  locate(offset: number): void {
    const starts = this.lineStarts;
    let lo = 0;
    let hi = this.lineCount - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    const line = lo + 1;
    const markers = this.markers;
    if (markers.length === 0 || (markers[0] as LineMarker).offset > offset) {
      this.origFile = '<unknown>';
      this.origLine = line;
      return;
    }
    lo = 0;
    hi = markers.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((markers[mid] as LineMarker).offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    const m = markers[lo] as LineMarker;
    this.origFile = this.files[m.file] as string;
    this.origLine = m.line + (line - m.iLine);
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
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

// Character classes of ASCII (every char >= 128 is an identifier character, as gcc takes UTF-8 in names).
const enum C {
  OTHER,
  SPACE,
  NEWLINE,
  IDENT,
  DIGIT,
  QUOTE,
  PUNCT,
  DOT,
  HASH,
  SLASH,
  BACKSLASH,
}
const CLASS = new Uint8Array(128).fill(C.OTHER);
const IDENT_CHAR = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  if (isIdentStart(c)) {
    CLASS[c] = C.IDENT;
    IDENT_CHAR[c] = 1;
  }
  if (isDigit(c)) {
    CLASS[c] = C.DIGIT;
    IDENT_CHAR[c] = 1;
  }
}
for (const c of [32, 9, 13, 12, 11]) CLASS[c] = C.SPACE;
CLASS[10] = C.NEWLINE;
CLASS[34] = C.QUOTE;
CLASS[39] = C.QUOTE;
CLASS[46] = C.DOT;
CLASS[35] = C.HASH;
CLASS[47] = C.SLASH;
CLASS[92] = C.BACKSLASH;

// Punctuators by their first one or two characters; '.', '#' and '/' (which
// start numbers, '...', line markers and comments) are handled on their own.
const PUNCT1 = new Int16Array(128);
const PUNCT2 = new Int16Array(128 * 128);
PUNCTUATORS.forEach((p, i) => {
  const c = p.charCodeAt(0);
  if (p.length === 1) PUNCT1[c] = PUNCT_BASE + i;
  else if (p.length === 2) PUNCT2[(c << 7) | p.charCodeAt(1)] = PUNCT_BASE + i;
  if (c !== 46 && c !== 35 && c !== 47) CLASS[c] = C.PUNCT;
});

/** L, u8, u or U before a quote. */
function isLiteralPrefix(text: Store, s: number, e: number): boolean {
  const a = text[s] as number;
  if (e - s === 1) return a === 76 || a === 117 || a === 85;
  return a === 117 && text[s + 1] === 56;
}

/** The end of a pp-number from i: digits, letters, '.', and signs after e/E/p/P. */
function skipNumber(text: Store, i: number, n: number): number {
  while (i < n) {
    const d = text[i] as number;
    if (d >= 128 || IDENT_CHAR[d] === 1 || d === 46) {
      i++;
      continue;
    }
    if (d === 43 || d === 45) {
      const p = text[i - 1] as number;
      if (p === 101 || p === 69 || p === 112 || p === 80) {
        i++;
        continue;
      }
    }
    break;
  }
  return i;
}

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 36 || c >= 128;
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
  private table: Int32Array = new Int32Array(0);
  private hashes: Int32Array = new Int32Array(0);
  readonly strings: string[] = [];
  /** Keyword code of each string, 0 for plain identifiers. */
  keyword: Int16Array = new Int16Array(0);

  constructor(expectedNames: number) {
    let size = 64;
    while (size < expectedNames) size *= 2;
    // Assigned twice: not V8 constant fields (they grow).
    this.table = new Int32Array(size * 2).fill(-1);
    this.hashes = new Int32Array(size);
    this.keyword = new Int16Array(size);
  }

  get capacity(): number {
    return this.hashes.length;
  }

  /** The id of the name text[s, e) (hashed h), or -(slot + 1) for where to add it. */
  find(text: Store, s: number, e: number, h: number): number {
    const table = this.table;
    const mask = table.length - 1;
    const len = e - s;
    let slot = h & mask;
    for (;;) {
      const id = table[slot] as number;
      // Computed before it is needed, so a probe that collides runs no code the first lookups did not.
      const next = (slot + 1) & mask;
      if (id < 0) return -slot - 1;
      if (this.hashes[id] === h) {
        const str = this.strings[id] as string;
        if (str.length === len) {
          let k = 0;
          while (k < len && str.charCodeAt(k) === text[s + k]) k++;
          if (k === len) return id;
        }
      }
      slot = next;
    }
  }

  /** find() for a string. */
  findString(name: string, h: number): number {
    const mask = this.table.length - 1;
    let slot = h & mask;
    for (;;) {
      const id = this.table[slot] as number;
      if (id < 0) return -slot - 1;
      if (this.hashes[id] === h && this.strings[id] === name) return id;
      slot = (slot + 1) & mask;
    }
  }

  /** Add a name not interned yet, at the slot find() gave. */
  add(str: string, h: number, slot: number): number {
    const id = this.strings.length;
    if (id === this.hashes.length) {
      const hashes = new Int32Array(id * 2);
      hashes.set(this.hashes);
      this.hashes = hashes;
      const keyword = new Int16Array(id * 2);
      keyword.set(this.keyword);
      this.keyword = keyword;
    }
    this.strings.push(str);
    this.hashes[id] = h;
    this.keyword[id] = KEYWORDS.get(str) ?? 0;
    this.table[slot] = id;
    if (this.strings.length * 2 > this.table.length) this.rehash();
    return id;
  }

  private rehash(): void {
    const table = new Int32Array(this.table.length * 2).fill(-1);
    const mask = table.length - 1;
    for (let id = 0; id < this.strings.length; id++) {
      let slot = (this.hashes[id] as number) & mask;
      while ((table[slot] as number) >= 0) slot = (slot + 1) & mask;
      table[slot] = id;
    }
    this.table = table;
  }
}

function skipQuoted(text: Store, i: number, quote: number, n: number): number {
  let j = i + 1;
  while (j < n) {
    const d = text[j] as number;
    if (d === 92) {
      j += 2;
      continue;
    }
    if (d === quote) return j + 1;
    if (d === 10) throw new LexError(`missing terminating ${String.fromCharCode(quote)} character`, i);
    j++;
  }
  throw new LexError(`missing terminating ${String.fromCharCode(quote)} character`, i);
}
