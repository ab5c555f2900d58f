import type { LineHunk } from '../analyze/lines.js';
import { scanUnits, type Unit } from './units.js';

/**
 * What a change to a header touches, by name: the macros whose definitions
 * changed, the functions and declarations whose text changed (both sides of
 * the diff), everything a changed #if governs. A translation unit whose code
 * uses none of these names cannot change. When the change could reach code
 * that names nothing it touched (an #include line, a #pragma), `names` is
 * null: every includer is affected.
 */
export interface HeaderChange {
  header: string;
  names: string[] | null;
  /** Why `names` is null. */
  unbounded?: { line: number; why: string };
  /** What changed, for the report (line in the patched header, or the original's for removals). */
  touched: { name: string; line: number; what: 'macro' | 'function' | 'declaration' | 'conditional' }[];
  /** Only comments and blank lines changed. */
  cosmetic: boolean;
}

export interface Directive {
  start: number;
  end: number;
  kind: string;
  /** The text after the directive's name, continuations joined. */
  body: string;
  /** Macro name of #define/#undef; identifiers tested by #if/#ifdef/#elif. */
  idents: string[];
}

/**
 * A header's text with its layout squeezed out: comments blanked, whitespace runs
 * one space, and none at all beside `( ) [ ] { } , ;` (which never join with a
 * neighbour), outside string literals. A directive stays a line of its own, with
 * its spaces: `#define F (x)` and `#define F(x)` are different macros.
 */
export function squeezeLayout(text: string): string {
  const literalOrSpace = /("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|\s+/g;
  const collapse = (t: string) => t.replace(literalOrSpace, (m, literal?: string) => literal ?? ' ').trim();
  const out: string[] = [];
  let code: string[] = [];
  const flush = () => {
    if (!code.length) return;
    const joined = collapse(code.join(' '));
    out.push(
      joined.replace(
        /("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')| ?([()[\]{},;]) ?/g,
        (m, literal?: string, p?: string) => literal ?? p ?? m,
      ),
    );
    code = [];
  };
  for (const line of blankComments(text).replace(/\\\n/g, ' ').split('\n')) {
    if (/^\s*#/.test(line)) {
      flush();
      out.push(collapse(line));
    } else code.push(line);
  }
  flush();
  return out.filter(Boolean).join('\n');
}

/** Text with comments blanked (newlines kept), so directives and code can be told by line. */
export function blankComments(text: string): string {
  let out = '';
  let i = 0;
  let from = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '"' || c === "'") {
      let k = i + 1;
      while (k < n && text[k] !== c && text[k] !== '\n') k += text[k] === '\\' ? 2 : 1;
      i = k + 1;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      out += text.slice(from, i) + text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = from = stop;
    } else if (c === '/' && text[i + 1] === '/') {
      const nl = text.indexOf('\n', i);
      const stop = nl < 0 ? n : nl;
      out += text.slice(from, i) + ' '.repeat(stop - i);
      i = from = stop;
    } else i++;
  }
  return out + text.slice(from);
}

export function directivesOf(lines: string[]): Directive[] {
  const out: Directive[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*#\s*(\w*)(.*)$/.exec(lines[i] as string);
    if (!m) continue;
    const start = i + 1;
    let body = m[2] as string;
    while (/\\\s*$/.test(lines[i] as string) && i + 1 < lines.length) body += ` ${lines[++i]}`;
    const kind = m[1] as string;
    let idents: string[] = [];
    if (kind === 'define' || kind === 'undef') idents = [/^\s*([A-Za-z_]\w*)/.exec(body)?.[1] ?? ''].filter(Boolean);
    else if (/^(if|ifdef|ifndef|elif|elifdef|elifndef)$/.test(kind))
      idents = [...body.matchAll(/[A-Za-z_]\w*/g)].map((x) => x[0]).filter((x) => x !== 'defined');
    out.push({
      start,
      end: i + 1,
      kind,
      idents,
      body: body.replace(/^\s*[A-Za-z_]\w*/, kind === 'define' ? '' : '$&'),
    });
  }
  return out;
}

interface Side {
  lines: string[];
  directives: Directive[];
  units: Unit[];
  /** Conditional groups: #if line .. #endif line, with every directive line of the group. */
  groups: { start: number; end: number; lines: Set<number> }[];
}

function side(text: string, header: string): Side {
  const blanked = blankComments(text);
  const lines = blanked.split('\n');
  const dirs = directivesOf(lines);
  const units = scanUnits(text, { preprocessed: false, file: header }).units;
  const groups: Side['groups'] = [];
  const stack: { start: number; lines: Set<number> }[] = [];
  for (const d of dirs) {
    if (/^if/.test(d.kind)) stack.push({ start: d.start, lines: new Set([d.start]) });
    else if (/^(elif|else)/.test(d.kind)) stack.at(-1)?.lines.add(d.start);
    else if (d.kind === 'endif') {
      const g = stack.pop();
      if (g) groups.push({ start: g.start, end: d.start, lines: g.lines.add(d.start) });
    }
  }
  return { lines, directives: dirs, units, groups };
}

export function headerChange(header: string, original: string, patched: string, hunks: LineHunk[]): HeaderChange {
  // The same tokens once comments and spacing are gone: nothing a compiler sees changed.
  if (squeezeLayout(original) === squeezeLayout(patched)) return { header, names: [], touched: [], cosmetic: true };
  const a = side(original, header);
  const b = side(patched, header);
  const names = new Set<string>();
  const touched: HeaderChange['touched'] = [];
  let unbounded: HeaderChange['unbounded'];
  let cosmetic = true;
  const touch = (s: Side, line: number, reportLine: number) => {
    const text = s.lines[line - 1] ?? '';
    const dir = s.directives.find((d) => d.start <= line && line <= d.end);
    const inUnits = s.units.filter((u) => u.line <= line && line <= u.endLine);
    if (dir) cosmetic = false;
    else if (text.trim() === '') return;
    cosmetic = false;
    if (dir?.kind === 'define' || dir?.kind === 'undef') {
      for (const m of dir.idents) {
        names.add(m);
        touched.push({ name: m, line: reportLine, what: 'macro' });
      }
      return;
    }
    if (inUnits.length && (!dir || /^(if|elif|else|endif)/.test(dir.kind))) {
      // A line of a function or declaration (an #ifdef inside a function body included).
      for (const u of inUnits) {
        for (const x of u.names) names.add(x);
        touched.push({
          name: u.names[0] ?? '?',
          line: reportLine,
          what: u.kind === 'function' ? 'function' : 'declaration',
        });
      }
      if (dir) for (const x of dir.idents) names.add(x);
      return;
    }
    if (dir && /^(if|elif|else|endif)/.test(dir.kind)) {
      // A top-level conditional: everything it governs may appear or vanish.
      const g = s.groups.filter((x) => x.lines.has(dir.start)).sort((x, y) => x.end - x.start - (y.end - y.start))[0];
      if (!g) {
        unbounded ??= { line: reportLine, why: `an unmatched #${dir.kind} changed` };
        return;
      }
      const inside = s.directives.filter((d) => d.start >= g.start && d.end <= g.end);
      const include = inside.find((d) => d.kind === 'include' || d.kind === 'include_next');
      if (include) {
        unbounded ??= { line: reportLine, why: `a changed #${dir.kind} governs an #include (line ${include.start})` };
        return;
      }
      for (const d of inside) for (const x of d.idents) names.add(x);
      for (const u of s.units) if (u.line <= g.end && u.endLine >= g.start) for (const x of u.names) names.add(x);
      touched.push({ name: dir.idents[0] ?? `#${dir.kind}`, line: reportLine, what: 'conditional' });
      return;
    }
    if (dir?.kind === 'include' || dir?.kind === 'include_next') {
      unbounded ??= { line: reportLine, why: 'an #include line changed' };
      return;
    }
    if (dir) {
      unbounded ??= { line: reportLine, why: `a #${dir.kind || '(null directive)'} line changed` };
      return;
    }
    unbounded ??= { line: reportLine, why: 'a changed line is in no declaration klpgen can name' };
  };
  for (const h of hunks) {
    for (let l = h.oldStart; l < h.oldStart + h.oldLines; l++) touch(a, l, Math.max(1, h.newStart));
    for (let l = h.newStart; l < h.newStart + h.newLines; l++) touch(b, l, l);
  }
  return {
    header,
    names: unbounded ? null : [...names].sort(),
    ...(unbounded ? { unbounded } : {}),
    touched,
    cosmetic,
  };
}
