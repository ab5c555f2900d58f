/**
 * Struct and union layouts as the compiler laid them out, read from the DWARF of
 * the original and the patched object (by pahole, from dwarves). A livepatch runs
 * new code on the running kernel's data: a change to a type's text is harmless
 * when every member keeps its offset, size and kind of value, and fatal when one
 * moves. The source text cannot tell which: `int x[N]` moves when a macro N
 * changes in another header, and renaming a bit field moves nothing.
 */
import { run } from '../util/exec.js';

export interface Member {
  /** Nesting depth: 1 for a direct member, 2 inside an anonymous struct or union... */
  depth: number;
  /** "offset size" or "offset:bit size", as DWARF places it. */
  at: string;
  /** Type and name as pahole prints them, whitespace collapsed. */
  decl: string;
}

export interface Layout {
  /** "struct foo", "union bar", "typedef struct foo_t" (an anonymous type named by a typedef). */
  key: string;
  members: Member[];
  /** pahole's "size: N" of a struct; for a union (pahole prints none) its largest member's end. */
  size: number;
}

/** Every struct and union of one object's debug info, by key; `null` when pahole is missing. */
export async function readLayouts(object: string): Promise<Map<string, Layout> | null> {
  // -a: typedefs of anonymous structs too (`typedef struct { ... } spinlock_t`).
  const r = await run('pahole', ['-a', object], {}).catch(() => null);
  if (!r || r.code !== 0) return null;
  return parsePahole(r.stdout);
}

const OPEN = /^(struct|union|typedef struct|typedef union)\s*(\w*)\s*\{$/;
const MEMBER = /^(\t+)(.*?)\s*\/\*\s*(\d+)(?::\s*(\d+))?\s+(\d+)\s*\*\/\s*$/;
const SIZE = /\/\*\s*size:\s*(\d+)/;

/** pahole's C-like output: one block per type, "/* offset size *\/" after each member. */
export function parsePahole(text: string): Map<string, Layout> {
  const out = new Map<string, Layout>();
  let cur: (Layout & { anonymousTypedef: boolean }) | undefined;
  for (const line of text.split('\n')) {
    if (!cur) {
      const m = OPEN.exec(line);
      if (m) {
        const kind = (m[1] as string).replace('typedef ', '');
        cur = { key: `${kind} ${m[2]}`, members: [], size: -1, anonymousTypedef: m[1]!.startsWith('typedef') };
      }
      continue;
    }
    if (/^\}/.test(line)) {
      // "} name;" closes a typedef of an anonymous type: the typedef names it.
      const named = /^\}\s*(\w+)\s*;/.exec(line);
      if (cur.anonymousTypedef && named) cur.key = `typedef ${named[1]}`;
      const { anonymousTypedef, ...layout } = cur;
      if (layout.size < 0)
        layout.size = Math.max(
          0,
          ...layout.members
            .filter((m) => m.depth === 1)
            .map((m) => Number(m.at.split(/[: ]/)[0]) + Number(m.at.split(' ')[1])),
        );
      // An unnamed top-level type (only inside functions) has nothing to compare by.
      if (!/ $/.test(layout.key) && !out.has(layout.key)) out.set(layout.key, layout);
      void anonymousTypedef;
      cur = undefined;
      continue;
    }
    const size = SIZE.exec(line);
    if (size && cur.size < 0 && /^\t\/\* size:/.test(line)) {
      cur.size = Number(size[1]);
      continue;
    }
    const m = MEMBER.exec(line);
    if (!m) continue;
    const at = m[4] !== undefined ? `${m[3]}:${m[4]} ${m[5]}` : `${m[3]} ${m[5]}`;
    cur.members.push({ depth: (m[1] as string).length, at, decl: (m[2] as string).replace(/\s+/g, ' ').trim() });
  }
  return out;
}

export type LayoutVerdict =
  { same: true; renamed: string[]; retyped: string[] } | { same: false; why: string; retype?: boolean };

/** Scalar integer types: a member that changes between two of the same size keeps its bits. */
const INTEGER_WORDS = new Set(['unsigned', 'signed', 'int', 'long', 'short', 'char', '_Bool', 'bool']);
const INTEGER_TYPEDEF = /^(__)?[us](8|16|32|64)$/;
function isInteger(type: string): boolean {
  const words = type.split(' ').filter((w) => w && w !== 'const' && w !== 'volatile');
  return (
    words.length > 0 &&
    (words.every((w) => INTEGER_WORDS.has(w)) || (words.length === 1 && INTEGER_TYPEDEF.test(words[0]!)))
  );
}

/** Split "long unsigned int ts:3" / "void (*fn)(int)" / "char name[8]" into type and name. */
export function splitDecl(decl: string): { type: string; name: string } {
  const d = decl.replace(/;$/, '').trim();
  const fn = /\(\s*\*\s*(\w+)\s*\)/.exec(d);
  if (fn) return { type: d.replace(fn[0], '(*)'), name: fn[1] as string };
  const m = /^(.*?)\s*\b(\w+)\s*((?:\[[^\]]*\])*)\s*(:\s*\d+)?$/.exec(d);
  if (!m || !m[1]) return { type: d, name: '' };
  return { type: `${m[1]}${m[3] ?? ''}${m[4] ? ' :' : ''}`.replace(/\s+/g, ' ').trim(), name: m[2] as string };
}

function normType(t: string): string {
  return t
    .split(' ')
    .filter((w) => w !== 'const' && w !== 'volatile')
    .join(' ');
}

/**
 * Same layout: the same size, the same members at the same offsets and sizes, each
 * of the same type (renames are free; an integer may become another of its size).
 * Anything else is a layout change the running kernel's data would not follow.
 */
export function compareLayouts(before: Layout, after: Layout): LayoutVerdict {
  if (before.size !== after.size)
    return { same: false, why: `its size changes from ${before.size} to ${after.size} bytes` };
  const n = Math.max(before.members.length, after.members.length);
  const renamed: string[] = [];
  const retyped: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = before.members[i];
    const b = after.members[i];
    if (!a || !b)
      return {
        same: false,
        why: a
          ? `member ${splitDecl(a.decl).name || a.decl} is removed`
          : `member ${splitDecl(b!.decl).name || b!.decl} is added`,
      };
    const sa = splitDecl(a.decl);
    const sb = splitDecl(b.decl);
    if (a.depth !== b.depth || a.at !== b.at) {
      const what = sa.name === sb.name ? `member ${sa.name}` : `member ${sa.name} (now ${sb.name})`;
      return { same: false, why: `${what} moves from ${place(a.at)} to ${place(b.at)}` };
    }
    if (a.decl === b.decl) continue;
    const ta = normType(sa.type);
    const tb = normType(sb.type);
    if (ta !== tb && !(isInteger(ta) && isInteger(tb)))
      return {
        same: false,
        retype: true,
        why: `member ${sb.name || b.decl} changes type from ${sa.type} to ${sb.type}: the running kernel's data would be read as another type`,
      };
    if (ta !== tb) retyped.push(`${sb.name}: ${sa.type} -> ${sb.type}`);
    if (sa.name !== sb.name) renamed.push(`${sa.name} -> ${sb.name}`);
  }
  return { same: true, renamed, retyped };
}

function place(at: string): string {
  const [off, size] = at.split(' ');
  return off?.includes(':') ? `offset ${off.replace(':', ' bit ')} (${size} bytes)` : `offset ${off} (${size} bytes)`;
}
