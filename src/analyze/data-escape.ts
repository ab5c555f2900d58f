import { run } from '../util/exec.js';

/**
 * Where a function puts the address of a variable it refers to, read from its disassembly
 * (objdump, AT&T syntax) with a small forward data flow over registers and stack slots:
 *  - 'read': the variable's contents are loaded (a memory operand), its address never kept;
 *  - 'stored': the address, or a pointer derived from it, is written to memory that is not
 *    the function's stack: an object set up by that code keeps pointing at the variable;
 *  - 'passed': the address goes to another function as an argument (or a tail call).
 * A changed constant the module carries is safe to carry only when no reader stores its
 * address: what was set up before the livepatch would keep the old copy, and what is set up
 * while it is loaded would point into the module after it is removed.
 */
export interface AddressUse {
  kind: 'read' | 'stored' | 'passed';
  /** Offset of the instruction in the function's section. */
  at: number;
  /** For 'passed': the callee, or 'an indirect call'. */
  callee?: string;
}

interface Insn {
  at: number;
  mnemonic: string;
  operands: string[];
  /** Relocations inside the instruction: field offset -> target as objdump prints it. */
  relocs: { at: number; target: string }[];
}

const ARGUMENT_REGS = ['rdi', 'rsi', 'rdx', 'rcx', 'r8', 'r9'];
const CALLER_SAVED = new Set(['rax', 'rcx', 'rdx', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11']);

/** `%eax`/`%ax`/`%al` -> `rax`, `%r8d` -> `r8`; undefined for what is not a general register. */
export function register64(op: string): string | undefined {
  const m = /^%([a-z0-9]+)$/.exec(op.trim());
  if (!m) return undefined;
  const r = m[1] as string;
  const legacy: Record<string, string> = {
    ax: 'rax',
    bx: 'rbx',
    cx: 'rcx',
    dx: 'rdx',
    si: 'rsi',
    di: 'rdi',
    bp: 'rbp',
    sp: 'rsp',
  };
  let x = /^r(\d+)[dwb]?$/.exec(r);
  if (x) return `r${x[1]}`;
  x = /^[re]?([abcd]x|si|di|bp|sp)$/.exec(r);
  if (x) return legacy[x[1] as string];
  x = /^([abcd])l$/.exec(r);
  if (x) return `r${x[1]}x`;
  x = /^(si|di|bp|sp)l$/.exec(r);
  if (x) return legacy[x[1] as string];
  return undefined;
}

/** Operands split at top-level commas (`0x8(%rax,%rbx,4)` stays one). */
function splitOperands(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** Parse `objdump -d -r --no-show-raw-insn` output: section name -> its instructions. */
export function parseDisassembly(text: string): Map<string, Insn[]> {
  const sections = new Map<string, Insn[]>();
  let cur: Insn[] | undefined;
  for (const line of text.split('\n')) {
    const sec = /^Disassembly of section (\S+):$/.exec(line);
    if (sec) {
      cur = [];
      sections.set(sec[1] as string, cur);
      continue;
    }
    if (!cur) continue;
    const rel = /^\s+([0-9a-f]+): (R_X86_64_\w+)\s+(\S+)/.exec(line);
    if (rel) {
      const last = cur[cur.length - 1];
      if (last) last.relocs.push({ at: parseInt(rel[1] as string, 16), target: rel[3] as string });
      continue;
    }
    const ins = /^\s+([0-9a-f]+):\t(\S+)\s*(.*)$/.exec(line);
    if (!ins) continue;
    const [, at, mnemonic, rest] = ins as unknown as [string, string, string, string];
    // `jmp 1c <f+0x1c>`: the symbolic comment is not an operand.
    const operands = splitOperands(rest.replace(/\s*<[^>]*>\s*$/, '').replace(/\s*#.*$/, ''));
    cur.push({ at: parseInt(at, 16), mnemonic, operands, relocs: [] });
  }
  return sections;
}

/** Registers a memory operand reads (`0x8(%rax,%rbx,4)` -> rax, rbx). */
function addressRegisters(op: string): string[] {
  const m = /\(([^)]*)\)/.exec(op);
  if (!m) return [];
  return (m[1] as string)
    .split(',')
    .map((p) => register64(p))
    .filter((r): r is string => r !== undefined);
}

const isMemory = (op: string) =>
  op.includes('(') || /^-?0x[0-9a-f]+$/.test(op) || /^[a-z_.][\w.]*([+-]0x[0-9a-f]+)?$/i.test(op);
const isStack = (op: string) => /\(%[re]?sp\)$|\(%[re]?sp,/.test(op) || /\(%rbp\)$/.test(op);

/**
 * The uses of the address a relocation puts into the instruction at `insnAt` (one of
 * `insns`), followed through registers, stack slots and branches within the function.
 */
export function addressUses(insns: Insn[], insnIndex: number): AddressUse[] {
  const start = insns[insnIndex];
  if (!start) return [];
  const uses: AddressUse[] = [];
  const m = start.mnemonic;
  const ops = start.operands;
  const dest = ops[ops.length - 1] ?? '';
  // Where the address lands first.
  let seed: string | undefined;
  if (
    /^lea/.test(m) ||
    (/^mov/.test(m) && ops[0]?.startsWith('$')) ||
    (/^(add|sub)/.test(m) && ops[0]?.startsWith('$'))
  ) {
    if (register64(dest)) seed = register64(dest);
    else if (/^mov/.test(m)) {
      if (isStack(dest)) seed = `stack:${dest}`;
      else return [{ kind: 'stored', at: start.at }];
    }
  } else if (/^(push)/.test(m) && ops[0]?.startsWith('$')) {
    seed = 'stack:push';
  } else if (/^(call|jmp)/.test(m)) {
    return [{ kind: 'read', at: start.at }]; // the relocation is the branch target itself
  }
  if (!seed) return [{ kind: 'read', at: start.at }];

  const byAddress = new Map(insns.map((x, i) => [x.at, i]));
  const states = new Map<number, Set<string>>();
  const work: { i: number; tainted: Set<string> }[] = [{ i: insnIndex + 1, tainted: new Set([seed]) }];
  const seen = new Set<string>();
  const note = (u: AddressUse) => {
    const key = `${u.kind}:${u.at}:${u.callee ?? ''}`;
    if (!seen.has(key)) {
      seen.add(key);
      uses.push(u);
    }
  };
  while (work.length) {
    const { i, tainted } = work.pop() as { i: number; tainted: Set<string> };
    const prev = states.get(i);
    if (prev && [...tainted].every((t) => prev.has(t))) continue;
    const merged = new Set([...(prev ?? []), ...tainted]);
    states.set(i, merged);
    const x = insns[i];
    if (!x || merged.size === 0) continue;
    const t = new Set(merged);
    const o = x.operands;
    const src = o[0] ?? '';
    const dst = o[o.length - 1] ?? '';
    const srcReg = register64(src);
    const dstReg = register64(dst);
    const srcTainted = (srcReg !== undefined && t.has(srcReg)) || t.has(`stack:${src}`);
    let next: number | undefined = i + 1;
    let branch: number | undefined;
    if (/^(call)/.test(x.mnemonic)) {
      const callee =
        x.relocs[0]?.target.replace(/[+-]0x[0-9a-f]+$/, '') ?? (o[0]?.startsWith('*') ? 'an indirect call' : undefined);
      if (ARGUMENT_REGS.some((r) => t.has(r)))
        note({ kind: 'passed', at: x.at, callee: callee ?? 'a function of its own section' });
      for (const r of CALLER_SAVED) t.delete(r);
    } else if (/^jmp/.test(x.mnemonic)) {
      next = undefined;
      if (x.relocs.length || o[0]?.startsWith('*')) {
        // A tail call (or an indirect jump): arguments leave with it.
        if (ARGUMENT_REGS.some((r) => t.has(r)))
          note({
            kind: 'passed',
            at: x.at,
            callee: x.relocs[0]?.target.replace(/[+-]0x[0-9a-f]+$/, '') ?? 'an indirect jump',
          });
      } else branch = byAddress.get(parseInt(o[0] ?? '', 16));
    } else if (/^j/.test(x.mnemonic)) {
      branch = byAddress.get(parseInt(o[0] ?? '', 16));
    } else if (/^ret/.test(x.mnemonic) || /^ud2/.test(x.mnemonic) || /^int3/.test(x.mnemonic)) {
      next = undefined;
    } else if (/^push/.test(x.mnemonic)) {
      // A pushed pointer is a stack spill, reloaded by a pop: followed as the popped register.
      if (srcTainted) t.add('stack:push');
    } else if (/^pop/.test(x.mnemonic)) {
      if (dstReg) {
        if (t.has('stack:push')) t.add(dstReg);
        else t.delete(dstReg);
      }
    } else if (o.length >= 2) {
      const moves = /^(mov|lea|cmov|xchg)/.test(x.mnemonic);
      if (srcTainted && isMemory(dst) && !dstReg && /^(mov|xchg)/.test(x.mnemonic)) {
        if (isStack(dst)) t.add(`stack:${dst}`);
        else note({ kind: 'stored', at: x.at });
      } else if (dstReg) {
        // Pointer arithmetic keeps the pointer; a move or lea from something else replaces it.
        const base = x.mnemonic.replace(/[bwlq]$/, '');
        const fromTainted = srcTainted || (/^lea/.test(x.mnemonic) && addressRegisters(src).some((r) => t.has(r)));
        if (/^cmov/.test(x.mnemonic)) {
          if (fromTainted) t.add(dstReg);
        } else if (/^xchg/.test(x.mnemonic)) {
          if (fromTainted) t.add(dstReg);
        } else if (moves) {
          if (fromTainted) t.add(dstReg);
          else t.delete(dstReg);
        } else if (/^(add|sub|and|or|adc|sbb)$/.test(base)) {
          if (srcTainted) t.add(dstReg);
        } else if (!/^(cmp|test|bt)/.test(x.mnemonic)) {
          t.delete(dstReg); // xor, shifts, multiplies: no pointer comes out
        }
      } else if (isStack(dst) && /^mov/.test(x.mnemonic) && !srcTainted) {
        t.delete(`stack:${dst}`);
      }
    }
    if (next !== undefined) work.push({ i: next, tainted: t });
    if (branch !== undefined) work.push({ i: branch, tainted: t });
  }
  if (uses.length === 0) uses.push({ kind: 'read', at: start.at });
  return uses;
}

/** objdump's disassembly of the sections of an object that hold these functions. */
export async function disassemble(object: string, sections: string[]): Promise<Map<string, Insn[]>> {
  if (sections.length === 0) return new Map();
  const r = await run('objdump', ['-d', '-r', '--no-show-raw-insn', ...sections.flatMap((s) => ['-j', s]), object]);
  if (r.code !== 0) throw new Error(`objdump ${object}: ${r.stderr.trim()}`);
  return parseDisassembly(r.stdout);
}

/** The uses of the address of a variable by the instructions holding relocations at `offsets` of a section. */
export function usesAt(insns: Insn[], offsets: number[]): AddressUse[] {
  const out: AddressUse[] = [];
  for (const off of offsets) {
    const i = insns.findIndex((x, k) => x.at <= off && off < (insns[k + 1]?.at ?? Infinity));
    if (i < 0) continue;
    out.push(...addressUses(insns, i));
  }
  return out;
}
