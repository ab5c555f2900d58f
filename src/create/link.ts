import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseUnifiedZeroHunks } from '../analyze/lines.js';
import { readObjectCode, type ObjectCode } from '../analyze/objdiff.js';
import {
  loadSymbolIndex,
  locateSymbol,
  objectLayout,
  objectReferences,
  type CodeReferences,
  type DataLayout,
  type SymbolIndex,
} from '../analyze/symbols.js';
import { parseElf } from '../elf/elf64.js';
import { ADDRESS_PREFIX, TARGET_MODULE } from '../emit/emit.js';
import { isNumberedLocal, staticLocalBase } from '../gcc/names.js';
import { redirectAddressUses, redirectStandIns } from '../kmod/address-uses.js';
import { dropModuleTracepoints } from '../kmod/inert-tracepoints.js';
import { klpConvert } from '../kmod/klp-convert.js';
import { sourceLines, type CodePlace } from '../kmod/source-lines.js';
import { redirectStaticLocals, staticLocalsOf } from '../kmod/static-locals.js';
import { readSymvers } from '../kmod/symvers.js';
import { compileArgv, compileCommand } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import { KlpgenError } from '../util/errors.js';
import { run } from '../util/exec.js';
import type { WorkLayout } from '../util/layout.js';
import { refuse } from '../util/refusal.js';
import { checkKlpSymbols } from '../verify/verify.js';
import { indexModules, moduleKey } from '../vm/initramfs.js';
import type { TuBuild } from './build.js';
import type { FixPlan } from './plan.js';

/**
 * create's link stage, on the verified module: static locals tied to the running kernel's
 * instances, addresses of copied helpers and static stand-ins made the kernel's, every other
 * undefined symbol resolved (exported, or a KLP relocation with its sympos), klp-convert, and
 * the `.klp.sym` names checked against that resolution before the module is written.
 */
export interface LinkedModule {
  /** Where the module was written. */
  out: string;
  resolution: Resolution[];
  /** How each static local (and address, stand-in, tracepoint) of the new code was tied to the kernel. */
  staticNotes: string[];
}

export async function linkModule(
  target: TargetManifest,
  plan: FixPlan,
  tus: TuBuild[],
  ko: string,
  outPath: string | undefined,
): Promise<LinkedModule> {
  const { layout, files, stem } = plan;
  const kmodDir = layout.kmodDir();
  const objName = (cName: string) => cName.replace(/\.c$/, '.o');
  // Static locals: where the original function has the same one, the new code must use the
  // running kernel's instance (its state carries over); a new one starts fresh, as in the fix.
  const staticNotes: string[] = [];
  const redirects: { from: string; to: string }[] = [];
  /** Undefined symbols a redirect adds, with the TU whose names they are. */
  const redirectedIn = new Map<string, TuBuild>();
  const locals = staticLocalsOf(await readFile(ko), ko);
  for (const l of locals) {
    const owner = tuOfFunctions(tus, l.owners);
    const where = owner?.file ?? files.join(', ');
    if (!owner) refuse('static-local', where, `static local ${l.name} is used by functions of several files`);
    if (locals.filter((x) => x.name === l.name).length > 1) {
      refuse('static-local', where, `two static locals named ${l.name} in the module`);
    }
    const base = staticLocalBase(l.name);
    const owners = l.owners.map((fn) => owner.emitted.copied.find((c) => c.as === fn)?.name ?? fn);
    const same = (raw: string) => isNumberedLocal(raw) && staticLocalBase(raw) === base;
    // A function the module carries unchanged (a helper copy) refers to the original's static at the
    // same offset; otherwise the original functions' statics of that name are the candidates.
    const unchanged = new Set(
      owner.emitted.copied
        .filter((c) => c.as === c.name && !(owner.report?.codeChanged ?? []).some((x) => x.name === c.name))
        .map((c) => c.name),
    );
    const atSameOffset = new Set(
      l.references
        .filter((r) => unchanged.has(r.fn))
        .flatMap((r) =>
          (owner.origCode.functions.get(r.fn)?.relocs ?? [])
            .filter((x) => x.offset === r.offset && same(x.raw))
            .map((x) => x.raw),
        ),
    );
    let found = atSameOffset.size
      ? atSameOffset
      : new Set(
          owners.flatMap((fn) => (owner.origCode.functions.get(fn)?.relocs ?? []).map((r) => r.raw).filter(same)),
        );
    // An owner inlined everywhere in the original: its static is then the only one of that name.
    if (found.size === 0) found = new Set([...owner.origCode.data.keys()].filter(same));
    // Several of that name (two WARN_ONCEs, two printk_ratelimited): the one whose references
    // come from the same source lines. The analysis' original is compiled with the patched
    // file's line numbers outside the hunks, so an unchanged line reads the same in both.
    let fresh = false;
    // Two of the module's statics of this name in one function (a ratelimit the fix adds beside
    // the one it had): one candidate does not make both the kernel's; their lines decide here too.
    const sameNameHere = locals.some(
      (x) => x !== l && staticLocalBase(x.name) === base && x.owners.some((fn) => l.owners.includes(fn)),
    );
    let unresolved = found.size > 1;
    if (found.size > 1 || (found.size === 1 && sameNameHere)) {
      // Extracted code has no debug lines of its own: its lines are the patched build's, at the same offsets.
      const lineObject = owner.extracted ? owner.patchedObject : ko;
      const lineRefs = owner.extracted
        ? l.references.map((r) => ({
            fn: owner.emitted.copied.find((c) => c.as === r.fn)?.name ?? r.fn,
            offset: r.offset,
          }))
        : l.references;
      const byLine = await sameLineStatic(
        lineObject,
        lineRefs,
        owner.originalObject,
        owner.origCode,
        found,
        { [owner.cName]: basename(owner.file) },
        basename(owner.file),
        await addedLines(target.paths.source, layout, owner.file),
      );
      if (byLine === 'fresh') fresh = true;
      else if (byLine) found = new Set([byLine]);
      unresolved = byLine === undefined;
    }
    if (fresh) {
      staticNotes.push(
        `static local ${base} of ${owners.join(', ')}: a once flag or ratelimit written on lines the fix adds, used by no original line: a fresh instance`,
      );
      continue;
    }
    if (unresolved) {
      refuse(
        'static-local',
        owner.file,
        `static local ${base} of ${owners.join(', ')} matches ${[...found].join(', ')} in the original build${found.size === 1 ? `, which the module's other ${base} may be` : ''}`,
        owners[0],
      );
    }
    const to = [...found][0];
    if (to) {
      redirects.push({ from: l.name, to });
      redirectedIn.set(to, owner);
      staticNotes.push(`static local ${base} of ${owners.join(', ')}: the running kernel's ${to}`);
    } else {
      staticNotes.push(`static local ${base} of ${owners.join(', ')}: new in the fix, a fresh instance`);
    }
  }
  const withLocals = redirectStaticLocals(await readFile(ko), redirects, ko);
  // Addresses of copied helpers are the running kernel's functions (calls may reach the copies).
  const addressed = redirectAddressUses(
    withLocals,
    [...new Set(tus.flatMap((t) => t.emitted.kernelAddressed))],
    ADDRESS_PREFIX,
    ko,
  );
  for (const a of addressed.redirects)
    staticNotes.push(
      `address of ${a.name} (${a.moved.length} use${a.moved.length === 1 ? '' : 's'}): the running kernel's function, the module's copy is only called`,
    );
  // Static variables declared static in the module are stand-ins: their references become the kernel's.
  const standIns = redirectStandIns(
    addressed.ko,
    [...new Set(tus.flatMap((t) => t.emitted.kernelData))],
    ADDRESS_PREFIX,
    ko,
  );
  for (const [n, count] of standIns.moved)
    staticNotes.push(
      `static variable ${n}: declared static as the patched build saw it; its ${count} reference${count === 1 ? '' : 's'} are the running kernel's`,
    );
  const built = standIns.ko;

  // A module's statics are placed by their neighbours when its symbols carry no file names:
  // the analysis' objects have a section per variable, so the layout is read off a build of
  // the file as the kernel built it (one .data, as in the running module).
  const layouts = new Map<string, DataLayout>();
  const codeRefs = new Map<string, CodeReferences>();
  for (const t of tus) {
    if (t.object === 'vmlinux') continue;
    const cmd = await compileCommand(target, t.file);
    const obj = join(layout.objects(t.file).original, 'as-built.o');
    const argv = compileArgv(cmd, { output: obj });
    const r = await run(argv[0] as string, argv.slice(1), { cwd: cmd.cwd });
    if (r.code !== 0) continue;
    const code = readObjectCode(parseElf(await readFile(obj), obj));
    layouts.set(t.file, objectLayout(code));
    codeRefs.set(t.file, objectReferences(code));
  }

  // Symbols the running kernel does not export become KLP relocations (klp-convert).
  const resolution = resolveUndefined(
    target,
    built,
    ko,
    tus,
    (t) => join(kmodDir, objName(t.cName)),
    redirectedIn,
    layouts,
    codeRefs,
  );
  // Tracepoints of a module stay inert in the new code (kpatch does the same): their jump
  // labels and static calls could not be set up when the livepatch loads.
  const moduleTracepoints = new Set(
    resolution
      .filter(
        (r) =>
          r.resolution === 'klp' &&
          (r.relaObject ?? r.object) !== 'vmlinux' &&
          /^(__tracepoint_|__SCK__tp_func_)/.test(r.name),
      )
      .map((r) => r.name),
  );
  const inert = dropModuleTracepoints(built, moduleTracepoints, ko);
  for (const name of [...inert.dropped.keys()].filter((n) => n.startsWith('__tracepoint_')).sort()) {
    staticNotes.push(
      `tracepoint ${name.slice('__tracepoint_'.length)} of ${resolution.find((r) => r.name === name)?.object}: inert in the new code (its key is in a module the livepatch may load before)`,
    );
  }
  let converted: Buffer;
  try {
    converted = klpConvert(
      inert.ko,
      resolution
        .filter((r) => r.resolution === 'klp')
        .map((r) => ({
          name: r.name,
          object: r.object as string,
          sympos: r.sympos as number,
          ...(r.target ? { target: r.target } : {}),
          ...(r.relaObject ? { relaObject: r.relaObject } : {}),
        })),
      ko,
    );
  } catch (e) {
    // A reference the kernel cannot defer (a jump label or tracepoint of a module object) is a refusal.
    if (e instanceof KlpgenError && /cannot be a livepatch relocation/.test(e.message)) {
      refuse('unresolvable-reference', files.join(', '), e.message.replace(/^.*?: relocation/, 'relocation'));
    }
    throw e;
  }
  const klpProblems = checkKlpSymbols(
    converted,
    resolution
      .filter((r) => r.resolution === 'klp')
      .map((r) => ({ object: r.object as string, name: r.target ?? r.name, sympos: r.sympos as number })),
    ko,
  );
  if (klpProblems.length)
    throw new KlpgenError(
      `the livepatch's KLP symbols do not verify:\n${klpProblems.map((p) => `  ${p}`).join('\n')}`,
      3,
    );
  const out = resolve(outPath ?? `livepatch-${stem}.ko`);
  await writeFile(join(kmodDir, `livepatch-${stem}.klp.ko`), converted);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, converted);
  return { out, resolution, staticNotes };
}

export interface Resolution {
  name: string;
  resolution: 'exported' | 'klp';
  object?: string;
  sympos?: number;
  target?: string;
  relaObject?: string;
}

/**
 * Of the original's statics `candidates`, the one whose code references come from the source
 * lines (with their inlining chains) the module's references come from; undefined when none
 * or several do, or a line is unknown.
 */
async function sameLineStatic(
  ko: string,
  references: { fn: string; offset: number }[],
  originalObject: string,
  origCode: ObjectCode,
  candidates: Set<string>,
  fileNames: Record<string, string>,
  tuBase: string,
  added: Set<number>,
): Promise<string | 'fresh' | undefined> {
  const elf = parseElf(await readFile(ko), ko);
  const symbols = elf.symbols();
  const modulePlaces: CodePlace[] = [];
  for (const r of references) {
    const f = symbols.find((x) => x.name === r.fn && x.type === 2 && x.shndx > 0 && x.shndx < 0xff00);
    const sec = f ? elf.sections[f.shndx] : undefined;
    if (!f || !sec) return undefined;
    modulePlaces.push({ section: sec.name, offset: Number(f.value) + r.offset });
  }
  // (GCC names a .cold part's lines after the module's own file, though numbered by its #line.)
  const ours = new Set(
    (await sourceLines(ko, modulePlaces)).map((chain) =>
      chain
        .split('<')
        .map((c) => {
          const [f, n] = c.split(':') as [string, string];
          return `${fileNames[f] ?? f}:${n}`;
        })
        .join('<'),
    ),
  );
  if (ours.size === 0 || ours.has('?')) return undefined;
  const places: { name: string; place: CodePlace }[] = [];
  for (const f of origCode.functions.values()) {
    for (const r of f.relocs)
      if (candidates.has(r.raw))
        places.push({ name: r.raw, place: { section: f.section, offset: f.offset + r.offset } });
  }
  const lines = await sourceLines(
    originalObject,
    places.map((p) => p.place),
  );
  const matching = new Set(places.filter((p, i) => ours.has(lines[i] as string)).map((p) => p.name));
  // The .c line each of our references is written on (the outermost of its chain in the .c).
  const written = [...ours].map((chain) =>
    Number(
      chain
        .split('<')
        .filter((c) => c.startsWith(`${tuBase}:`))
        .pop()
        ?.split(':')[1] ?? NaN,
    ),
  );
  // Only a static that holds no state worth keeping (a once flag, a ratelimit, a lockdep key:
  // kpatch never correlates those either) may start fresh; a counter written on a changed line
  // may be the running kernel's, and is refused rather than guessed.
  const stateless = /^(_rs|__already_done|__print_once|__warned|__key|__func__|__FUNCTION__|CSWTCH|descriptor)$/.test(
    staticLocalBase(candidates.values().next().value ?? ''),
  );
  // The innermost .c line is where the static itself is written (a ratelimited print the fix adds
  // in a helper inlined into the replaced function): added there, it is new too.
  const writtenInside = [...ours].map((chain) =>
    Number(
      chain
        .split('<')
        .find((c) => c.startsWith(`${tuBase}:`))
        ?.split(':')[1] ?? NaN,
    ),
  );
  if (
    matching.size === 0 &&
    stateless &&
    written.every((n, i) => added.has(n) || added.has(writtenInside[i] as number))
  )
    return 'fresh';
  if (matching.size === 0) {
    // Inlined differently (the original inlined the owner into its caller, the patched build did
    // not): a static is one object per definition, so the line it is written on, the innermost
    // of the chain, names it, whatever it was inlined into.
    const innermost = (chain: string) => chain.split('<')[0] as string;
    const ourSites = new Set([...ours].map(innermost));
    const bySite = new Set(places.filter((p, i) => ourSites.has(innermost(lines[i] ?? ''))).map((p) => p.name));
    if (bySite.size === 1) {
      const [name] = bySite as Set<string>;
      const itsSites = new Set(places.map((p, i) => (p.name === name ? innermost(lines[i] ?? '') : undefined)));
      if ([...ourSites].every((site) => itsSites.has(site))) return name;
    }
    return undefined;
  }
  if (matching.size !== 1) return undefined;
  const [name] = matching;
  // Every line of ours is one of its lines: not a partial overlap with another static's.
  const its = new Set(places.map((p, i) => (p.name === name ? lines[i] : undefined)).filter((x) => x !== undefined));
  return [...ours].every((k) => its.has(k)) ? name : undefined;
}

/** Line numbers of the patched file that the fix adds or rewrites. */
async function addedLines(sourceRoot: string, layout: WorkLayout, file: string): Promise<Set<number>> {
  const r = await run('diff', ['-U0', join(sourceRoot, file), join(layout.sources('patched'), file)]);
  if (r.code > 1) throw new KlpgenError(`diff failed: ${r.stderr.trim()}`);
  const out = new Set<number>();
  for (const h of parseUnifiedZeroHunks(r.stdout))
    for (let n = h.newStart; n < h.newStart + h.newLines; n++) out.add(n);
  return out;
}

/** The TU whose new code all these module functions are, if one. */
function tuOfFunctions(tus: TuBuild[], functions: string[]): TuBuild | undefined {
  if (tus.length === 1) return tus[0];
  // Functions the module has beyond the copies (a header's inline function kept out of line) tell nothing.
  const owners = new Set(
    functions.map((fn) => tus.find((t) => t.emitted.copied.some((c) => c.as === fn))).filter((t) => t !== undefined),
  );
  const [only] = owners;
  return owners.size === 1 ? only : undefined;
}

/** The modules a target module depends on (its .modinfo `depends=`), by moduleKey. */
function moduleDepends(target: TargetManifest, module: string): Set<string> {
  const ko = indexModules(target.paths.modules).get(moduleKey(module));
  if (!ko) return new Set();
  const elf = parseElf(readFileSync(ko), ko);
  const info = elf.sections.find((s) => s.name === '.modinfo');
  const text = info ? elf.sectionData(info).toString('latin1') : '';
  const depends = /(?:^|\0)depends=([^\0]*)/.exec(text)?.[1] ?? '';
  return new Set(depends.split(',').filter(Boolean).map(moduleKey));
}

/** Undefined symbols of an object file. */
function undefinedIn(path: string): Set<string> {
  const elf = parseElf(readFileSync(path), path);
  return new Set(
    elf
      .symbols()
      .filter((s) => s.shndx === 0 && s.name && s.type !== 4)
      .map((s) => s.name),
  );
}

/**
 * Every undefined symbol of the built module: exported ones (Module.symvers)
 * stay ordinary; the rest must be in the running kernel (the patched module,
 * then vmlinux), found with their sympos like the replaced functions, in the
 * context of the TU that names them. A name that means different symbols in
 * two TUs cannot be one relocation target: refused.
 */
function resolveUndefined(
  target: TargetManifest,
  ko: Buffer,
  koPath: string,
  tus: TuBuild[],
  objectOfTu: (t: TuBuild) => string,
  redirectedIn: Map<string, TuBuild>,
  layouts: ReadonlyMap<string, DataLayout> = new Map(),
  codeRefs: ReadonlyMap<string, CodeReferences> = new Map(),
): Resolution[] {
  const exported = readSymvers(target.paths.moduleSymvers);
  const elf = parseElf(ko, koPath);
  const vmlinux = loadSymbolIndex(target.paths.vmlinux, 'vmlinux', true);
  const contexts = tus.map((t) => {
    const indexes: SymbolIndex[] = [];
    if (t.object !== 'vmlinux') {
      const modKo = indexModules(target.paths.modules).get(moduleKey(t.object));
      if (modKo) indexes.push(loadSymbolIndex(modKo, t.object, false));
    }
    indexes.push(vmlinux);
    const tuLocals = new Set([...t.origCode.functions.values()].filter((f) => f.bind === 'local').map((f) => f.name));
    const layout = layouts.get(t.file) ?? objectLayout(t.origCode);
    const references = codeRefs.get(t.file) ?? objectReferences(t.origCode);
    return { tu: t, indexes, tuLocals, layout, references, undefinedNames: undefinedIn(objectOfTu(t)) };
  });
  const out: Resolution[] = [];
  const missing: string[] = [];
  for (const s of elf.symbols()) {
    if (s.shndx !== 0 || !s.name || s.type === 4) continue;
    // A symbol the patched module itself exports is not there until that module loads, which may
    // be after the livepatch: a KLP relocation, resolved when it does (as for its local symbols).
    const exporter = exported.get(s.name)?.object;
    const ownExport =
      exporter !== undefined &&
      contexts.some((c) => c.tu.object !== 'vmlinux' && moduleKey(c.tu.object) === moduleKey(exporter));
    // An export of a module the patched module depends on: loaded before it, but perhaps never
    // (dell_wmi's dell-smbios on other hardware). An ordinary reference would make the livepatch
    // depend on it and fail to load there; resolved when the patched module loads, it cannot.
    // (Also an export of a patched module used by new code of another patched module that
    // depends on it: vsock's vsock_remove_sock in vmw_vsock_virtio_transport_common.)
    const referrers = contexts.filter((c) => c.undefinedNames.has(s.name));
    const otherUsers = ownExport ? referrers.filter((c) => moduleKey(c.tu.object) !== moduleKey(exporter)) : [];
    const onlyOthers = otherUsers.length > 0 && otherUsers.length === referrers.length;
    const dependent =
      exporter === undefined || exporter === 'vmlinux' || (ownExport && !onlyOthers)
        ? undefined
        : (ownExport ? otherUsers : contexts).find(
            (c) => c.tu.object !== 'vmlinux' && moduleDepends(target, c.tu.object).has(moduleKey(exporter)),
          );
    if (dependent) {
      out.push({
        name: s.name,
        resolution: 'klp',
        object: moduleKey(exporter as string),
        sympos: 0,
        relaObject: dependent.tu.object,
      });
      continue;
    }
    if ((exported.has(s.name) && !ownExport) || s.name === '__this_module') {
      out.push({ name: s.name, resolution: 'exported' });
      continue;
    }
    const users = contexts.filter((c) => c.undefinedNames.has(s.name) || redirectedIn.get(s.name) === c.tu);
    if (s.name === TARGET_MODULE) {
      // THIS_MODULE of a module TU's new code: the patched module's own struct module.
      const objects = new Set(users.map((c) => c.tu.object));
      if (objects.size !== 1 || objects.has('vmlinux'))
        refuse(
          'unresolvable-reference',
          users.map((c) => c.tu.file).join(', '),
          'THIS_MODULE of code in several modules',
        );
      out.push({
        name: s.name,
        resolution: 'klp',
        object: [...objects][0] as string,
        sympos: 0,
        target: '__this_module',
      });
      continue;
    }
    const found = new Map<string, Resolution>();
    // The running kernel's copy of a function the module also has a copy of (for inlining).
    const real = s.name.startsWith(ADDRESS_PREFIX) ? s.name.slice(ADDRESS_PREFIX.length) : undefined;
    for (const c of users.length ? users : contexts) {
      for (const index of c.indexes) {
        const loc = locateSymbol(index, real ?? s.name, c.tu.file, c.tuLocals, c.layout, c.references);
        if (loc.found) {
          const r: Resolution = {
            name: s.name,
            resolution: 'klp',
            object: index.object,
            sympos: loc.sympos,
            ...(real ? { target: real } : {}),
          };
          found.set(`${r.object},${r.sympos}`, r);
          break;
        }
      }
    }
    if (found.size > 1) {
      refuse(
        'unresolvable-reference',
        users.map((c) => c.tu.file).join(', '),
        `${s.name} names a different symbol in each of these files`,
      );
    }
    const [r] = found.values();
    if (r) out.push(r);
    else missing.push(s.name);
  }
  if (missing.length)
    throw new KlpgenError(
      `the livepatch needs symbols the running kernel does not have, and no file the patches change defines them: ${missing.join(', ')}`,
    );
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
