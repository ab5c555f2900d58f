import { readFileSync } from 'node:fs';
import { parseElf } from '../elf/elf64.js';
import { compareCode, readObjectCode, type FunctionCode, type ObjectCode } from '../analyze/objdiff.js';
import { compareEntries, placeEntries } from './special-entries.js';
import { isCompilerLocal } from '../gcc/names.js';

/**
 * Verification of a built livepatch against the patched build of its TU:
 *  1. every function of the module is the patched build's function: same
 *     bytes, same relocations once names are mapped (livepatch_foo ≙ foo; the
 *     module's references are compared before klp-convert, by name, so a
 *     KLP-relocated symbol ≙ its target);
 *  2. every function whose code changed between the original and patched
 *     builds is replaced, or is a piece (clone, .cold/.part split) or an
 *     untraceable function that the analysis covered through its callers.
 */
export interface FunctionCheck {
  /** Name in the module. */
  name: string;
  /** The patched build's function it must equal. */
  of: string;
  equal: boolean;
  firstDifference?: number;
  reason?: string;
}

export interface Verification {
  status: 'passed' | 'failed';
  functions: FunctionCheck[];
  /** Changed functions neither replaced nor covered: must be empty. */
  uncovered: string[];
  /** Changed constants the module must carry: each its own copy, equal to the patched build's. */
  data?: FunctionCheck[];
}

export interface VerifyInput {
  /** The module's object with the new functions, before linking (-ffunction-sections). */
  moduleObject: string;
  /** The patched build of the TU (from the analysis). */
  patchedObject: string;
  /** module name -> patched-build name, for every function the module carries. */
  functions: Map<string, string>;
  /** Functions whose code differs between the original and patched builds. */
  codeChanged: string[];
  /** Functions the livepatch redirects. */
  replaced: Set<string>;
  /** Changed functions the analysis covered through their callers (clones, splits, untraceable). */
  coveredByCallers: Set<string>;
  /** Other module names for the patched build's symbols (klpgen_target_module ≙ __this_module). */
  symbolAliases?: Map<string, string>;
  /**
   * The patched build after Kbuild's objtool run (ORC, static calls, return sites): each
   * function's entries in the kernel's code-place tables must equal the module's.
   */
  patchedProcessed?: string;
  /** Constants whose contents change, which the module must define with the patched build's contents. */
  carriedData?: string[];
}

export function verify(v: VerifyInput): Verification {
  const module = readObjectCode(parseElf(readFileSync(v.moduleObject), v.moduleObject));
  const patched = readObjectCode(parseElf(readFileSync(v.patchedObject), v.patchedObject));
  const rename = new Map<string, string>();
  for (const [m, p] of v.functions) if (m !== p) rename.set(m, p);
  for (const [m, p] of v.symbolAliases ?? []) rename.set(m, p);
  const functions: FunctionCheck[] = [];
  const toPatched = (target: string) => mappedName(target, rename);
  const moduleEntries = v.patchedProcessed
    ? placeEntries(parseElf(readFileSync(v.moduleObject), v.moduleObject), toPatched)
    : undefined;
  const patchedEntries = v.patchedProcessed
    ? placeEntries(parseElf(readFileSync(v.patchedProcessed), v.patchedProcessed))
    : undefined;
  /** A code check, failed when the function's table entries differ from the patched build's. */
  const withEntries = (check: FunctionCheck): FunctionCheck => {
    if (!moduleEntries || !patchedEntries || !check.equal) return check;
    const d = compareEntries(moduleEntries.get(check.name) ?? [], patchedEntries.get(check.of) ?? []);
    return d ? { ...check, equal: false, reason: d } : check;
  };
  for (const [m, p] of [...v.functions].sort((a, b) => a[0].localeCompare(b[0]))) {
    const mine = module.functions.get(m);
    const theirs = patched.functions.get(p);
    if (!mine && !v.replaced.has(p)) continue; // a copied helper inlined into the new functions: they are compared
    if (!mine || !theirs) {
      functions.push({
        name: m,
        of: p,
        equal: false,
        reason: !mine ? 'not in the module' : 'not in the patched build (inlined there)',
      });
      continue;
    }
    const d = compareCode(
      renamed(selfCallsResolved(mine), rename),
      renamed(selfCallsResolved(withJumpLabelNops(theirs, mine)), new Map()),
    );
    functions.push(
      withEntries(
        d
          ? { name: m, of: p, equal: false, firstDifference: d.firstDifference, reason: d.reason }
          : { name: m, of: p, equal: true },
      ),
    );
    // Its pieces GCC split off (foo.cold, foo.part.0) are its code too.
    for (const [pieceName, piece] of module.functions) {
      if (!pieceName.startsWith(`${m}.`)) continue;
      const suffix = pieceName.slice(m.length);
      const counterpart = patched.functions.get(`${p}${suffix}`);
      if (!counterpart) {
        functions.push({ name: pieceName, of: `${p}${suffix}`, equal: false, reason: 'not in the patched build' });
        continue;
      }
      const dp = compareCode(renamed(piece, rename), renamed(withJumpLabelNops(counterpart, piece), new Map()));
      functions.push(
        withEntries(
          dp
            ? {
                name: pieceName,
                of: `${p}${suffix}`,
                equal: false,
                firstDifference: dp.firstDifference,
                reason: dp.reason,
              }
            : { name: pieceName, of: `${p}${suffix}`, equal: true },
        ),
      );
    }
  }
  const uncovered = v.codeChanged.filter((c) => !v.replaced.has(c) && !v.coveredByCallers.has(c) && !isPiece(c)).sort();
  // A reference to the running kernel's copy would read the old contents: the module defines its own.
  const data: FunctionCheck[] = (v.carriedData ?? []).map((name) => {
    const mine = module.data.get(name);
    const theirs = patched.data.get(name);
    if (!mine || !theirs)
      return { name, of: name, equal: false, reason: !mine ? 'not defined in the module' : 'not in the patched build' };
    const d = compareCode(
      renamed(mine as unknown as FunctionCode, rename),
      renamed(theirs as unknown as FunctionCode, new Map()),
    );
    return d
      ? { name, of: name, equal: false, firstDifference: d.firstDifference, reason: d.reason }
      : { name, of: name, equal: true };
  });
  const failed = functions.some((f) => !f.equal) || uncovered.length > 0 || data.some((d) => !d.equal);
  return { status: failed ? 'failed' : 'passed', functions, uncovered, ...(data.length ? { data } : {}) };
}

/**
 * Kbuild runs objtool on the module, which turns the initial `jmp` of each
 * jump label (static key) site into a nop of the same size; the analysis'
 * patched build is gcc's output, before objtool. Where the module has such a
 * nop and the patched build a jmp, take the nop (and drop the jmp's relocation).
 */
function withJumpLabelNops(theirs: FunctionCode, mine: FunctionCode): FunctionCode {
  const bytes = Buffer.from(theirs.bytes);
  const dropped = new Set<number>();
  const nop5 = [0x0f, 0x1f, 0x44, 0x00, 0x00];
  for (let i = 0; i + 1 < Math.min(bytes.length, mine.bytes.length); i++) {
    if (bytes[i] === 0xe9 && nop5.every((b, k) => mine.bytes[i + k] === b)) {
      mine.bytes.copy(bytes, i, i, i + 5);
      dropped.add(i + 1);
      i += 4;
    } else if (bytes[i] === 0xeb && mine.bytes[i] === 0x66 && mine.bytes[i + 1] === 0x90) {
      bytes[i] = 0x66;
      bytes[i + 1] = 0x90;
      i += 1;
    }
  }
  return { ...theirs, bytes, relocs: theirs.relocs.filter((r) => !dropped.has(r.offset)) };
}

/**
 * A recursive call: to a local function in its own section the assembler writes the
 * displacement and no relocation (the patched build's static function); to a global one, a
 * relocation (the module's, global for the scaffolding). Both read as the displacement.
 */
function selfCallsResolved(f: FunctionCode): FunctionCode {
  const self = f.relocs.filter(
    (r) => r.target === f.name && (r.type === 'R_X86_64_PC32' || r.type === 'R_X86_64_PLT32'),
  );
  if (self.length === 0) return f;
  const bytes = Buffer.from(f.bytes);
  for (const r of self) if (r.offset + 4 <= bytes.length) bytes.writeInt32LE(Number(r.addend) - r.offset, r.offset);
  return { ...f, bytes, relocs: f.relocs.filter((r) => !self.includes(r)) };
}

function isPiece(name: string): boolean {
  return isCompilerLocal(name);
}

/**
 * Names mapped to the patched build's, and a call through the PLT (to a symbol
 * outside the object) counted as the direct PC-relative call it resolves to.
 */
function renamed(f: FunctionCode, rename: Map<string, string>): FunctionCode {
  const name = (target: string) => mappedName(target, rename);
  return { ...f, relocs: f.relocs.map((r) => ({ ...r, target: name(r.target), type: pcRelative(r.type) })) };
}

function pcRelative(type: string): string {
  return type === 'R_X86_64_PLT32' ? 'R_X86_64_PC32' : type;
}

export function formatVerification(v: Verification): string {
  const lines = [`verification ${v.status}`];
  for (const f of v.functions) {
    lines.push(
      `  ${f.name} = ${f.of}: ${f.equal ? 'equal' : `DIFFERS${f.firstDifference !== undefined ? ` at +0x${f.firstDifference.toString(16)}` : ''}: ${f.reason ?? ''}`}`,
    );
  }
  for (const u of v.uncovered) lines.push(`  ${u}: code changed but not replaced`);
  for (const d of v.data ?? [])
    lines.push(`  data ${d.name} = ${d.of}: ${d.equal ? 'equal' : `DIFFERS: ${d.reason ?? ''}`}`);
  return lines.join('\n');
}

export type { ObjectCode };

/**
 * The written module's KLP symbols (`.klp.sym.OBJ.NAME,POS`) are exactly the running-kernel
 * symbols the resolution chose: a wrong object, name or sympos fails, in one line each.
 */
export function checkKlpSymbols(
  ko: Buffer,
  expected: readonly { object: string; name: string; sympos: number }[],
  source = 'livepatch module',
): string[] {
  const want = new Set(expected.map((e) => `${e.object}.${e.name},${e.sympos}`));
  const problems: string[] = [];
  for (const s of parseElf(ko, source).symbols()) {
    const m = /^\.klp\.sym\.(.+)$/.exec(s.name);
    if (m && !want.has(m[1] as string))
      problems.push(
        `${s.name}: not a symbol the resolution chose (${[...want].filter((w) => w.split(',')[0] === (m[1] as string).split(',')[0]).join(', ') || 'none of that name'})`,
      );
  }
  return problems;
}

/** A module name as the patched build's: renamed whole, or its base (livepatch_foo.cold ≙ foo.cold). */
function mappedName(target: string, rename: Map<string, string>): string {
  const whole = rename.get(target);
  if (whole !== undefined) return whole;
  const dot = target.indexOf('.');
  const base = dot > 0 ? rename.get(target.slice(0, dot)) : undefined;
  return base !== undefined ? `${base}${target.slice(dot)}` : target;
}
