/**
 * klp-convert: turn references from a livepatch module to symbols the module
 * loader cannot resolve (unexported vmlinux symbols, symbols of modules that
 * may not be loaded yet) into livepatch relocations, as described in the
 * kernel's Documentation/livepatch/module-elf-format.rst. Linux 6.1 ships no
 * klp-convert, so this is our own.
 *
 * For every external (an UNDEFINED symbol of the module):
 *  - the symbol is renamed `.klp.sym.<object>.<name>,<sympos>` and gets
 *    st_shndx = SHN_LIVEPATCH (0xff20); its binding (GLOBAL) and index are
 *    kept. simplify_symbols() skips SHN_LIVEPATCH symbols, so the module
 *    loader no longer fails with "Unknown symbol"; klp_resolve_symbols()
 *    parses the name with ".klp.sym.%55[^.].%511[^,],%lu" and looks the
 *    symbol up in kallsyms (for data symbols that needs CONFIG_KALLSYMS_ALL,
 *    which Debian sets).
 *  - every relocation entry against it moves out of `.rela<sec>` into
 *    `.klp.rela.<object>.<sec>` (e.g. `.klp.rela.vmlinux..text`): SHT_RELA,
 *    SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH, sh_link = .symtab,
 *    sh_info = the section the entries apply to, entsize 24. The kernel
 *    reads these entries through sh_addr, hence SHF_ALLOC. The kernel only
 *    parses the object name (".klp.rela.%55[^.]"), and klp_resolve_symbols()
 *    rejects an entry whose symbol is not SHN_LIVEPATCH or belongs to another
 *    object than the section, so entries are grouped per (object, section).
 *    The original `.rela<sec>` keeps the other entries (it may become empty).
 *
 * When the kernel applies these relocations (Linux 6.1):
 *  - `.klp.rela.vmlinux.*`: in apply_relocations() while the livepatch module
 *    loads, in the same pass as ordinary relocations (module/main.c calls
 *    klp_apply_section_relocs(..., NULL)), i.e. BEFORE post_relocation()
 *    (sort_extable, module_finalize: paravirt, retpolines, return thunks,
 *    alternatives, IBT, .smp_locks, ORC), ftrace_module_init (__mcount_loc),
 *    the MODULE_STATE_COMING notifiers (__jump_table, .static_call_sites),
 *    parse_args (__param) and the module's init. So vmlinux references are
 *    fine in every section, special ones included.
 *  - `.klp.rela.<module>.*`: only from klp_init_object_loaded(), when that
 *    module is (or already was) loaded, which is always AFTER the livepatch
 *    module itself finished loading. Anything the kernel consumed during the
 *    livepatch module's load would see an unrelocated (zero) value, so such
 *    references are refused with a KlpgenError (see LOAD_TIME_SECTIONS), and
 *    so are references from init sections: those are freed after the module's
 *    init, and a late write through the saved section address would corrupt
 *    freed memory.
 *  - Non-SHF_ALLOC targets (.debug_*): the loader never relocates them
 *    (apply_relocations() skips them), and a late klp relocation would write
 *    to the freed load image. Those entries stay where they are; only tools
 *    reading the .ko see the renamed symbol.
 * Note also that 6.1 has no clear_relocate_add(): after a patched module is
 * unloaded and loaded again, x86's apply_relocate_add() finds the old
 * (non-zero) values and fails "invalid relocation target".
 */
import { KlpgenError } from '../util/errors.js';
import {
  parseElf,
  readModinfo,
  EM_X86_64,
  SHN_UNDEF,
  SHF_ALLOC,
  SHF_INFO_LINK,
  SHT_RELA,
  relocTypeName,
} from '../elf/elf64.js';
import { ElfWriter, type WriterReloc, type WriterSection, type WriterSymbol } from '../elf/writer.js';

/** include/uapi/linux/elf.h */
export const SHF_RELA_LIVEPATCH = 0x00100000;
export const SHN_LIVEPATCH = 0xff20;

/** MODULE_NAME_LEN - 1 and KSYM_NAME_LEN - 1: the field widths klp_resolve_symbols() parses with. */
const MAX_OBJNAME = 55;
const MAX_SYMNAME = 511;

export interface KlpExternal {
  /** The undefined symbol's name in the module (e.g. "saved_command_line"). */
  name: string;
  /** Its name in the object, when the module calls it otherwise (default: `name`). */
  target?: string;
  /** "vmlinux" or the (kernel-internal, '_' not '-') name of the module that defines it. */
  object: string;
  /** Position among same-named symbols of the object in kallsyms order; 0 for a unique symbol. */
  sympos: number;
  /**
   * The object whose `.klp.rela` section carries the relocation (default: `object`): an export
   * of a module the patched module depends on is resolved when the patched module loads.
   */
  relaObject?: string;
}

/**
 * Sections the kernel reads or rewrites while the livepatch module itself
 * loads (module/main.c find_module_sections(), post_relocation(),
 * ftrace_module_init(), the COMING notifiers; arch/x86/kernel/module.c
 * module_finalize()). A relocation in one of them against a symbol of a
 * *module* object would only be written later, after its consumer ran.
 */
const LOAD_TIME_SECTIONS: ReadonlyMap<string, string> = new Map([
  ['__jump_table', 'jump_label_add_module() reads the static keys'],
  ['.static_call_sites', 'static_call_add_module() reads the keys'],
  ['.altinstructions', 'apply_alternatives() patches the code'],
  ['.altinstr_replacement', 'apply_alternatives() copies the replacement code'],
  ['.parainstructions', 'apply_paravirt() patches the code'],
  ['.retpoline_sites', 'apply_retpolines() patches the code'],
  ['.return_sites', 'apply_returns() patches the code'],
  ['.ibt_endbr_seal', 'apply_ibt_endbr() patches the code'],
  ['.smp_locks', 'alternatives_smp_module_add() records the lock prefixes'],
  ['.orc_unwind_ip', 'unwind_module_init() sorts the ORC table'],
  ['.orc_unwind', 'unwind_module_init() sorts the ORC table'],
  ['__ex_table', 'sort_extable() sorts the exception table'],
  ['__bug_table', 'module_bug_finalize() registers the BUG() sites'],
  ['__mcount_loc', 'ftrace_module_init() records the call sites'],
  ['__patchable_function_entries', 'ftrace_module_init() records the call sites'],
  ['__param', 'parse_args() uses the parameter ops'],
  ['__ksymtab', 'exports are resolved by other modules'],
  ['__ksymtab_gpl', 'exports are resolved by other modules'],
  ['.init_array', 'do_mod_ctors() calls the constructors'],
  ['.ctors', 'do_mod_ctors() calls the constructors'],
  ['.gnu.linkonce.this_module', 'the loader uses struct module (init/exit)'],
  ['__tracepoints_ptrs', 'tracepoint_module_coming() registers the tracepoints'],
  ['__bpf_raw_tp_map', 'the BPF raw tracepoint table is registered at load'],
  ['_ftrace_events', 'trace_module_add_events() registers the events'],
  ['_ftrace_eval_map', 'trace_module_add_evals() registers the maps'],
  ['__trace_printk_fmt', 'the trace_printk formats are registered at load'],
  ['__dyndbg', 'dynamic_debug_setup() registers the call sites'],
  ['__dyndbg_classes', 'dynamic_debug_setup() registers the classes'],
  ['_error_injection_whitelist', 'the error-injection list is built at load'],
  ['_kprobe_blacklist', 'the kprobe blacklist is built at load'],
  ['.printk_index', 'the printk index is registered at load'],
  ['.kunit_test_suites', 'KUnit runs the suites at load'],
  ['___srcu_struct_ptrs', 'the SRCU structs are initialized at load'],
]);

/** x86-64 types arch/x86/kernel/module.c apply_relocate_add() handles. */
const KERNEL_RELOC_TYPES = new Set([0, 1, 2, 4, 10, 11, 24]); // NONE 64 PC32 PLT32 32 32S PC64

/** The livepatch symbol name for an external: `.klp.sym.<object>.<name>,<sympos>`. */
export function klpSymbolName(ext: KlpExternal): string {
  return `.klp.sym.${ext.object}.${ext.target ?? ext.name},${ext.sympos}`;
}

/** The livepatch relocation section name for entries of `object` applying to `section`. */
export function klpRelaSectionName(object: string, section: string): string {
  return `.klp.rela.${object}.${section}`;
}

const SIGNATURE_MAGIC = '~Module signature appended~\n';

/**
 * Converts the references of livepatch module `ko` to `externals` into
 * livepatch symbols and relocation sections. Returns the new module; the
 * same input always gives the same bytes. `source` names the module in errors.
 */
export function klpConvert(ko: Buffer, externals: readonly KlpExternal[], source = 'livepatch module'): Buffer {
  const fail: (msg: string) => never = (msg) => {
    throw new KlpgenError(`${source}: ${msg}`);
  };
  if (
    ko.length >= SIGNATURE_MAGIC.length &&
    ko.toString('latin1', ko.length - SIGNATURE_MAGIC.length) === SIGNATURE_MAGIC
  ) {
    fail('is signed; run klp-convert before signing (the conversion would invalidate the signature)');
  }
  const elf = parseElf(ko, source);
  if (elf.machine !== EM_X86_64) fail(`is not an x86-64 object (e_machine ${elf.machine})`);
  if (!readModinfo(elf).get('livepatch')?.includes('Y'))
    fail('not a livepatch module (its .modinfo has no livepatch=Y)');

  const byName = new Map<string, KlpExternal>();
  for (const ext of externals) {
    checkExternal(ext, fail);
    if (byName.has(ext.name)) fail(`external symbol ${ext.name} is listed twice`);
    byName.set(ext.name, ext);
  }

  const w = ElfWriter.load(ko, source);
  const symtab = w.symtab;
  if (symtab === undefined) fail('has no symbol table');

  // The module's undefined symbols that become livepatch symbols.
  const klpSyms = new Map<WriterSymbol, KlpExternal>();
  for (const ext of byName.values()) {
    const same = w.findSymbols(ext.name);
    const undef = same.filter((s) => s.shndx === SHN_UNDEF);
    if (undef.length === 0) {
      fail(
        same.length > 0
          ? `external symbol ${ext.name} is defined in the module, not an undefined reference`
          : `external symbol ${ext.name} is not an undefined symbol of the module (no such symbol)`,
      );
    }
    for (const s of undef) klpSyms.set(s, ext);
  }

  // Split every relocation section linked to the symbol table.
  const klpEntries = new Map<string, { object: string; target: WriterSection; entries: WriterReloc[] }>();
  const originals = w.sections.filter((s) => s.type === SHT_RELA && s.link === symtab.index);
  for (const rs of originals) {
    const target = w.sections[rs.info];
    if (target === undefined) fail(`${rs.name} applies to missing section ${rs.info}`);
    // Not loaded into memory: the kernel never applies these (see the header comment).
    if ((target.flags & SHF_ALLOC) === 0) continue;
    const keep: WriterReloc[] = [];
    let moved = 0;
    for (const r of w.relocations(rs)) {
      const ext = r.symbol === null ? undefined : klpSyms.get(r.symbol);
      if (ext === undefined) {
        keep.push(r);
        continue;
      }
      checkDeferrable(target.name, r, ext, fail);
      const object = ext.relaObject ?? ext.object;
      const key = `${object}\0${target.index}`;
      let group = klpEntries.get(key);
      if (group === undefined) {
        group = { object, target, entries: [] };
        klpEntries.set(key, group);
      }
      group.entries.push(r);
      moved++;
    }
    if (moved > 0) w.setRelocations(rs, keep);
  }

  // Symbol-table order, so that the new names land in .strtab in an order
  // that does not depend on the order of `externals`.
  const renames = [...klpSyms].sort(([a], [b]) => w.symbolIndex(a) - w.symbolIndex(b));
  for (const [sym, ext] of renames) {
    w.renameSymbol(sym, klpSymbolName(ext));
    w.setSymbolShndx(sym, SHN_LIVEPATCH);
  }

  const flags = SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH;
  // New sections ordered by target section, then object name.
  const groups = [...klpEntries.values()].sort(
    (a, b) => a.target.index - b.target.index || (a.object < b.object ? -1 : a.object > b.object ? 1 : 0),
  );
  for (const { object, target, entries } of groups) {
    const name = klpRelaSectionName(object, target.name);
    // A module converted before (with other externals) may already have the section.
    const existing = w.sections.find(
      (s) =>
        s.name === name &&
        s.type === SHT_RELA &&
        s.info === target.index &&
        s.link === symtab.index &&
        (s.flags & SHF_RELA_LIVEPATCH) !== 0,
    );
    if (existing !== undefined) {
      w.setRelocations(existing, [...w.relocations(existing), ...entries]);
      continue;
    }
    w.addSection({
      name,
      type: SHT_RELA,
      flags,
      link: symtab.index,
      info: target.index,
      addralign: 8,
      entsize: 24,
      relocations: entries,
    });
  }
  return w.serialize();
}

function checkExternal(ext: KlpExternal, fail: (msg: string) => never): void {
  const what = `external ${JSON.stringify(ext.name)}`;
  if (typeof ext.name !== 'string' || ext.name === '') fail('an external symbol has an empty name');
  if (ext.name.length > MAX_SYMNAME || /[,\0]/.test(ext.name)) {
    fail(`${what}: a livepatch symbol name must be at most ${MAX_SYMNAME} characters without ',' or NUL`);
  }
  if (typeof ext.object !== 'string' || !/^[^.,\0\s]+$/.test(ext.object) || ext.object.length > MAX_OBJNAME) {
    fail(
      `${what}: object ${JSON.stringify(ext.object)} must be "vmlinux" or a module name (at most ${MAX_OBJNAME} characters, no '.' or ',')`,
    );
  }
  if (ext.object !== 'vmlinux' && ext.object.includes('-')) {
    fail(`${what}: object ${JSON.stringify(ext.object)}: use the kernel's module name, with '_' instead of '-'`);
  }
  if (!Number.isSafeInteger(ext.sympos) || ext.sympos < 0)
    fail(`${what}: sympos ${ext.sympos} is not a non-negative integer`);
}

function checkDeferrable(section: string, r: WriterReloc, ext: KlpExternal, fail: (msg: string) => never): void {
  const where = `relocation ${relocTypeName(r.type)} at ${section}+0x${r.offset.toString(16)} against ${ext.name} (${ext.object})`;
  if (!KERNEL_RELOC_TYPES.has(r.type))
    fail(`${where}: the kernel's apply_relocate_add() does not support this relocation type`);
  if ((ext.relaObject ?? ext.object) === 'vmlinux') return; // applied early, with the ordinary relocations
  const why = LOAD_TIME_SECTIONS.get(section);
  if (why !== undefined) {
    fail(
      `${where} cannot be a livepatch relocation: ${section} is used while the livepatch module loads (${why}), ` +
        `but symbols of ${ext.object} are only resolved when ${ext.object} loads`,
    );
  }
  if (section.startsWith('.init')) {
    fail(
      `${where} cannot be a livepatch relocation: ${section} is freed after the module's init, ` +
        `but symbols of ${ext.object} are only resolved when ${ext.object} loads`,
    );
  }
}
