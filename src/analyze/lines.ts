/**
 * A copy of the original file whose line numbers match the patched file's
 * after every hunk, by a `#line` directive placed after each hunk. Compiled
 * in place of the original, it makes `__LINE__` (WARN_ON, might_sleep,
 * BUG_ON) agree with the patched build in every function the patch did not
 * touch, so those functions do not look changed merely because they moved.
 * Line-only differences are therefore not replaced (as kpatch does): the
 * running code keeps printing its old line numbers, which is harmless.
 */
/** A hunk as `diff -U0` prints it: with a count of 0, the start is the line before the change. */
export interface LineHunk {
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
}

/** `@@ -l,s +l,s @@` headers of `diff -U0` output. */
export function parseUnifiedZeroHunks(diffOutput: string): LineHunk[] {
  const out: LineHunk[] = [];
  for (const m of diffOutput.matchAll(/^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/gm)) {
    out.push({
      oldStart: Number(m[1]),
      oldLines: m[2] === undefined ? 1 : Number(m[2]),
      newStart: Number(m[3]),
      newLines: m[4] === undefined ? 1 : Number(m[4]),
    });
  }
  return out;
}

export function alignLineNumbers(
  original: string,
  hunks: LineHunk[],
): { text: string; directives: number; skipped: number } {
  const lines = original.split('\n');
  const inserts = new Map<number, string>();
  let skipped = 0;
  // Where block comments are open at the end of each line, so no directive lands inside one.
  const openComment = commentStateAfterEachLine(lines);
  const sorted = [...hunks].sort((a, b) => a.oldStart - b.oldStart);
  sorted.forEach((h, k) => {
    // The first old line after the hunk, and where that line is in the patched file.
    const nextOld = h.oldLines > 0 ? h.oldStart + h.oldLines : h.oldStart + 1;
    const nextNew = h.newLines > 0 ? h.newStart + h.newLines : h.newStart + 1;
    const lastOld = nextOld - 1;
    if (lastOld < 1 || lastOld >= lines.length) return;
    // Not inside a block comment or after a continued line: the directive moves down past them
    // (diff often pairs an inserted comment's `/*` with an old one), numbered for where it lands,
    // unless the next hunk starts first.
    let at = lastOld;
    while (at < lines.length && (openComment[at - 1] || /\\\s*$/.test(lines[at - 1] ?? ''))) at++;
    const next = sorted[k + 1];
    if (at >= lines.length || (at !== lastOld && next && next.oldStart <= at)) {
      skipped++;
      return;
    }
    inserts.set(at, `#line ${nextNew + (at - lastOld)}`);
  });
  const out: string[] = [];
  lines.forEach((l, i) => {
    out.push(l);
    const d = inserts.get(i + 1);
    if (d !== undefined) out.push(d);
  });
  return { text: out.join('\n'), directives: inserts.size, skipped };
}

function commentStateAfterEachLine(lines: string[]): boolean[] {
  const state: boolean[] = [];
  let open = false;
  for (const line of lines) {
    let i = 0;
    while (i < line.length) {
      if (open) {
        const e = line.indexOf('*/', i);
        if (e < 0) break;
        open = false;
        i = e + 2;
        continue;
      }
      const s = line.indexOf('/*', i);
      const sl = line.indexOf('//', i);
      if (s < 0 || (sl >= 0 && sl < s)) break;
      open = true;
      i = s + 2;
    }
    state.push(open);
  }
  return state;
}
