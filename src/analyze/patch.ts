/**
 * Reading and applying unified diffs (`git diff`, `git format-patch`,
 * `diff -u`/`diff -urN`), entirely in memory: klpgen must never modify the
 * kernel tree it analyses, so applying a fix means computing the patched
 * file contents, not writing them.
 *
 * Application follows GNU patch without fuzz (context and removed lines must
 * match exactly; a hunk may move by an offset, as when the target tree has
 * lines added above it), because a live patch built from a fuzzily applied
 * fix could silently patch the wrong code. Anything doubtful is an error.
 */
import { KlpgenError } from '../util/errors.js';

/** One line of a hunk body. */
export interface HunkLine {
  kind: ' ' | '-' | '+';
  /** The line without its leading kind character and without the newline. */
  text: string;
  /**
   * Set when the patch says `\ No newline at end of file` after this line:
   * it is then the last line of the old side (' ', '-') and/or the new side
   * (' ', '+') and has no trailing newline there.
   */
  noNewline?: boolean;
}

export interface Hunk {
  /** As in the `@@ -oldStart,oldLines +newStart,newLines @@` header (1-based; 0 with 0 lines). */
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
  /** The text after the second `@@` (diff's guess at the enclosing function), without the separating space. */
  header: string;
  lines: HunkLine[];
  /** 1-based line of the `@@` in the patch file, so errors can point at it. */
  patchLine: number;
}

export interface FilePatch {
  /** Path in the tree before the change (one leading component stripped, like `patch -p1`); null for a new file. */
  oldPath: string | null;
  /** Path after the change; null for a deleted file. Differs from oldPath for a rename. */
  newPath: string | null;
  hunks: Hunk[];
  isNew: boolean;
  isDeleted: boolean;
}

// `@@ -l[,s] +l[,s] @@[ section]`; counts default to 1 when omitted.
const HUNK_RE = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$/;
const BINARY_RE = /^Binary files .* differ$/;

// The extended header lines git may put between `diff --git` and `---`,
// with their values spelled out, so prose after a `diff --git` mentioned in
// a commit message is not taken for a header.
const GIT_EXT: [string, RegExp][] = [
  ['old mode', /^[0-7]{6}$/],
  ['new mode', /^[0-7]{6}$/],
  ['deleted file mode', /^[0-7]{6}$/],
  ['new file mode', /^[0-7]{6}$/],
  ['copy from', /./],
  ['copy to', /./],
  ['rename from', /./],
  ['rename to', /./],
  ['rename old', /./],
  ['rename new', /./],
  ['similarity index', /^\d+%$/],
  ['dissimilarity index', /^\d+%$/],
  ['index', /^[0-9a-f]+\.\.[0-9a-f]+( [0-7]{6})?$/],
];

function gitExtHeader(line: string): [string, string] | null {
  for (const [key, value] of GIT_EXT) {
    if (line.startsWith(key + ' ') && value.test(line.slice(key.length + 1))) return [key, line.slice(key.length + 1)];
  }
  return null;
}

/**
 * Parse a patch file into per-file changes. `name` is only used in error
 * messages (`name:line: ...`). Mail headers, a commit message and a diffstat
 * before the first file, and trailing text such as a `-- ` signature, are
 * skipped; text that looks like a diff but is corrupt is an error rather
 * than being skipped, so no change of a fix is silently lost.
 */
export function parsePatch(text: string, name: string): FilePatch[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const fail = (idx: number, msg: string): never => {
    throw new KlpgenError(`${name}:${idx + 1}: ${msg}`);
  };
  const out: FilePatch[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.startsWith('diff --git ')) {
      const r = parseGitSection(lines, i, fail);
      if (r) {
        out.push(r.fp);
        i = r.next;
      } else {
        i++; // `diff --git` mentioned in prose (e.g. a commit message)
      }
      continue;
    }
    if (line.startsWith('--- ') && lines[i + 1]?.startsWith('+++ ') && lines[i + 2]?.startsWith('@@ -')) {
      const r = parsePlainSection(lines, i, fail);
      out.push(r.fp);
      i = r.next;
      continue;
    }
    if (BINARY_RE.test(line) || line === 'GIT binary patch') fail(i, 'binary patches are not supported');
    // Before the first file this may be a quoted hunk in the commit
    // message; after it, an orphan hunk means lines were lost or miscounted.
    if (out.length > 0 && HUNK_RE.test(line)) fail(i, 'hunk without a file header (corrupt patch?)');
    i++;
  }
  if (out.length === 0) throw new KlpgenError(`${name}: no file changes found (not a unified diff?)`);
  return out;
}

type Fail = (idx: number, msg: string) => never;

interface HeaderName {
  raw: string;
  timestamp: string;
}

/** The file name of a `---`/`+++` line (after the marker): up to a tab, or C-quoted as git does for odd names. */
function headerName(s: string, idx: number, fail: Fail): HeaderName {
  if (s.startsWith('"')) {
    const q = unquote(s, idx, fail);
    return { raw: q.value, timestamp: q.rest.replace(/^\s+/, '') };
  }
  const tab = s.indexOf('\t');
  return tab >= 0 ? { raw: s.slice(0, tab), timestamp: s.slice(tab + 1) } : { raw: s, timestamp: '' };
}

/** Git's C-style quoting of file names (`"a/tab\there"`, octal UTF-8 bytes). */
function unquote(s: string, idx: number, fail: Fail): { value: string; rest: string } {
  const bytes: number[] = [];
  const esc: Record<string, number> = { a: 7, b: 8, t: 9, n: 10, v: 11, f: 12, r: 13, '"': 34, '\\': 92 };
  let k = 1;
  while (k < s.length) {
    const c = s[k]!;
    if (c === '"') return { value: new TextDecoder().decode(new Uint8Array(bytes)), rest: s.slice(k + 1) };
    if (c === '\\') {
      const n = s[k + 1] ?? '';
      if (/^[0-7]{3}$/.test(s.slice(k + 1, k + 4))) {
        bytes.push(parseInt(s.slice(k + 1, k + 4), 8));
        k += 4;
      } else if (n in esc) {
        bytes.push(esc[n]!);
        k += 2;
      } else {
        fail(idx, `bad escape in quoted file name ${s}`);
      }
    } else {
      bytes.push(...new TextEncoder().encode(c));
      k++;
    }
  }
  return fail(idx, `unterminated quoted file name ${s}`);
}

/** True for a diff timestamp at the Epoch, which `diff -N` uses for absent files. */
function isEpoch(ts: string): boolean {
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.\d+)?(?: ([+-])(\d\d)(\d\d))?\s*$/.exec(ts);
  if (!m) return false;
  const [, y, mo, d, h, mi, s, sign, zh, zm] = m;
  let t = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!);
  if (sign) t -= (sign === '+' ? 1 : -1) * (+zh! * 60 + +zm!) * 60_000;
  return t === 0;
}

/**
 * Turn a name from the patch into a path relative to the tree root: strip
 * one leading component (like `patch -p1`) when `strip`, and refuse
 * anything that could reach outside the tree.
 */
function treePath(raw: string, strip: boolean, idx: number, fail: Fail): string {
  if (raw.startsWith('/')) fail(idx, `absolute path ${raw} is outside the source tree`);
  let p = raw;
  if (strip) {
    const slash = p.indexOf('/');
    if (slash < 0) fail(idx, `cannot strip a leading directory from ${raw} (paths are read like patch -p1)`);
    p = p.slice(slash + 1);
    if (p.startsWith('/')) fail(idx, `absolute path ${p} is outside the source tree`);
  }
  if (p.includes('\0')) fail(idx, `file name ${JSON.stringify(raw)} contains a NUL byte`);
  const segs = p.split('/').filter((s) => s !== '' && s !== '.');
  if (segs.includes('..')) fail(idx, `path ${raw} leaves the source tree (contains ..)`);
  if (segs.length === 0) fail(idx, `empty file name ${JSON.stringify(raw)}`);
  return segs.join('/');
}

/** The two names of a `diff --git a/x b/x` line, or null when they cannot be told apart (a rename with spaces). */
function gitLineNames(line: string, idx: number, fail: Fail): [string, string] | null {
  const rest = line.slice('diff --git '.length);
  if (rest.startsWith('"')) {
    const a = unquote(rest, idx, fail);
    const r = a.rest.replace(/^ +/, '');
    return [a.value, r.startsWith('"') ? unquote(r, idx, fail).value : r];
  }
  const q = rest.indexOf(' "');
  if (q >= 0) return [rest.slice(0, q), unquote(rest.slice(q + 1), idx, fail).value];
  // Unquoted names may contain spaces: pick the split where both name the same file.
  const strip = (s: string) => s.slice(s.indexOf('/') + 1);
  for (let k = rest.indexOf(' '); k >= 0; k = rest.indexOf(' ', k + 1)) {
    const a = rest.slice(0, k);
    const b = rest.slice(k + 1);
    if (a.includes('/') && b.includes('/') && strip(a) === strip(b)) return [a, b];
  }
  const parts = rest.split(' ');
  return parts.length === 2 ? [parts[0]!, parts[1]!] : null;
}

/**
 * A `diff --git` section: extended headers, then `---`/`+++` and hunks, or
 * nothing for a pure rename, mode change or empty file. Returns null when
 * the line is not followed by anything diff-like (prose mentioning it).
 */
function parseGitSection(lines: string[], start: number, fail: Fail): { fp: FilePatch; next: number } | null {
  const ext = new Map<string, string>();
  let j = start + 1;
  for (let h; j < lines.length && (h = gitExtHeader(lines[j]!)); j++) {
    if (ext.has(h[0])) fail(j, `duplicate "${h[0]}" line in git diff header`);
    ext.set(h[0], h[1]);
  }
  const next = lines[j];
  if (next !== undefined && (BINARY_RE.test(next) || next === 'GIT binary patch')) {
    fail(j, 'binary patches are not supported');
  }
  let oldName: HeaderName | undefined;
  let newName: HeaderName | undefined;
  let hunks: Hunk[] = [];
  if (next?.startsWith('--- ') && lines[j + 1]?.startsWith('+++ ')) {
    oldName = headerName(next.slice(4), j, fail);
    newName = headerName(lines[j + 1]!.slice(4), j + 1, fail);
    j += 2;
    if (!lines[j]?.startsWith('@@')) fail(j, `expected a hunk (@@) after the file names of ${newName.raw}`);
    const r = parseHunks(lines, j, fail);
    hunks = r.hunks;
    j = r.next;
  } else if (ext.size === 0) {
    // A bare `diff --git` line: prose unless nothing at all follows it.
    if (next === undefined || next.startsWith('diff --git ')) fail(start, 'diff --git header without any changes');
    return null;
  }
  if (ext.has('copy from') || ext.has('copy to')) fail(start, 'copy patches are not supported');
  const renameFrom = ext.get('rename from') ?? ext.get('rename old');
  const renameTo = ext.get('rename to') ?? ext.get('rename new');
  if ((renameFrom === undefined) !== (renameTo === undefined))
    fail(start, 'rename header without both "rename from" and "rename to"');
  const isNew = ext.has('new file mode') || oldName?.raw === '/dev/null';
  const isDeleted = ext.has('deleted file mode') || newName?.raw === '/dev/null';
  if (isNew && isDeleted) fail(start, 'file is both created and deleted');
  const names = oldName && newName ? null : gitLineNames(lines[start]!, start, fail);
  const pathOf = (rename: string | undefined, h: HeaderName | undefined, fromLine: string | undefined): string => {
    if (rename !== undefined)
      return treePath(rename.startsWith('"') ? unquote(rename, start, fail).value : rename, false, start, fail);
    const raw = h?.raw ?? fromLine;
    if (raw === undefined) return fail(start, 'cannot tell the file names apart in this diff --git line');
    return treePath(raw, true, start, fail);
  };
  const oldPath = isNew ? null : pathOf(renameFrom, oldName, names?.[0]);
  const newPath = isDeleted ? null : pathOf(renameTo, newName, names?.[1]);
  if (oldPath !== null && newPath !== null && oldPath !== newPath && renameFrom === undefined) {
    fail(start, `old and new file names differ (${oldPath}, ${newPath}) without a rename header`);
  }
  const isRename = renameFrom !== undefined && oldPath !== newPath;
  const isModeChange = ext.has('old mode') || ext.has('new mode');
  if (hunks.length === 0 && !isRename && !isModeChange && !isNew && !isDeleted) {
    fail(start, `no hunks for ${newPath ?? oldPath}`);
  }
  const fp: FilePatch = { oldPath, newPath, hunks, isNew, isDeleted };
  checkSides(fp, fail);
  return { fp, next: j };
}

/** A `diff -u` section: `---`, `+++`, then hunks. */
function parsePlainSection(lines: string[], start: number, fail: Fail): { fp: FilePatch; next: number } {
  const oldName = headerName(lines[start]!.slice(4), start, fail);
  const newName = headerName(lines[start + 1]!.slice(4), start + 1, fail);
  const { hunks, next } = parseHunks(lines, start + 2, fail);
  // `diff -N` marks an absent file with an Epoch timestamp instead of /dev/null.
  const isNew =
    oldName.raw === '/dev/null' ||
    (isEpoch(oldName.timestamp) && hunks.every((h) => h.oldStart === 0 && h.oldLines === 0));
  const isDeleted =
    newName.raw === '/dev/null' ||
    (isEpoch(newName.timestamp) && hunks.every((h) => h.newStart === 0 && h.newLines === 0));
  if (isNew && isDeleted) fail(start, 'file is both created and deleted');
  const oldPath = isNew ? null : treePath(oldName.raw, true, start, fail);
  const newPath = isDeleted ? null : treePath(newName.raw, true, start + 1, fail);
  if (oldPath !== null && newPath !== null && oldPath !== newPath) {
    // Plain diffs cannot rename; GNU patch would guess which one to patch.
    fail(start, `old and new file names differ (${oldPath}, ${newPath}); which file to patch is ambiguous`);
  }
  const fp: FilePatch = { oldPath, newPath, hunks, isNew, isDeleted };
  checkSides(fp, fail);
  return { fp, next };
}

/** A created file cannot have old lines, nor a deleted one new lines. */
function checkSides(fp: FilePatch, fail: Fail): void {
  for (const h of fp.hunks) {
    if (fp.isNew && h.oldLines !== 0) fail(h.patchLine - 1, `hunk of new file ${fp.newPath} has old lines`);
    if (fp.isDeleted && h.newLines !== 0) fail(h.patchLine - 1, `hunk of deleted file ${fp.oldPath} has new lines`);
  }
}

/** Consecutive hunks starting at `start` (an `@@` line), with their bodies checked against the header counts. */
function parseHunks(lines: string[], start: number, fail: Fail): { hunks: Hunk[]; next: number } {
  const hunks: Hunk[] = [];
  let j = start;
  while (lines[j]?.startsWith('@@')) {
    const at = j;
    const m = HUNK_RE.exec(lines[at]!);
    if (!m && lines[at]!.endsWith('\r')) fail(at, 'the patch has CRLF line endings (convert it with dos2unix)');
    if (!m) fail(at, `malformed hunk header ${JSON.stringify(lines[at])}`);
    const [, os, ol, ns, nl, rest] = m!;
    const h: Hunk = {
      oldStart: +os!,
      oldLines: ol === undefined ? 1 : +ol,
      newStart: +ns!,
      newLines: nl === undefined ? 1 : +nl,
      header: rest!.replace(/^ /, ''),
      lines: [],
      patchLine: at + 1,
    };
    if ((h.oldStart === 0 && h.oldLines !== 0) || (h.newStart === 0 && h.newLines !== 0)) {
      fail(at, 'hunk header starts at line 0 but has lines');
    }
    const counts = () => `hunk at line ${at + 1} promises ${h.oldLines} old and ${h.newLines} new lines`;
    let oldSeen = 0;
    let newSeen = 0;
    j++;
    const marker = () => {
      const prev = h.lines[h.lines.length - 1];
      if (!prev) fail(j, '"\\ No newline at end of file" before any hunk line');
      if (prev!.noNewline) fail(j, 'repeated "\\ No newline at end of file"');
      prev!.noNewline = true;
      j++;
    };
    while (oldSeen < h.oldLines || newSeen < h.newLines) {
      const l = lines[j];
      if (l === undefined)
        fail(at, `truncated hunk: the patch ends after ${oldSeen} old and ${newSeen} new lines, but the ${counts()}`);
      // An empty line is an empty context line whose space a mailer stripped.
      const c = l!.length === 0 ? ' ' : l![0];
      if (c === '\\') {
        marker();
        continue;
      }
      if (c !== ' ' && c !== '-' && c !== '+') {
        fail(
          j,
          `truncated or corrupt hunk: found ${JSON.stringify(short(l!))} after ${oldSeen} old and ${newSeen} new lines, but the ${counts()}`,
        );
      }
      if ((c !== '+' && oldSeen >= h.oldLines) || (c !== '-' && newSeen >= h.newLines)) {
        fail(j, `corrupt hunk: more lines than its header says (the ${counts()})`);
      }
      if (c !== '+') oldSeen++;
      if (c !== '-') newSeen++;
      h.lines.push({ kind: c as HunkLine['kind'], text: l!.slice(1) });
      j++;
    }
    if (lines[j]?.startsWith('\\')) marker();
    checkMarkers(h, fail);
    hunks.push(h);
  }
  // More change lines right after the counted ones: the header undercounts,
  // and those lines would otherwise be dropped as trailing garbage.
  const l = lines[j];
  if (
    l !== undefined &&
    (l.startsWith('+') || l.startsWith('-')) &&
    l !== '-- ' &&
    l !== '--' &&
    l !== '---' &&
    !(l.startsWith('--- ') && lines[j + 1]?.startsWith('+++ '))
  ) {
    fail(
      j,
      `corrupt hunk: more lines than its header says (the hunk at line ${hunks[hunks.length - 1]!.patchLine} ends before ${JSON.stringify(short(l))})`,
    );
  }
  return { hunks, next: j };
}

/** `\ No newline at end of file` may only follow the last line of a side. */
function checkMarkers(h: Hunk, fail: Fail): void {
  let lastOld = -1;
  let lastNew = -1;
  h.lines.forEach((l, k) => {
    if (l.kind !== '+') lastOld = k;
    if (l.kind !== '-') lastNew = k;
  });
  h.lines.forEach((l, k) => {
    if (!l.noNewline) return;
    const ok = l.kind === ' ' ? k === lastOld && k === lastNew : l.kind === '-' ? k === lastOld : k === lastNew;
    if (!ok) fail(h.patchLine - 1, 'misplaced "\\ No newline at end of file" in hunk');
  });
}

function short(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** A file as lines without their newlines, plus whether the last one had one. */
interface Lines {
  lines: string[];
  eofNewline: boolean;
}

function splitText(text: string): Lines {
  if (text === '') return { lines: [], eofNewline: true };
  const lines = text.split('\n');
  const eofNewline = lines[lines.length - 1] === '';
  if (eofNewline) lines.pop();
  return { lines, eofNewline };
}

function joinText(f: Lines): string {
  if (f.lines.length === 0) return '';
  return f.lines.join('\n') + (f.eofNewline ? '\n' : '');
}

/**
 * Apply one file's hunks to its original contents (null when the file does
 * not exist). Returns the new contents (null when the patch deletes the
 * file) and, per hunk, the offset in lines between where the patch said the
 * hunk was and where it matched, so callers can report drift.
 */
export function applyFilePatch(
  original: string | null,
  fp: FilePatch,
  patchName: string,
): { text: string | null; offsets: number[] } {
  const path = fp.newPath ?? fp.oldPath ?? '?';
  const where = fp.hunks[0] ? `${patchName}:${fp.hunks[0].patchLine}` : patchName;
  // As GNU patch: hunks that all start at line 0 of a missing file create it (`diff -N` with --label).
  const creates =
    fp.isNew ||
    (original === null && fp.hunks.length > 0 && fp.hunks.every((h) => h.oldStart === 0 && h.oldLines === 0));
  if (creates) {
    if (original !== null && original !== '')
      throw new KlpgenError(`${where}: patch creates ${path}, which already exists`);
  } else if (original === null) {
    throw new KlpgenError(`${where}: ${fp.oldPath} to patch does not exist`);
  }
  const file = splitText(original ?? '');
  const out: string[] = [];
  let eofNewline = file.eofNewline;
  let consumed = 0; // original lines before this index are copied or replaced
  let lastOffset = 0;
  const offsets: number[] = [];
  fp.hunks.forEach((h, n) => {
    const oldSide = h.lines.filter((l) => l.kind !== '+');
    const newSide = h.lines.filter((l) => l.kind !== '-');
    const stated = h.oldLines === 0 ? h.oldStart : h.oldStart - 1;
    const pos = locate(file, h, oldSide, newSide, stated + lastOffset, consumed);
    if (pos === null) {
      const why = mismatch(file, h, oldSide, newSide, stated, consumed);
      throw new KlpgenError(`${patchName}:${h.patchLine}: hunk #${n + 1} of ${path} does not apply (${why})`);
    }
    lastOffset = pos - stated;
    offsets.push(lastOffset);
    // Loops, not push(...spread): kernel files can exceed the argument limit.
    for (let k = consumed; k < pos; k++) out.push(file.lines[k]!);
    for (const l of newSide) out.push(l.text);
    consumed = pos + oldSide.length;
    if (consumed === file.lines.length) {
      // The hunk reaches the end of the file, so it decides the final newline.
      const lastNew = newSide[newSide.length - 1];
      eofNewline = lastNew ? !lastNew.noNewline : true;
    }
  });
  for (let k = consumed; k < file.lines.length; k++) out.push(file.lines[k]!);
  const text = joinText({ lines: out, eofNewline });
  if (fp.isDeleted) {
    if (text !== '') {
      throw new KlpgenError(`${where}: patch deletes ${fp.oldPath}, but the file has lines the patch does not remove`);
    }
    return { text: null, offsets };
  }
  return { text, offsets };
}

/** Does the hunk match exactly, newline at end of file included, with its old side starting at `pos`? */
function matchesAt(file: Lines, oldSide: HunkLine[], newSide: HunkLine[], pos: number): boolean {
  const n = oldSide.length;
  if (pos < 0 || pos + n > file.lines.length) return false;
  for (let k = 0; k < n; k++) if (file.lines[pos + k] !== oldSide[k]!.text) return false;
  const atEnd = pos + n === file.lines.length;
  const oldNoNl = oldSide[n - 1]?.noNewline === true;
  const newNoNl = newSide[newSide.length - 1]?.noNewline === true;
  // The marker pins a side's last line to the end of the file.
  if ((oldNoNl || newNoNl) && !atEnd) return false;
  if (n > 0 && atEnd && oldNoNl === file.eofNewline) return false;
  // Appending after a last line that lacks its newline would join two lines.
  if (n === 0 && atEnd && pos > 0 && !file.eofNewline) return false;
  return true;
}

/**
 * Where the hunk's old side starts, as GNU patch's locate_hunk with no
 * fuzz: at `guess` (the stated position moved by the previous hunk's
 * offset), then at guess+1, guess-1, guess+2, ... but never before the end
 * of the previous hunk. A hunk with less leading than trailing context
 * starting at line 1 can only be at the start of the file, and one with
 * less trailing than leading context only at its end (diff wrote less
 * context because the file ended there).
 */
function locate(
  file: Lines,
  h: Hunk,
  oldSide: HunkLine[],
  newSide: HunkLine[],
  guess: number,
  min: number,
): number | null {
  const n = oldSide.length;
  const len = file.lines.length;
  if (n === 0) return guess >= min && guess <= len && matchesAt(file, oldSide, newSide, guess) ? guess : null;
  const { prefix, suffix } = contextSizes(h);
  if (prefix < suffix && h.oldStart <= 1) return min <= 0 && matchesAt(file, oldSide, newSide, 0) ? 0 : null;
  if (suffix < prefix) return len - n >= min && matchesAt(file, oldSide, newSide, len - n) ? len - n : null;
  const max = len - n;
  for (let d = 0; guess + d <= max || guess - d >= min; d++) {
    if (guess + d >= min && guess + d <= max && matchesAt(file, oldSide, newSide, guess + d)) return guess + d;
    if (d > 0 && guess - d >= min && guess - d <= max && matchesAt(file, oldSide, newSide, guess - d)) return guess - d;
  }
  return null;
}

function contextSizes(h: Hunk): { prefix: number; suffix: number } {
  let prefix = 0;
  while (prefix < h.lines.length && h.lines[prefix]!.kind === ' ') prefix++;
  let suffix = 0;
  while (suffix < h.lines.length - prefix && h.lines[h.lines.length - 1 - suffix]!.kind === ' ') suffix++;
  return { prefix, suffix };
}

/** Why the hunk does not match at its stated position: the first line that differs, for the error message. */
function mismatch(file: Lines, h: Hunk, oldSide: HunkLine[], newSide: HunkLine[], stated: number, min: number): string {
  if (stated < min) return `it overlaps or precedes the previous hunk`;
  for (let k = 0; k < oldSide.length; k++) {
    const actual = file.lines[stated + k];
    const want = oldSide[k]!.text;
    if (actual === undefined)
      return `the file ends at line ${file.lines.length}, but the patch expects ${JSON.stringify(short(want))} at line ${stated + k + 1}`;
    if (actual !== want)
      return `line ${stated + k + 1} is ${JSON.stringify(short(actual))}, but the patch expects ${JSON.stringify(short(want))}`;
  }
  if (stated > file.lines.length)
    return `the file ends at line ${file.lines.length}, before the hunk's line ${stated + 1}`;
  if (!matchesAt(file, oldSide, newSide, stated))
    return 'the lines match, but not whether the file ends with a newline';
  const { prefix, suffix } = contextSizes(h);
  return prefix < suffix ? 'the hunk must be at the start of the file' : 'the hunk must be at the end of the file';
}

/**
 * Apply patch files in order to a tree that is only read, never written:
 * `readOriginal` gives a file's contents (null if absent). Later patches see
 * the results of earlier ones. Returns the final contents of every path any
 * patch touched (null = deleted).
 */
export function applyPatches(
  patches: { name: string; text: string }[],
  readOriginal: (path: string) => string | null,
): Map<string, string | null> {
  const state = new Map<string, string | null>();
  const current = (p: string) => (state.has(p) ? state.get(p)! : readOriginal(p));
  for (const patch of patches) {
    for (const fp of parsePatch(patch.text, patch.name)) {
      // parsePatch already refuses such paths; this guards hand-built FilePatch values.
      for (const p of [fp.oldPath, fp.newPath]) {
        if (p !== null && (p.startsWith('/') || p.split('/').includes('..') || p === '')) {
          throw new KlpgenError(`${patch.name}: path ${p} is outside the source tree`);
        }
      }
      const src = fp.isNew ? current(fp.newPath!) : current(fp.oldPath!);
      const { text } = applyFilePatch(src, fp, patch.name);
      if (fp.oldPath !== null && fp.newPath !== null && fp.oldPath !== fp.newPath) {
        if (current(fp.newPath) !== null) {
          throw new KlpgenError(`${patch.name}: cannot rename ${fp.oldPath} to ${fp.newPath}, which already exists`);
        }
        state.set(fp.oldPath, null);
      }
      state.set(fp.newPath ?? fp.oldPath!, text);
    }
  }
  return state;
}
