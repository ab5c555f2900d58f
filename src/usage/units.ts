import { KEYWORDS } from '../frontend/tokens.js';

/**
 * Top-level units of C text: function definitions and declarations, each
 * with the names it declares and the identifiers it mentions. Enough C to
 * answer "which header names can this translation unit's code depend on?"
 * for millions of lines at a time, far cheaper than the full frontend:
 * brackets are matched, strings and numbers skipped, nothing is typed.
 *
 * Where a unit's declared name cannot be told (an odd declarator, a macro
 * invocation in raw header text), `named` is false and every identifier it
 * has counts as declared: wider, never narrower.
 */
export interface Unit {
  kind: 'function' | 'declaration';
  /** File the unit starts in (line markers of preprocessed text, or the one given). */
  file: string;
  line: number;
  endLine: number;
  names: string[];
  named: boolean;
  /** Every non-keyword identifier in the unit (its own names included), deduplicated. */
  idents: string[];
  isStatic: boolean;
  isInline: boolean;
  /** typedef or extern: declares, defines nothing. */
  declaresOnly: boolean;
  /** __attribute__((used / constructor / destructor)): kept though nothing names it. */
  keptAnyway: boolean;
  /** Has '=' at its top level (a definition with an initializer). */
  initialized: boolean;
}

/** Macro directives seen in preprocessed text (gcc -dU writes one per macro used or tested). */
export interface ScanResult {
  units: Unit[];
  /** Files entered, in order of first appearance (line markers). */
  files: string[];
  macros: string[];
}

const INLINE = new Set(['inline', '__inline', '__inline__']);
const KEPT = new Set(['used', '__used__', 'constructor', '__constructor__', 'destructor', '__destructor__']);
/** Tokens after which an identifier at the top level is a declarator's name. */
const AFTER_DECLARATOR = new Set([';', ',', '=', '[', '(', ')', ':']);
const MEMBER_END = new Set([';', ',', '[', ':', ')']);
const AFTER_DECLARATOR_WORDS = new Set(['__attribute__', '__attribute', 'asm', '__asm__', '__asm']);

/** Tokens, column-wise (a kernel TU has a million): text, line, file index. */
interface Toks {
  /** Identifier, or one of { } ( ) [ ] ; , = * : . (other punctuation is dropped). */
  t: string[];
  line: Int32Array;
  file: Int32Array;
}

const PUNCT = new Uint8Array(128);
for (const ch of '{}()[];,=*:') PUNCT[ch.charCodeAt(0)] = 1;

const isIdent = (t: string | undefined) => t !== undefined && (t.length > 1 || isIdentStart(t.charCodeAt(0)));

const enum C {
  NL = 10,
  HASH = 35,
  DQUOTE = 34,
  SQUOTE = 39,
  BACKSLASH = 92,
  SLASH = 47,
  STAR = 42,
}

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 36;
}
function isIdentPart(c: number): boolean {
  return isIdentStart(c) || (c >= 48 && c <= 57);
}

/**
 * Scan C text. `preprocessed`: gcc -E output (line markers name files; -dU's
 * #define/#undef lines name macros). Otherwise raw source of `file`: comments
 * skipped, directive lines (with continuations) left out.
 */
export function scanUnits(text: string, opts: { preprocessed: boolean; file?: string }): ScanResult {
  const files: string[] = [];
  const fileIds = new Map<string, number>();
  const fileId = (f: string) => {
    let id = fileIds.get(f);
    if (id === undefined) {
      id = files.length;
      files.push(f);
      fileIds.set(f, id);
    }
    return id;
  };
  const macros = new Set<string>();
  const toks: Toks = { t: [], line: new Int32Array(1024), file: new Int32Array(1024) };
  let count = 0;
  const push = (t: string) => {
    if (count === toks.line.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      toks.line = grow(toks.line);
      toks.file = grow(toks.file);
    }
    toks.t[count] = t;
    toks.line[count] = line;
    toks.file[count++] = file;
  };
  let file = fileId(opts.file ?? '');
  let line = 1;
  let atLineStart = true;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === C.NL) {
      line++;
      atLineStart = true;
      i++;
      continue;
    }
    if (c === 32 || c === 9 || c === 13 || c === 12 || c === 11) {
      i++;
      continue;
    }
    if (atLineStart && c === C.HASH) {
      // A directive line (raw: with its continuations; preprocessed: marker, pragma, -dU define).
      let end = i;
      for (;;) {
        const nl = text.indexOf('\n', end);
        const stop = nl < 0 ? n : nl;
        if (!opts.preprocessed && stop > i && text.charCodeAt(stop - 1) === C.BACKSLASH && nl >= 0) {
          end = nl + 1;
          line++;
          continue;
        }
        end = stop;
        break;
      }
      const directive = text.slice(i, end);
      if (opts.preprocessed) {
        const marker = /^#\s*(\d+)\s+"((?:[^"\\]|\\.)*)"/.exec(directive);
        if (marker) {
          file = fileId((marker[2] as string).replace(/\\(.)/g, '$1'));
          line = Number(marker[1]) - 1;
        } else {
          const m = /^#\s*(?:define|undef)\s+([A-Za-z_$][\w$]*)/.exec(directive);
          if (m) macros.add(m[1] as string);
          line--; // -dU and #pragma lines are not lines of the source
        }
      }
      i = end;
      continue;
    }
    atLineStart = false;
    if (c === C.SLASH && text.charCodeAt(i + 1) === C.STAR) {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      for (let k = i; k < stop; k++) if (text.charCodeAt(k) === C.NL) line++;
      i = stop;
      continue;
    }
    if (c === C.SLASH && text.charCodeAt(i + 1) === C.SLASH) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? n : nl;
      continue;
    }
    if (c === C.DQUOTE || c === C.SQUOTE) {
      let k = i + 1;
      while (k < n) {
        const d = text.charCodeAt(k);
        if (d === C.BACKSLASH) {
          if (text.charCodeAt(k + 1) === C.NL) line++;
          k += 2;
          continue;
        }
        if (d === c || d === C.NL) break;
        k++;
      }
      i = k + 1;
      continue;
    }
    if (isIdentStart(c)) {
      let k = i + 1;
      while (k < n && isIdentPart(text.charCodeAt(k))) k++;
      push(text.slice(i, k));
      i = k;
      continue;
    }
    if (c >= 48 && c <= 57) {
      // pp-number: digits, letters, dots, and signs after an exponent letter.
      let k = i + 1;
      while (k < n) {
        const d = text.charCodeAt(k);
        if (isIdentPart(d) || d === 46) k++;
        else if ((d === 43 || d === 45) && /[eEpP]/.test(text[k - 1] as string)) k++;
        else break;
      }
      i = k;
      continue;
    }
    if (c !== 46 && c !== 45 && !PUNCT[c]) {
      i++;
      continue;
    }
    const ch = text[i] as string;
    if (ch === '.' || (ch === '-' && text[i + 1] === '>')) {
      // Member access or designator: the name after it is a member's, not a declaration's.
      if (ch === '.' && text[i + 1] === '.') {
        i += 3; // '...'
        continue;
      }
      push('.');
      i += ch === '.' ? 1 : 2;
      continue;
    }
    if ('{}()[];,=*:'.includes(ch)) {
      // '==', '<=', '+=' ... are not the '=' of an initializer.
      const prev = text[i - 1] as string;
      const next = text[i + 1] as string;
      const compound = ch === '=' && (next === '=' || '=!<>+-*/%&|^'.includes(prev));
      const scope = ch === ':' && (next === ':' || prev === ':');
      const deref = ch === '*' && next === '=';
      if (!compound && !scope && !deref) push(ch);
    }
    i++;
  }
  return { units: splitUnits(toks, files, !opts.preprocessed), files, macros: [...macros] };
}

function splitUnits(toks: Toks, files: string[], raw: boolean): Unit[] {
  const units: Unit[] = [];
  let start = 0;
  let paren = 0;
  let brace = 0;
  let sawEquals = false;
  let functionBody = false;
  const finish = (end: number) => {
    if (end > start) units.push(makeUnit(toks, start, end, functionBody, files, raw));
    start = end;
    sawEquals = false;
    functionBody = false;
  };
  const T = toks.t;
  for (let k = 0; k < T.length; k++) {
    const t = T[k] as string;
    if (isIdent(t)) continue;
    switch (t) {
      case '(':
      case '[':
        paren++;
        break;
      case ')':
      case ']':
        if (paren > 0) paren--;
        break;
      case '=':
        if (paren === 0 && brace === 0) sawEquals = true;
        break;
      case '{':
        if (brace === 0 && paren === 0 && !sawEquals && T[k - 1] === ')' && k - 1 >= start) functionBody = true;
        brace++;
        break;
      case '}':
        if (brace > 0) brace--;
        if (brace === 0 && paren === 0 && functionBody) finish(k + 1);
        break;
      case ';':
        if (brace === 0 && paren === 0) finish(k + 1);
        break;
    }
  }
  finish(T.length);
  return units;
}

function makeUnit(toks: Toks, start: number, end: number, functionBody: boolean, files: string[], raw: boolean): Unit {
  const idents = new Set<string>();
  const names = new Set<string>();
  let isStatic = false;
  let isInline = false;
  let declaresOnly = false;
  let keptAnyway = false;
  let initialized = false;
  let hasEnum = false;
  let brace = 0;
  let paren = 0;
  let bodyOpen = -1;
  /** For each open brace: does it open a struct or union body? */
  const record: boolean[] = [];
  const T = toks.t;
  for (let k = start; k < end; k++) {
    const t = T[k] as string;
    if (!isIdent(t)) {
      if (t === '{') {
        if (brace === 0 && paren === 0 && bodyOpen < 0 && functionBody && T[k - 1] === ')') bodyOpen = k;
        const p1 = T[k - 1];
        const p2 = T[k - 2];
        record.push(p1 === 'struct' || p1 === 'union' || p2 === 'struct' || p2 === 'union');
        brace++;
      } else if (t === '}') {
        brace = Math.max(0, brace - 1);
        record.pop();
      } else if (t === '(' || t === '[') paren++;
      else if (t === ')' || t === ']') paren = Math.max(0, paren - 1);
      else if (t === '=' && brace === 0 && paren === 0) initialized = true;
      continue;
    }
    if (KEPT.has(t)) keptAnyway = true;
    if (KEYWORDS.has(t)) {
      if (brace === 0) {
        if (t === 'static') isStatic = true;
        else if (INLINE.has(t)) isInline = true;
        else if (t === 'typedef' || t === 'extern') declaresOnly = true;
      }
      if (t === 'enum') hasEnum = true;
      continue;
    }
    if (T[k - 1] === '.') continue; // a member
    // A member's own name in a struct body (`int count;`, `void (*fn)(...)`) refers to nothing.
    if (record.at(-1) === true && MEMBER_END.has(T[k + 1] ?? ';')) continue;
    idents.add(t);
  }
  let named = true;
  if (bodyOpen >= 0) {
    // A function definition: its name is the identifier before the parameter list.
    let depth = 0;
    let k = bodyOpen - 1;
    for (; k >= start; k--) {
      const t = T[k] as string;
      if (t === ')') depth++;
      else if (t === '(' && --depth === 0) break;
    }
    const before = T[k - 1];
    if (k > start && isIdent(before) && !KEYWORDS.has(before as string)) names.add(before as string);
    else named = false;
  } else {
    // Raw text: a unit that is one macro invocation (`DEFINE_MUTEX(x);`, `TRACE_EVENT(...)`)
    // declares what the macro makes of its arguments: every identifier counts.
    let invocation = false;
    if (raw && isIdent(T[start]) && T[start + 1] === '(') {
      let depth = 0;
      let k = start + 1;
      for (; k < end; k++) {
        if (T[k] === '(') depth++;
        else if (T[k] === ')' && --depth === 0) break;
      }
      invocation = k + 1 >= end || T[k + 1] === ';' || T[k + 1] === '(';
    }
    brace = 0;
    paren = 0;
    for (let k = start; k < end; k++) {
      const t = T[k] as string;
      if (!isIdent(t)) {
        if (t === '{') brace++;
        else if (t === '}') brace = Math.max(0, brace - 1);
        else if (t === '(' || t === '[') paren++;
        else if (t === ')' || t === ']') paren = Math.max(0, paren - 1);
        continue;
      }
      if (KEYWORDS.has(t)) continue;
      const prev = k > start ? T[k - 1] : undefined;
      const next = k + 1 < end ? T[k + 1] : undefined;
      if (brace === 0) {
        // `struct x {` and `struct x;` declare the tag; `struct x *p` only refers to it.
        const tag = (prev === 'struct' || prev === 'union' || prev === 'enum') && (next === '{' || next === ';');
        const declarator =
          paren === 0 && (next === undefined || AFTER_DECLARATOR.has(next) || AFTER_DECLARATOR_WORDS.has(next));
        // (*name): a pointer declarator inside parentheses.
        // (Inside a parameter list, one level deeper, it is a parameter's name.)
        const pointer = prev === '*' && T[k - 2] === '(' && paren === 1;
        if (invocation || tag || declarator || pointer) names.add(t);
      } else if (hasEnum && (prev === '{' || prev === ',') && (next === '=' || next === ',' || next === '}')) {
        names.add(t); // an enumerator
      }
    }
  }

  if (!named) for (const x of idents) names.add(x);
  return {
    kind: bodyOpen >= 0 ? 'function' : 'declaration',
    file: files[toks.file[start] as number] as string,
    line: toks.line[start] as number,
    endLine: toks.line[end - 1] as number,
    names: [...names],
    named,
    idents: [...idents],
    isStatic,
    isInline,
    declaresOnly,
    keptAnyway,
    initialized,
  };
}

/**
 * Identifiers the code of a preprocessed TU can depend on: everything
 * mentioned by the units GCC may emit (the roots: units of the .c files,
 * non-static definitions, initialized data, kept ones) and, transitively, by
 * the units that declare what those mention (static inline functions,
 * types, declarations of headers). An unused static inline function of a
 * header adds nothing.
 */
export function reachableIdents(units: Unit[], isHeader: (file: string) => boolean): Set<string> {
  const declaring = new Map<string, number[]>();
  units.forEach((u, i) => {
    for (const name of u.names) {
      const list = declaring.get(name);
      if (list) list.push(i);
      else declaring.set(name, [i]);
    }
  });
  const reached = new Uint8Array(units.length);
  const stack: number[] = [];
  units.forEach((u, i) => {
    if (isRoot(u, isHeader)) {
      reached[i] = 1;
      stack.push(i);
    }
  });
  const used = new Set<string>();
  while (stack.length) {
    const u = units[stack.pop() as number] as Unit;
    for (const id of u.idents) {
      if (used.has(id)) continue;
      used.add(id);
      for (const j of declaring.get(id) ?? []) {
        if (reached[j]) continue;
        reached[j] = 1;
        stack.push(j);
      }
    }
  }
  return used;
}

function isRoot(u: Unit, isHeader: (file: string) => boolean): boolean {
  return !isHeader(u.file) || emittedByItself(u);
}

/** GCC emits this unit of a header though nothing names it: a non-static definition, initialized data, `__used`. */
export function emittedByItself(u: Unit): boolean {
  if (u.keptAnyway) return true;
  if (u.kind === 'function') return !u.isStatic && !u.isInline;
  return !u.declaresOnly && !u.isStatic && u.initialized;
}
