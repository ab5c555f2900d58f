import { readFileSync } from 'node:fs';
import { SHN_UNDEF, STT_FUNC, STT_OBJECT, STT_SECTION, parseElf } from '../elf/elf64.js';
import { KlpgenError } from '../util/errors.js';

/**
 * What a fix declares with <klpgen/livepatch.h>: callbacks of its object and states of the
 * patch. The macros leave pointers and {id, version} pairs in `.discard.klpgen` of the patched
 * object, where no kernel build keeps them; the scaffolding turns them into klp_* fields.
 */
export type CallbackKind = 'pre_patch' | 'post_patch' | 'pre_unpatch' | 'post_unpatch';
export const CALLBACK_KINDS: readonly CallbackKind[] = ['pre_patch', 'post_patch', 'pre_unpatch', 'post_unpatch'];

export interface FixDeclarations {
  /** Callback kind -> the function (its name in the patched build). */
  callbacks: Partial<Record<CallbackKind, string>>;
  states: { id: bigint; version: bigint }[];
}

export const DECLARATIONS_SECTION = '.discard.klpgen';

export function readDeclarations(objectPath: string): FixDeclarations {
  const elf = parseElf(readFileSync(objectPath), objectPath);
  const out: FixDeclarations = { callbacks: {}, states: [] };
  const sec = elf.sections.find((s) => s.name === DECLARATIONS_SECTION);
  if (!sec) return out;
  const data = elf.sectionData(sec);
  const relocs = elf.relocations().find((r) => r.target?.index === sec.index)?.entries ?? [];
  const symbols = elf.symbols();
  const functionAt = (shndx: number, at: bigint) =>
    symbols.find((s) => s.type === STT_FUNC && s.shndx === shndx && s.value === at);
  for (const s of symbols) {
    if (s.shndx !== sec.index || s.type !== STT_OBJECT) continue;
    const cb = /^__klpgen_(pre_patch|post_patch|pre_unpatch|post_unpatch)_callback$/.exec(s.name);
    if (cb) {
      const r = relocs.find((x) => x.offset === s.value);
      const t = r?.symbol;
      const fn =
        t && t.type === STT_SECTION ? functionAt(t.shndx, r.addend) : t && t.shndx !== SHN_UNDEF ? t : undefined;
      if (!fn || fn.type !== STT_FUNC)
        throw new KlpgenError(`${objectPath}: the ${cb[1]} callback is not a function of this file`);
      out.callbacks[cb[1] as CallbackKind] = fn.name;
      continue;
    }
    if (/^__klpgen_state_/.test(s.name)) {
      const at = Number(s.value);
      out.states.push({ id: data.readBigUInt64LE(at), version: data.readBigUInt64LE(at + 8) });
    }
  }
  out.states.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return out;
}
