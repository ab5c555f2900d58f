/**
 * Instructions of every function of an object, from one `objdump -d` run
 * per object (never one per function). Relocations are not taken from
 * objdump: the caller attaches the ELF reader's normalised ones by offset.
 */
import type { FunctionCode, NormalizedReloc } from '../analyze/objdiff.js';
import { runChecked } from '../util/exec.js';

export interface Instruction {
  /** Offset from the start of the function. */
  offset: number;
  mnemonic: string;
  operands: string;
  /** Relocations inside this instruction (call/jump targets, data references). */
  relocs: NormalizedReloc[];
}

/** Instructions per section name, in address order. */
export type SectionInstructions = Map<string, { offset: number; mnemonic: string; operands: string }[]>;

export async function disassemble(objectPath: string): Promise<SectionInstructions> {
  const r = await runChecked('objdump', ['-d', '-w', '--no-show-raw-insn', objectPath], {
    what: `objdump -d ${objectPath}`,
  });
  return parseObjdump(r.stdout);
}

const SECTION_HEADER = /^Disassembly of section (.+):$/;
const INSN = /^\s*([0-9a-f]+):\t(.*)$/;

/**
 * `objdump -d -w --no-show-raw-insn` text → instructions by section. Prefixes
 * (`lock`, `rep`, `cs`, `notrack`, `bnd`) stay part of the mnemonic so the
 * count is one per instruction. `(bad)` lines count as one instruction.
 */
export function parseObjdump(text: string): SectionInstructions {
  const out: SectionInstructions = new Map();
  let current: { offset: number; mnemonic: string; operands: string }[] | undefined;
  for (const line of text.split('\n')) {
    const sec = SECTION_HEADER.exec(line);
    if (sec) {
      const name = sec[1] as string;
      // Two sections of one name (rare: groups) cannot be told apart by name; the first one is kept.
      current = [];
      if (!out.has(name)) out.set(name, current);
      continue;
    }
    if (!current) continue;
    const m = INSN.exec(line);
    if (!m) continue;
    const body = (m[2] as string).trim();
    // `...` marks zero padding objdump skipped; it is not an instruction.
    if (body === '' || body === '...') continue;
    const { mnemonic, operands } = splitInstruction(body);
    current.push({ offset: parseInt(m[1] as string, 16), mnemonic, operands });
  }
  return out;
}

const PREFIXES = new Set([
  'lock',
  'rep',
  'repz',
  'repe',
  'repnz',
  'repne',
  'cs',
  'ds',
  'ss',
  'es',
  'fs',
  'gs',
  'notrack',
  'bnd',
  'data16',
  'addr32',
  'rex',
  'rex.W',
  'xacquire',
  'xrelease',
]);

function splitInstruction(body: string): { mnemonic: string; operands: string } {
  const words = body.split(/\s+/);
  const mn: string[] = [];
  let i = 0;
  while (i < words.length - 1 && PREFIXES.has(words[i] as string)) mn.push(words[i++] as string);
  mn.push(words[i++] ?? '');
  // Drop objdump's `# 34 <foo+0x34>` comments; they hold addresses that move.
  const operands = words
    .slice(i)
    .join(' ')
    .replace(/\s*#.*$/, '');
  return { mnemonic: mn.join(' '), operands };
}

/** The instructions of one function symbol, with its relocations attached. */
export function functionInstructions(sections: SectionInstructions, f: FunctionCode): Instruction[] {
  const all = sections.get(f.section) ?? [];
  const start = f.offset;
  const end = f.offset + f.size;
  const out: Instruction[] = [];
  // Sections are in address order: binary search the first instruction of the function.
  let lo = 0;
  let hi = all.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((all[mid] as { offset: number }).offset < start) lo = mid + 1;
    else hi = mid;
  }
  let r = 0;
  for (let i = lo; i < all.length; i++) {
    const insn = all[i] as { offset: number; mnemonic: string; operands: string };
    if (insn.offset >= end) break;
    const next = i + 1 < all.length ? Math.min((all[i + 1] as { offset: number }).offset, end) : end;
    const rel = insn.offset - start;
    const relEnd = next - start;
    const relocs: NormalizedReloc[] = [];
    while (r < f.relocs.length && (f.relocs[r] as NormalizedReloc).offset < rel) r++;
    for (let k = r; k < f.relocs.length && (f.relocs[k] as NormalizedReloc).offset < relEnd; k++)
      relocs.push(f.relocs[k] as NormalizedReloc);
    out.push({ offset: rel, mnemonic: insn.mnemonic, operands: insn.operands, relocs });
  }
  return out;
}
