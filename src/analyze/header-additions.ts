import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TuModel } from '../frontend/model.js';
import { run } from '../util/exec.js';
import type { LineHunk } from './lines.js';

/**
 * A header included too widely to analyse through each includer can still be
 * let through when its change is purely additive: it only adds, at top level,
 * declarations and macros of names that occur nowhere in the original tree.
 * No original translation unit can name what was added, so none of their code
 * can change (an added declaration of an existing function could add an
 * attribute such as `__pure`, and an added macro could flip an `#ifdef`: both
 * are refused). The patch's own TUs are analysed with the new header as usual.
 */
export interface HeaderAdditions {
  header: string;
  /** Added line ranges, in the patched header's numbering. */
  ranges: [number, number][];
  /** Names the added lines declare: functions, variables, typedefs, tags, enumerators. */
  declared: string[];
  macros: string[];
}

export type AdditionsCheck = { ok: true; additions: HeaderAdditions } | { ok: false; line: number; why: string };

interface LineState {
  comment: boolean;
  depth: number;
  /** The line ends a directive with a backslash: the next line continues it. */
  continued: boolean;
}

const TOP: LineState = { comment: false, depth: 0, continued: false };
const atTop = (s: LineState) => !s.comment && s.depth === 0 && !s.continued;

/**
 * At `line[i]`: the index just past the comment or literal that starts there (or, when
 * `st.comment`, the block comment that continues there), or `i` when none does. `//` runs to
 * the line's end; `st.comment` carries a block comment over to the next line.
 */
function skipInert(line: string, i: number, st: { comment: boolean }): number {
  if (st.comment) {
    const end = line.indexOf('*/', i);
    if (end < 0) return line.length;
    st.comment = false;
    return end + 2;
  }
  const c = line[i];
  if (c === '/' && line[i + 1] === '*') {
    st.comment = true;
    return i + 2;
  }
  if (c === '/' && line[i + 1] === '/') return line.length;
  if (c === '"' || c === "'") {
    let j = i + 1;
    while (j < line.length && line[j] !== c) j += line[j] === '\\' ? 2 : 1;
    return j + 1;
  }
  return i;
}

/** Comment, bracket-depth and directive-continuation state after each line (index 0: before line 1). */
export function lineStates(lines: string[], start: LineState = TOP): LineState[] {
  const out: LineState[] = [start];
  let { comment, depth, continued } = start;
  for (const line of lines) {
    const directive = continued || (!comment && /^\s*#/.test(line));
    let i = 0;
    const st = { comment };
    while (i < line.length) {
      const c = line[i];
      const next = skipInert(line, i, st);
      if (next !== i) {
        i = next;
        continue;
      }
      // A directive's body (a macro's replacement list) does not open C scopes.
      if (!directive) {
        if (c === '{' || c === '(' || c === '[') depth++;
        else if (c === '}' || c === ')' || c === ']') depth--;
      }
      i++;
    }
    comment = st.comment;
    continued = directive && !comment && /\\\s*$/.test(line);
    out.push({ comment, depth, continued });
  }
  return out;
}

const KEYWORDS = new Set(
  (
    'auto break case char const continue default do double else enum extern float for goto if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while _Bool _Static_assert ' +
    '__inline __inline__ __signed__ __const __const__ __volatile__ __restrict __extension__ __attribute__ __attribute asm __asm__ typeof __typeof__ _Alignas bool'
  ).split(' '),
);

interface Token {
  text: string;
  line: number;
}

/** Identifiers and punctuation of C text, comments and literals dropped; `lineBase` numbers the first line. */
function tokenize(lines: string[], lineBase: number): Token[] {
  const out: Token[] = [];
  const st = { comment: false };
  lines.forEach((line, k) => {
    let i = 0;
    while (i < line.length) {
      const c = line[i] as string;
      const inComment = st.comment;
      const next = skipInert(line, i, st);
      if (next !== i) {
        if (!inComment && (c === '"' || c === "'")) out.push({ text: c === '"' ? '""' : "''", line: lineBase + k });
        i = next;
        continue;
      }
      const m = /^[A-Za-z_]\w*|^\d\w*/.exec(line.slice(i));
      if (m) {
        out.push({ text: m[0], line: lineBase + k });
        i += m[0].length;
        continue;
      }
      if (!/\s/.test(c)) out.push({ text: c, line: lineBase + k });
      i++;
    }
  });
  return out;
}

const isIdent = (t: string | undefined) => t !== undefined && /^[A-Za-z_]\w*$/.test(t);

/** The names one top-level declaration declares; a reason when its shape is not one we can vouch for. */
function declaredBy(decl: Token[]): { names: string[]; attributeLike: string[] } | { why: string; line: number } {
  const line = decl[0]?.line ?? 0;
  const texts = decl.map((t) => t.text);
  if (texts[0] === '_Static_assert' || texts[0] === 'static_assert') return { names: [], attributeLike: [] };
  const names: string[] = [];
  const attributeLike: string[] = [];
  // struct/union/enum TAG { ... }: the tag, and an enum's constants.
  const tagAt = texts.findIndex((t) => t === 'struct' || t === 'union' || t === 'enum');
  let rest = 0;
  if (tagAt >= 0) {
    const body = texts[tagAt + 1] === '{' ? tagAt + 1 : texts[tagAt + 2] === '{' ? tagAt + 2 : -1;
    if (body >= 0) {
      if (body === tagAt + 2) names.push(texts[tagAt + 1] as string);
      let depth = 0;
      let end = body;
      for (; end < texts.length; end++) {
        if (texts[end] === '{' || texts[end] === '(' || texts[end] === '[') depth++;
        else if (texts[end] === '}' || texts[end] === ')' || texts[end] === ']') depth--;
        if (depth === 0) break;
        if (
          texts[tagAt] === 'enum' &&
          depth === 1 &&
          isIdent(texts[end + 1]) &&
          (texts[end] === '{' || texts[end] === ',')
        )
          names.push(texts[end + 1] as string);
      }
      rest = end + 1;
      // `struct x { ... };` declares the tag only.
      if (texts.slice(rest).every((t) => t === ';')) return { names, attributeLike };
    }
  }
  // The declarator: the first identifier before a top-level `(` that is not an attribute.
  let depth = 0;
  let declarator: string | undefined;
  let hasParen = false;
  for (let i = rest; i < texts.length; i++) {
    const t = texts[i] as string;
    if (t === '(' && depth === 0) {
      const prev = texts[i - 1];
      if (isIdent(prev) && !KEYWORDS.has(prev as string)) {
        if ((prev as string).startsWith('__') && declarator === undefined) attributeLike.push(prev as string);
        else if (declarator === undefined) {
          declarator = prev;
          hasParen = true;
        }
      }
    }
    if (t === '{' || t === '(' || t === '[') depth++;
    else if (t === '}' || t === ')' || t === ']') depth--;
  }
  // `__foo(` taken for an attribute macro may be the declared function itself (a new `__name`).
  if (declarator === undefined && attributeLike.length) declarator = attributeLike.pop();
  if (declarator === undefined) {
    // A variable or typedef: the last top-level identifier before = [ ; , :
    depth = 0;
    for (let i = rest; i < texts.length; i++) {
      const t = texts[i] as string;
      if (depth === 0 && (t === '=' || t === '[' || t === ';' || t === ',' || t === ':')) {
        const prev = texts[i - 1];
        if (isIdent(prev) && !KEYWORDS.has(prev as string)) declarator = prev;
        break;
      }
      if (t === '{' || t === '(' || t === '[') depth++;
      else if (t === '}' || t === ')' || t === ']') depth--;
    }
    if (declarator === undefined) return { why: 'a declaration whose declared name could not be told', line };
    // `struct tag;` declares nothing that code could change by.
    if (tagAt === 0 && texts.length === 3 && texts[2] === ';') return { names: [], attributeLike };
    if (!texts.includes('extern') && !texts.includes('typedef') && !texts.includes('static')) {
      return { why: `${declarator} is defined, not declared: every includer would get a copy`, line };
    }
  } else if (hasParen && texts.at(-1) === '}' && !texts.includes('static')) {
    return { why: `${declarator} is defined without static: every includer would get a copy`, line };
  }
  names.push(declarator);
  return { names, attributeLike };
}

/**
 * Read the added lines of a header change: purely additive and at top level,
 * or why not. Names are checked for novelty separately (`occurringNames`).
 */
export function readAdditions(header: string, original: string, patched: string, hunks: LineHunk[]): AdditionsCheck {
  const origLines = original.split('\n');
  const patchedLines = patched.split('\n');
  const states = lineStates(origLines);
  const declared: string[] = [];
  const macros: string[] = [];
  const ranges: [number, number][] = [];
  for (const h of hunks) {
    if (h.oldLines > 0) return { ok: false, line: h.newStart, why: 'it removes or rewrites lines' };
    if (h.newLines === 0) continue;
    const block = patchedLines.slice(h.newStart - 1, h.newStart - 1 + h.newLines);
    const first = h.newStart;
    ranges.push([first, first + h.newLines - 1]);
    const before = states[h.oldStart] ?? TOP;
    if (before.comment && !block.some((l) => l.includes('*/'))) continue; // words added inside a comment
    if (!atTop(before))
      return { ok: false, line: first, why: 'the lines are added inside an existing definition, macro or comment' };
    const after = lineStates(block).at(-1) as LineState;
    if (!atTop(after)) return { ok: false, line: first, why: 'the added lines do not end at top level' };
    // Directives: only new macros, and conditionals closed within the block.
    let open = 0;
    const code: string[] = [];
    for (let k = 0; k < block.length; k++) {
      const lineNo = first + k;
      let text = block[k] as string;
      const isDirective = /^\s*#/.test(text) && !lineStates(block.slice(0, k)).at(-1)?.comment;
      if (!isDirective) {
        code.push(text);
        continue;
      }
      while (/\\\s*$/.test(text) && k + 1 < block.length) {
        code.push('');
        text = `${text.replace(/\\\s*$/, '')} ${block[++k]}`;
      }
      code.push('');
      const m = /^\s*#\s*(\w+)\s*(\w*)/.exec(text);
      const directive = m?.[1] ?? '';
      if (directive === 'define') {
        if (!m?.[2]) return { ok: false, line: lineNo, why: 'a #define without a name' };
        macros.push(m[2]);
      } else if (directive === 'if' || directive === 'ifdef' || directive === 'ifndef') open++;
      else if (directive === 'elif' || directive === 'else') {
        if (open === 0) return { ok: false, line: lineNo, why: `#${directive} added to an existing conditional` };
      } else if (directive === 'endif') {
        if (open-- === 0) return { ok: false, line: lineNo, why: '#endif closing an existing conditional' };
      } else {
        return { ok: false, line: lineNo, why: `#${directive || '?'} added: it can change every includer` };
      }
    }
    if (open !== 0) return { ok: false, line: first, why: 'an added #if is not closed in the added lines' };
    // Code: split into top-level declarations.
    const tokens = tokenize(code, first);
    let depth = 0;
    let decl: Token[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i] as Token;
      decl.push(t);
      if (t.text === '{' || t.text === '(' || t.text === '[') depth++;
      else if (t.text === '}' || t.text === ')' || t.text === ']') depth--;
      const bodyEnd = depth === 0 && t.text === '}' && isFunctionBody(decl) && tokens[i + 1]?.text !== ';';
      if ((depth === 0 && t.text === ';') || bodyEnd) {
        const d = declaredBy(decl);
        if ('why' in d) return { ok: false, line: d.line, why: d.why };
        declared.push(...d.names);
        decl = [];
      }
    }
    if (decl.length)
      return {
        ok: false,
        line: decl[0]?.line ?? first,
        why: 'the added code does not end with a complete declaration',
      };
  }
  return {
    ok: true,
    additions: { header, ranges, declared: [...new Set(declared)].sort(), macros: [...new Set(macros)].sort() },
  };
}

/** The first `{` at depth 0 opens a function body. */
function isFunctionBody(decl: Token[]): boolean {
  let depth = 0;
  for (let i = 0; i < decl.length; i++) {
    const t = decl[i]?.text;
    // `f(...) {` and `f(...) __attribute__((x)) {`, not `struct tag {` or `= {`.
    if (t === '{' && depth === 0) return decl[i - 1]?.text === ')';
    if (t === '{' || t === '(' || t === '[') depth++;
    else if (t === '}' || t === ')' || t === ']') depth--;
  }
  return false;
}

/** Which of `names` occur as a word in the tree's C sources, headers and assembly, with one file each. */
export async function occurringNames(source: string, names: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (!names.length) return found;
  const dir = await mkdtemp(join(tmpdir(), 'klpgen-names-'));
  try {
    await writeFile(join(dir, 'names'), `${names.join('\n')}\n`);
    const r = await run(
      'grep',
      ['-rowF', '-f', join(dir, 'names'), '--include=*.c', '--include=*.h', '--include=*.S', '.'],
      { cwd: source },
    );
    if (r.code > 1) throw new Error(`grep failed: ${r.stderr.trim()}`);
    for (const line of r.stdout.split('\n')) {
      const colon = line.lastIndexOf(':');
      if (colon < 0) continue;
      const name = line.slice(colon + 1);
      if (!found.has(name)) found.set(name, line.slice(0, colon).replace(/^\.\//, ''));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return found;
}

/**
 * Cross-check against the compiler's view: every entity a TU's model places
 * on the added lines must be one the text reading found (a declaration the
 * reading mis-split would otherwise slip through).
 */
export function checkAgainstModel(a: HeaderAdditions, model: TuModel): { line: number; why: string } | null {
  const inAdded = (l: number) => a.ranges.some(([x, y]) => l >= x && l <= y);
  const known = new Set([...a.declared, ...a.macros]);
  for (const e of model.entities) {
    if (e.span.file !== a.header) continue;
    const starts = inAdded(e.span.line);
    const overlaps = a.ranges.some(([x, y]) => e.span.line <= y && e.span.endLine >= x);
    if (!overlaps) continue;
    if (!starts) return { line: e.span.line, why: `the added lines are inside ${e.kind} ${e.name}` };
    if (e.name && !known.has(e.name))
      return { line: e.span.line, why: `the added lines declare ${e.name}, which the reading of the text missed` };
    if (e.kind === 'variable' && e.definition && e.linkage === 'external')
      return { line: e.span.line, why: `${e.name} is defined in the header: every includer would get a copy` };
  }
  return null;
}
