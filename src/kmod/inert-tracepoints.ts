import { ElfWriter } from '../elf/writer.js';
import { KlpgenError } from '../util/errors.js';

/**
 * Tracepoints of a module in the new code. Their static keys (`__tracepoint_x`) and static
 * calls (`__SCK__tp_func_x`) live in that module, which may load after the livepatch; the
 * kernel reads `__jump_table` and `.static_call_sites` when the livepatch loads, before the
 * livepatch relocations to the module are applied. As kpatch does, those entries are left
 * out: the tracepoint stays inert in the new functions (its jump label keeps the nop it was
 * compiled with, so the call is never reached). The entries of every other key stay, and
 * klp-convert refuses those that cannot be resolved in time.
 */
const TABLES: { section: string; entrySize: number; keyOffset: number; key: RegExp }[] = [
  // struct jump_entry { s32 code; s32 target; long key; }
  { section: '__jump_table', entrySize: 16, keyOffset: 8, key: /^__tracepoint_/ },
  // struct static_call_site { s32 addr; s32 key; }
  { section: '.static_call_sites', entrySize: 8, keyOffset: 4, key: /^__SCK__tp_func_/ },
];

export interface InertTracepoints {
  ko: Buffer;
  /** Keys whose entries were left out, with how many. */
  dropped: Map<string, number>;
}

/** Leave out the table entries whose key is one of `moduleKeys` (symbols a module defines). */
export function dropModuleTracepoints(
  ko: Buffer,
  moduleKeys: ReadonlySet<string>,
  source = 'livepatch module',
): InertTracepoints {
  const dropped = new Map<string, number>();
  const w = ElfWriter.load(ko, source);
  for (const t of TABLES) {
    const sec = w.sections.find((s) => s.name === t.section);
    const rela = w.sections.find((s) => s.type === 4 && w.sections[s.info] === sec);
    if (!sec || !rela) continue;
    const data = w.sectionData(sec);
    if (data.length % t.entrySize !== 0)
      throw new KlpgenError(
        `${source}: ${t.section} is ${data.length} bytes, not a whole number of ${t.entrySize}-byte entries`,
      );
    const relocs = w.relocations(rela);
    const drop = new Set<number>();
    for (const r of relocs) {
      const name = r.symbol?.name ?? '';
      if (Number(r.offset) % t.entrySize === t.keyOffset && t.key.test(name) && moduleKeys.has(name)) {
        drop.add(Math.floor(Number(r.offset) / t.entrySize));
        dropped.set(name, (dropped.get(name) ?? 0) + 1);
      }
    }
    if (drop.size === 0) continue;
    // Keep the other entries, packed, with their relocations moved along.
    const kept: Buffer[] = [];
    const newIndex = new Map<number, number>();
    for (let e = 0; e < data.length / t.entrySize; e++) {
      if (drop.has(e)) continue;
      newIndex.set(e, kept.length);
      kept.push(data.subarray(e * t.entrySize, (e + 1) * t.entrySize));
    }
    const entries = relocs
      .filter((r) => !drop.has(Math.floor(Number(r.offset) / t.entrySize)))
      .map((r) => {
        const e = Math.floor(Number(r.offset) / t.entrySize);
        return { ...r, offset: BigInt((newIndex.get(e) as number) * t.entrySize + (Number(r.offset) % t.entrySize)) };
      });
    w.setSectionData(sec, Buffer.concat(kept));
    w.setRelocations(rela, entries);
  }
  return { ko: dropped.size ? w.serialize() : ko, dropped };
}
