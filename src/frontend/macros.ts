/**
 * The macros a .c file defines itself. gcc -E expands them away, so they are
 * read from the original text: logical lines (backslash-newline joined),
 * outside comments, that start with `#define`.
 */
export interface MacroDefinition {
  name: string;
  /** Parameter list as written, e.g. `(x, y)`; undefined for object-like macros. */
  params: string | undefined;
  body: string;
  line: number;
  endLine: number;
  /** Defined inside #if/#ifdef: may be inactive in this configuration. */
  conditional: boolean;
}

export function scanMacros(text: string): MacroDefinition[] {
  const out: MacroDefinition[] = [];
  const lines = logicalLines(text);
  let depth = 0;
  for (const l of lines) {
    if (!isDirective(l.text)) continue;
    const m = /^\s*#\s*(\w+)\s*(.*)$/s.exec(l.text);
    if (!m) continue;
    const directive = m[1] as string;
    const rest = m[2] as string;
    if (directive === 'if' || directive === 'ifdef' || directive === 'ifndef') depth++;
    else if (directive === 'endif') depth = Math.max(0, depth - 1);
    else if (directive === 'define') {
      const d = /^([A-Za-z_]\w*)(\([^)]*\))?\s*(.*)$/s.exec(rest);
      if (!d) continue;
      out.push({
        name: d[1] as string,
        params: d[2],
        body: (d[3] ?? '').trim(),
        line: l.line,
        endLine: l.endLine,
        conditional: depth > 0,
      });
    }
  }
  return out;
}

/** Does the line start with `#` (after white space)? Most do not: no need for the regular expression. */
function isDirective(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 35 || c > 127) return true; // past ASCII: \s has more, let the expression decide
    if (c !== 32 && c !== 9 && c !== 10 && c !== 11 && c !== 12 && c !== 13) return false;
  }
  return false;
}

interface LogicalLine {
  text: string;
  line: number;
  endLine: number;
}

/** Lines with comments blanked and continuations joined; strings kept. */
function logicalLines(text: string): LogicalLine[] {
  const out: LogicalLine[] = [];
  // Text is copied in runs: `seg` is where the run not yet in `cur` starts.
  let cur = '';
  let seg = 0;
  let startLine = 1;
  let line = 1;
  let inBlock = false;
  let quote = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (inBlock) {
      if (c === 42 && text.charCodeAt(i + 1) === 47) {
        inBlock = false;
        i++;
        cur += ' ';
        seg = i + 1;
      } else if (c === 10) line++;
      continue;
    }
    if (quote) {
      if (c === 92) {
        if (text.charCodeAt(i + 1) === 10) line++;
        i++;
        continue;
      }
      if (c === quote || c === 10) quote = 0;
      if (c === 10) {
        cur += text.slice(seg, i + 1);
        seg = i + 1;
        out.push({ text: cur, line: startLine, endLine: line });
        cur = '';
        line++;
        startLine = line;
      }
      continue;
    }
    if (c === 47 && text.charCodeAt(i + 1) === 42) {
      cur += text.slice(seg, i);
      inBlock = true;
      i++;
      continue;
    }
    if (c === 47 && text.charCodeAt(i + 1) === 47) {
      cur += text.slice(seg, i);
      while (i + 1 < n && text.charCodeAt(i + 1) !== 10) i++;
      seg = i + 1;
      continue;
    }
    if (c === 92 && text.charCodeAt(i + 1) === 10) {
      cur += `${text.slice(seg, i)} `;
      i++;
      line++;
      seg = i + 1;
      continue;
    }
    if (c === 10) {
      cur += text.slice(seg, i);
      seg = i + 1;
      out.push({ text: cur, line: startLine, endLine: line });
      cur = '';
      line++;
      startLine = line;
      continue;
    }
    if (c === 34 || c === 39) quote = c;
  }
  if (!inBlock) cur += text.slice(seg, n);
  if (cur) out.push({ text: cur, line: startLine, endLine: line });
  return out;
}

/** Identifiers in a piece of C text, ignoring strings, character constants and comments. */
export function identifiersIn(text: string): Set<string> {
  const ids = new Set<string>();
  const stripped = text
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/\/\/[^\n]*/g, ' ')
    .replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g, ' ');
  for (const m of stripped.matchAll(/(?<!\w)[A-Za-z_]\w*/g)) ids.add(m[0]);
  return ids;
}
