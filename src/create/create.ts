import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { analyze, type AnalysisReport, type ReplaceEntry, type TuReport } from '../analyze/analyze.js';
import { buildModel, type TuModel } from '../frontend/model.js';
import { parseElf } from '../elf/elf64.js';
import { hasFentry, readObjectCode, type ObjectCode } from '../analyze/objdiff.js';
import { loadSymbolIndex, locateSymbol, objectLayout, objectReferences, type CodeReferences, type DataLayout, type SymbolIndex } from '../analyze/symbols.js';
import { klpConvert } from '../kmod/klp-convert.js';
import { readSymvers } from '../kmod/symvers.js';
import { redirectStaticLocals, staticLocalsOf } from '../kmod/static-locals.js';
import { redirectAddressUses, redirectStandIns } from '../kmod/address-uses.js';
import { sourceLines, type CodePlace } from '../kmod/source-lines.js';
import { dropModuleTracepoints } from '../kmod/inert-tracepoints.js';
import { indexModules, moduleKey } from '../vm/initramfs.js';
import { checkKlpSymbols, formatVerification, verify, type Verification } from '../verify/verify.js';
import { ADDRESS_PREFIX, emitFunctions, emitScaffolding, importedNamespaces, PREFIX, TARGET_MODULE, type EmittedFunctions } from '../emit/emit.js';
import { INLINING_TO, ipaClonesDumpPath, readIpaClones } from '../analyze/ipa-clones.js';
import { parseUnifiedZeroHunks } from '../analyze/lines.js';
import { compileArgv, compileCommand, objectOf } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import { makeEnv } from '../target/setup.js';
import { compilerDiagnostics } from '../kmod/build.js';
import { makeWords, REFERENCE_TU, tuFlags, type TuFlags } from '../kmod/flags.js';
import { KlpgenError } from '../util/errors.js';
import { RefusedError, refuse } from '../util/refusal.js';
import { run } from '../util/exec.js';
import { extractFunctions, type ExtractRefusal, type Extracted } from '../extract/extract.js';
import { info, timed } from '../util/progress.js';
import { isNumberedLocal, staticLocalBase } from '../gcc/names.js';

/**
 * `klpgen create`: analyze → emit → build, in numbered stage dirs beside
 * the analysis' (1-sources, 2-objects, 3-analysis):
 *   4-source/  livepatch-NAME.c and its Kbuild file
 *   5-kmod/    the module build, before and after KLP relocations
 */
export interface CreateOptions {
  patches: string[];
  workDir: string;
  name: string;
  out?: string;
  replace: boolean;
  /** Write the module even when it does not verify (the report and stderr say so). */
  allowUnverified?: boolean;
  /** Compile the emitted C instead of taking the functions from the patched build's object. */
  fromSource?: boolean;
}

/** How one TU's new functions were made. */
export interface CodeOrigin {
  file: string;
  how: 'extracted' | 'compiled-from-source';
  /** Why extraction was not used for it. */
  refusal?: ExtractRefusal;
  /** Special-section entries carried with extracted functions, by section. */
  specialEntries?: Record<string, number>;
  /** Data the extracted functions carry. */
  data?: string[];
}

export interface CreateReport {
  name: string;
  module: string;
  /** The first file of new functions (of `sources`, one per TU). */
  source: string;
  sources: string[];
  analysis: AnalysisReport;
  emitted: {
    externalized: { name: string; kind: string; file: string }[];
    copied: { name: string; as: string; why: string; file: string; made: CodeOrigin['how'] }[];
  };
  /** Per TU, whether its functions are the patched build's object code or compiled from the emitted C. */
  code: CodeOrigin[];
  /** Undefined symbols of the built module and how each is resolved. */
  symbols: { name: string; resolution: 'exported' | 'klp'; object?: string; sympos?: number }[];
  /** How each static local of the new code was tied (or not) to the running kernel. */
  staticLocals: string[];
  verification: Verification;
  workDir: string;
}

export function moduleName(name: string): string {
  const n = name.replace(/[^A-Za-z0-9_]/g, '_');
  if (!/^[A-Za-z_]/.test(n)) throw new KlpgenError(`--name ${name}: not a valid module name`);
  // The module is livepatch_NAME, and the kernel keeps 55 characters of a module's name.
  if (n.length > 45) throw new KlpgenError(`--name ${name}: too long (livepatch_NAME must fit in 55 characters)`);
  return n;
}

export async function create(target: TargetManifest, o: CreateOptions): Promise<CreateReport> {
  const workDir = resolve(o.workDir);
  const name = moduleName(o.name);
  const report = await timed('analyze', () => analyze(target, { patches: o.patches, workDir }));
  if (!report.ok) {
    throw new RefusedError(report.refusals);
  }
  if (report.mustReplace.length === 0) throw new KlpgenError('the patches change no running code: there is nothing to livepatch');
  const files = [...new Set(report.mustReplace.map((e) => e.file))].sort();
  const stem = name.replace(/_/g, '-');
  const scaffoldingFile = `${stem}-klp.c`;

  // Two TUs that replace functions of the same name (static ones, or a header's) need new names apart.
  const seen = new Map<string, number>();
  for (const e of report.mustReplace) seen.set(e.symbol, (seen.get(e.symbol) ?? 0) + 1);
  const clash = new Set([...seen].filter(([, n]) => n > 1).map(([s]) => s));
  const cNames = uniqueFileNames(stem, files);

  // What each TU's emission needs, read once.
  const reference = await compileCommand(target, REFERENCE_TU);
  const inputs: TuInput[] = [];
  for (const file of files) {
    const dirs = tuDirs(workDir, file);
    const patchedText = await readFile(join(workDir, '1-sources', 'patched', file), 'utf8');
    const preprocessed = await readFile(join(dirs.patched, `${dirs.base}.i`), 'latin1');
    const model = buildModel({ preprocessed, file, sourceText: patchedText, sourceRoot: join(workDir, '1-sources', 'patched') });
    const cmd = await compileCommand(target, file);
    const { modName, isModule } = objectOf(cmd);
    const originalObject = join(dirs.original, `${dirs.base}.o`);
    const patchedObject = join(dirs.patched, `${dirs.base}.o`);
    const entries = report.mustReplace.filter((e) => e.file === file);
    const cName = cNames.get(file) as string;
    inputs.push({
      file, cName, modName, isModule, flags: tuFlags(cmd, reference), patchedText, preprocessed, model, entries, originalObject, patchedObject,
      origCode: readObjectCode(parseElf(await readFile(originalObject), originalObject)),
      patchedCode: readObjectCode(parseElf(await readFile(patchedObject), patchedObject)),
      patchedInlined: inlinedInto(patchedObject, join(workDir, '1-sources', 'patched', file), new Set(entries.map((e) => e.symbol))),
      prefix: entries.some((e) => clash.has(e.symbol)) ? `livepatch_${cName.slice(stem.length + 1, -2).replace(/[^A-Za-z0-9_]/g, '_')}_` : PREFIX,
    });
  }

  const srcDir = join(workDir, '4-source');
  const kmodDir = join(workDir, '5-kmod');
  const objName = (cName: string) => cName.replace(/\.c$/, '.o');
  const overlay = headerOverlay(join(workDir, '1-sources', 'patched'), report.changedHeaders ?? []);
  // "x.h" is looked up beside the .c first (security/selinux/ss/policydb.c's "policydb.h", which
  // no -I names): the module's copy is elsewhere, so that directory is named, the fix's first.
  const quoteDirs = (file: string) => [join(workDir, '1-sources', 'patched', dirname(file)), join(target.paths.source, dirname(file))]
    .filter((d) => existsSync(d)).map((d) => `-iquote ${d}`);
  /** Export namespaces modpost asked for beyond those the original files import. */
  const namespaces: string[] = [];
  /**
   * Local types the new code uses only through expressions (`adev->ip_top->die_kset`, where a
   * header declares the member as a pointer to a struct the .c defines): the model's references
   * do not name them, the compiler's errors do.
   */
  const usedTypes: string[] = [];
  /** Emit, build and verify once, with these same-file helpers copied for what the compiler knows of them. */
  /** Which attempt the module on disk is (each attempt builds into the same directory). */
  let onDisk = { round: -1, linkage: 'callers' as Linkage };
  // The new functions are taken from the patched build's own object where extraction can carry
  // them (their code is then the patched build's by construction); the C is emitted either way.
  const extractions = new Map<string, Extracted | ExtractRefusal>();
  const extractTu = async (i: TuInput, installs: EmittedFunctions['installs']): Promise<Extracted | ExtractRefusal> => {
    const hit = extractions.get(i.file);
    if (hit) return hit;
    const done = await timed(`extract ${i.file}`, () => extractTuFunctions(target, workDir, i, installs, new Set((report.tus.find((t) => t.file === i.file)?.codeChanged ?? []).map((c) => c.name))));
    extractions.set(i.file, done);
    if ('kind' in done) info(`${i.file}: not extracted (${done.kind}: ${done.reason}); its functions are compiled from the emitted C`);
    return done;
  };
  /** TUs whose extracted module code did not verify: built from source after that. */
  const fromSource = new Set<string>(o.fromSource ? files : []);
  const attempt = async (copyForKnowledge: Map<string, Set<string>>, round: number, linkage: Linkage = 'callers'): Promise<Attempt> => {
    onDisk = { round, linkage };
    const tus: TuBuild[] = inputs.map((i) => ({
      file: i.file, cName: i.cName, object: i.entries[0]?.object ?? 'vmlinux',
      originalObject: i.originalObject, patchedObject: i.patchedObject, origCode: i.origCode, patchedCode: i.patchedCode,
      report: report.tus.find((t) => t.file === i.file),
      emitted: emitFunctions({
        report, file: i.file, patchedText: i.patchedText, model: i.model, preprocessed: i.preprocessed, name, modName: i.modName, isModule: i.isModule,
        originalFunctions: new Set(i.origCode.functions.keys()),
        dataSizes: new Map([...i.origCode.data.values()].map((v) => [v.name, v.size])),
        patchedReferences: new Set(i.entries.flatMap((e) => (i.patchedCode.functions.get(e.symbol)?.relocs ?? []).map((r) => r.raw))),
        // (A replaced function's split-off pieces are its code too: `foo.cold` calls what foo calls.)
        patchedPieceReferences: new Set([...i.patchedCode.functions.values()].filter((f) => i.entries.some((e) => f.name === `${e.symbol}.cold`))
          .flatMap((f) => f.relocs.map((r) => r.raw))),
        dataSections: new Map([...i.origCode.data.values()].map((v) => [v.name, v.section])),
        valueTables: new Set([...i.origCode.data.values()].filter((v) => v.bind === 'local' && v.section.startsWith('.rodata') && v.relocs.length === 0).map((v) => v.name)),
        patchedFunctionRefs: new Map([...i.patchedCode.functions.values()].map((f) => [f.name, new Set(f.relocs.map((r) => r.raw))])),
        prefix: i.prefix, scaffoldingFile, cName: i.cName, copyForKnowledge: copyForKnowledge.get(i.file), linkage, alsoNeed: usedTypes, patchedInlined: i.patchedInlined,
      }),
    }));
    const scaffolding = emitScaffolding(name, tus.map((t) => t.cName), tus.flatMap((t) => t.emitted.installs), o.replace,
      [...inputs.flatMap((i) => importedNamespaces(i.patchedText)), ...namespaces]);
    await rm(srcDir, { recursive: true, force: true });
    await mkdir(srcDir, { recursive: true });
    for (const t of tus) await writeFile(join(srcDir, t.cName), t.emitted.source);
    await writeFile(join(srcDir, scaffoldingFile), scaffolding);
    await writeFile(join(srcDir, 'Kbuild'), [
      `obj-m += livepatch-${stem}.o`,
      `livepatch-${stem}-y := ${[...tus.map((t) => objName(t.cName)), objName(scaffoldingFile)].join(' ')}`,
      // Each TU's own flags from its Makefile (its directory for "local.h" includes, ccflags-y,
      // CFLAGS_REMOVE), then function and data sections as in the analysis' patched build,
      // which verification compares with.
      ...inputs.flatMap((i) => [
        `CFLAGS_${objName(i.cName)} += ${[...i.flags.extra, ...quoteDirs(i.file), '-ffunction-sections', '-fdata-sections'].flatMap(makeWords).join(' ')}`,
        ...(i.flags.removed.length ? [`CFLAGS_REMOVE_${objName(i.cName)} += ${i.flags.removed.flatMap(makeWords).join(' ')}`] : []),
      ]),
      '',
    ].join('\n'));

    await rm(kmodDir, { recursive: true, force: true });
    await mkdir(kmodDir, { recursive: true });
    const extractedHere = new Set<string>();
    for (const t of tus) {
      const input = inputs.find((i) => i.file === t.file) as TuInput;
      if (fromSource.has(t.file)) {
        if (!existsSync(processedObjectPath(workDir, t.file))) await processPatched(target, workDir, input);
        continue;
      }
      const x = await extractTu(input, t.emitted.installs);
      if ('kind' in x) continue;
      // Kbuild links a prebuilt object that has no source beside it as it is.
      await writeFile(join(kmodDir, objName(t.cName)), x.object);
      // modpost reads each object's .cmd file (for symbol CRCs): this one exports none.
      await writeFile(join(kmodDir, `.${objName(t.cName)}.cmd`), `cmd_${join(kmodDir, objName(t.cName))} := klpgen extract ${t.file}\n`);
      t.emitted = extractedEmission(t.emitted, x);
      t.extracted = x;
      extractedHere.add(t.cName);
    }
    for (const f of readdirSync(srcDir)) if (!extractedHere.has(f)) await copyFile(join(srcDir, f), join(kmodDir, f));
    const build = await timed(round ? `build module (round ${round + 1})` : 'build module', () => run('make', [
      '-C', target.paths.headers, `M=${kmodDir}`,
      // Kbuild puts NOSTDINC_FLAGS before every other -I: the fix's headers shadow the target's,
      // and the full source's come before the headers package's, whose copies of some headers
      // include files it does not ship (trace/events/dlm.h: "../../../fs/dlm/...").
      `NOSTDINC_FLAGS=-nostdinc ${[...overlay, join(target.paths.source, 'arch/x86/include'), join(target.paths.source, 'include')].map((d) => `-I${d}`).join(' ')}`,
      // Unexported symbols are resolved below by klp-convert, not by modpost.
      'KBUILD_MODPOST_WARN=1',
      // Same inputs, same bytes: the work dir's path must not reach the debug info (also of the .mod.c).
      // The kernel's __FILE__ is relative to its tree ("include/net/sch_generic.h" in a WARN):
      // so are the headers this build finds in the full source or in the fix's changed copies.
      `KCFLAGS=-fdebug-prefix-map=${kmodDir}=livepatch ${[kmodDir, target.paths.source, join(workDir, '1-sources', 'patched')].map((d) => `-fmacro-prefix-map=${d}/=`).join(' ')}`,
      'modules',
    ], { env: makeEnv() }));
    // modpost names an export namespace the new code needs and no original file imported: import it, build again.
    const missingNs = [...`${build.stdout}${build.stderr}`.matchAll(/uses symbol \S+ from namespace (\w+), but does not import it/g)].map((m) => m[1] as string);
    if (build.code !== 0 && missingNs.some((ns) => !namespaces.includes(ns))) {
      namespaces.push(...missingNs.filter((ns) => !namespaces.includes(ns)));
      return attempt(copyForKnowledge, round, linkage);
    }
    // A local struct the new code needs complete: copy it, build again.
    const output = `${build.stdout}${build.stderr}`;
    // (`storage size of 'kattr' isn't known` names the variable: its type is on that line of the .c.)
    const sized = [...output.matchAll(/^([^\s:]+\.c):(\d+):\d+: error: storage size of [‘'](\w+)[’'] isn[’']t known/gm)].flatMap((m) => {
      const text = inputs.find((i) => i.file === m[1])?.patchedText.split('\n')[Number(m[2]) - 1] ?? '';
      const t = new RegExp(`\\b(struct|union|enum)\\s+(\\w+)[\\s*]+${m[3]}\\b`).exec(text);
      return t ? [`${t[1]}:${t[2]}`] : [];
    });
    const incomplete = [...[...output.matchAll(/(?:undefined|incomplete(?: element)?) type [‘'](struct|union|enum) (\w+)[’']/g)].map((m) => `${m[1]}:${m[2]}`), ...sized].filter((k) => !usedTypes.includes(k) && inputs.some((i) => i.model.entities.some((e) => `${e.kind}:${e.name}` === k && e.span.file === i.file)));
    if (build.code !== 0 && incomplete.length) {
      usedTypes.push(...new Set(incomplete));
      info(`the new code needs the complete type of ${[...new Set(incomplete)].join(', ')}: copied, building again`);
      return attempt(copyForKnowledge, round, linkage);
    }
    if (build.code !== 0) {
      return { tus, error: `building the livepatch failed (sources in ${srcDir}):\n${mapDiagnostics(compilerDiagnostics(`${build.stdout}${build.stderr}`), tus)}` };
    }
    const ko = join(kmodDir, `livepatch-${stem}.ko`);
    if (!existsSync(ko)) return { tus, error: `the module build produced no ${basename(ko)}` };

    // Verification: the new functions equal the patched build's, and no changed code is left out.
    const verifications = tus.map((t) => verify({
      moduleObject: join(kmodDir, objName(t.cName)),
      patchedObject: t.patchedObject,
      functions: new Map(t.emitted.copied.map((c) => [c.as, c.name])),
      codeChanged: (t.report?.codeChanged ?? []).map((c) => c.name),
      replaced: new Set(t.emitted.installs.map((e) => e.symbol)),
      coveredByCallers: new Set((t.report?.codeChanged ?? []).map((c) => t.origCode.functions.get(c.name)).filter((f) => f !== undefined && !hasFentry(f)).map((f) => f!.name)),
      ...(existsSync(processedObjectPath(workDir, t.file)) ? { patchedProcessed: processedObjectPath(workDir, t.file) } : {}),
      symbolAliases: new Map([[TARGET_MODULE, '__this_module'], ...t.emitted.externalized.filter((x) => x.name.startsWith(ADDRESS_PREFIX)).map((x) => [x.name, x.name.slice(ADDRESS_PREFIX.length)] as [string, string])]),
    }));
    return { tus, ko, verification: mergeVerifications(verifications, tus.map((t) => t.file)), perTu: verifications };
  };

  // The smallest module first: the running kernel's helpers are called, not copied. When it does
  // not verify, the patched build knew something of the helpers the differing functions call
  // (modref, pure/const, what a callee does with its arguments): copy those too and try again.
  const copyForKnowledge = new Map(files.map((f) => [f, new Set<string>()]));
  const differing = (a: Attempt) => a.verification ? a.verification.functions.filter((f) => !f.equal).length + a.verification.uncovered.length : Infinity;
  // Static functions and variables first stay static where the patched build's compiler saw
  // the same users; when that does not verify, knowledge copies static regardless (the module's
  // callers may teach the compiler nothing more), then everything global.
  const eachLinkage = async (round: number): Promise<{ result: Attempt; linkage: Linkage }> => {
    let best: { result: Attempt; linkage: Linkage } | undefined;
    for (const linkage of ['callers', 'static', 'global'] as const) {
      if (best) info(`${best.result.verification ? `${differing(best.result)} differing` : 'not built'} with ${best.linkage} linkage: trying ${linkage}`);
      let result = await attempt(copyForKnowledge, round, linkage);
      // Extracted code that does not verify (it should by construction) is built from source instead.
      const failing = (result.perTu ?? []).map((v, k) => ({ v, t: result.tus[k] as TuBuild })).filter(({ v, t }) => t.extracted && v.status !== 'passed');
      if (failing.length) {
        for (const { t, v } of failing) {
          fromSource.add(t.file);
          info(`${t.file}: the extracted functions do not verify, compiling them from source:\n${formatVerification(v)}`);
        }
        result = await attempt(copyForKnowledge, round, linkage);
      }
      // Linkage and knowledge copies are choices of the C path: extracted TUs have none to make.
      if (result.tus.every((t) => t.extracted)) return { result, linkage };
      if (!best || differing(result) < differing(best.result)) best = { result, linkage };
      if (result.verification?.status === 'passed') break;
    }
    return best as { result: Attempt; linkage: Linkage };
  };
  let { result, linkage } = await eachLinkage(0);
  if (result.tus.every((t) => t.extracted) && result.verification?.status === 'passed') info('every new function is the patched build\'s own code (extracted)');
  const snapshot = () => new Map([...copyForKnowledge].map(([f, names]) => [f, new Set(names)]));
  let best = { round: 0, differing: differing(result), copies: snapshot(), linkage };
  for (let round = 1; round <= MAX_KNOWLEDGE_ROUNDS && result.verification?.status === 'failed'; round++) {
    let added = 0;
    for (const [file, names] of helpersOfDiffering(result)) {
      const set = copyForKnowledge.get(file) as Set<string>;
      for (const n of names) if (!set.has(n)) { set.add(n); added++; }
    }
    if (added === 0) break;
    info(`the module does not verify: copying ${added} helper${added === 1 ? '' : 's'} the patched build knew the bodies of`);
    const next = await eachLinkage(round);
    if (!next.result.verification) {
      info(`with those copies the module does not build: ${(next.result.error ?? '').split('\n').slice(1, 3).join(' ').trim()}`);
      result = next.result;
      break;
    }
    result = next.result;
    const n = differing(result);
    info(`round ${round + 1}: ${n} function${n === 1 ? '' : 's'} still differ${n === 1 ? 's' : ''}`);
    if (n < best.differing) best = { round, differing: n, copies: snapshot(), linkage: next.linkage };
  }
  // When no attempt verifies, keep the one that proved the most functions (the smaller of equals),
  // rebuilt unless it is the module on disk.
  if (result.verification?.status !== 'passed' && (best.round !== onDisk.round || best.linkage !== onDisk.linkage)) result = await attempt(best.copies, best.round, best.linkage);
  if (!result.verification || !result.ko) throw new KlpgenError(result.error ?? 'the module was not built');
  const { tus, ko, verification } = result;
  info(`built ${ko}`);
  if (verification.status !== 'passed') {
    if (!o.allowUnverified) {
      throw new KlpgenError(`the livepatch does not verify (the module is in ${kmodDir}, not written to the output; --allow-unverified writes it anyway):\n${formatVerification(verification)}`, 3);
    }
    info(`WARNING: the livepatch does not verify; written anyway (--allow-unverified):\n${formatVerification(verification)}`);
  }

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
    const unchanged = new Set(owner.emitted.copied.filter((c) => c.as === c.name && !(owner.report?.codeChanged ?? []).some((x) => x.name === c.name)).map((c) => c.name));
    const atSameOffset = new Set(l.references.filter((r) => unchanged.has(r.fn))
      .flatMap((r) => (owner.origCode.functions.get(r.fn)?.relocs ?? []).filter((x) => x.offset === r.offset && same(x.raw)).map((x) => x.raw)));
    let found = atSameOffset.size ? atSameOffset : new Set(owners.flatMap((fn) => (owner.origCode.functions.get(fn)?.relocs ?? []).map((r) => r.raw).filter(same)));
    // An owner inlined everywhere in the original: its static is then the only one of that name.
    if (found.size === 0) found = new Set([...owner.origCode.data.keys()].filter(same));
    // Several of that name (two WARN_ONCEs, two printk_ratelimited): the one whose references
    // come from the same source lines. The analysis' original is compiled with the patched
    // file's line numbers outside the hunks, so an unchanged line reads the same in both.
    let fresh = false;
    // Two of the module's statics of this name in one function (a ratelimit the fix adds beside
    // the one it had): one candidate does not make both the kernel's; their lines decide here too.
    const sameNameHere = locals.some((x) => x !== l && staticLocalBase(x.name) === base && x.owners.some((fn) => l.owners.includes(fn)));
    let unresolved = found.size > 1;
    if (found.size > 1 || (found.size === 1 && sameNameHere)) {
      // Extracted code has no debug lines of its own: its lines are the patched build's, at the same offsets.
      const lineObject = owner.extracted ? owner.patchedObject : ko;
      const lineRefs = owner.extracted ? l.references.map((r) => ({ fn: owner.emitted.copied.find((c) => c.as === r.fn)?.name ?? r.fn, offset: r.offset })) : l.references;
      const byLine = await sameLineStatic(lineObject, lineRefs, owner.originalObject, owner.origCode, found, { [owner.cName]: basename(owner.file) },
        basename(owner.file), await addedLines(target.paths.source, workDir, owner.file));
      if (byLine === 'fresh') fresh = true;
      else if (byLine) found = new Set([byLine]);
      unresolved = byLine === undefined;
    }
    if (fresh) {
      staticNotes.push(`static local ${base} of ${owners.join(', ')}: a once flag or ratelimit written on lines the fix adds, used by no original line: a fresh instance`);
      continue;
    }
    if (unresolved) {
      refuse('static-local', owner.file, `static local ${base} of ${owners.join(', ')} matches ${[...found].join(', ')} in the original build${found.size === 1 ? `, which the module's other ${base} may be` : ''}`, owners[0]);
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
  const addressed = redirectAddressUses(withLocals, [...new Set(tus.flatMap((t) => t.emitted.kernelAddressed))], ADDRESS_PREFIX, ko);
  for (const a of addressed.redirects) staticNotes.push(`address of ${a.name} (${a.moved.length} use${a.moved.length === 1 ? '' : 's'}): the running kernel's function, the module's copy is only called`);
  // Static variables declared static in the module are stand-ins: their references become the kernel's.
  const standIns = redirectStandIns(addressed.ko, [...new Set(tus.flatMap((t) => t.emitted.kernelData))], ADDRESS_PREFIX, ko);
  for (const [n, count] of standIns.moved) staticNotes.push(`static variable ${n}: declared static as the patched build saw it; its ${count} reference${count === 1 ? '' : 's'} are the running kernel's`);
  const built = standIns.ko;

  // A module's statics are placed by their neighbours when its symbols carry no file names:
  // the analysis' objects have a section per variable, so the layout is read off a build of
  // the file as the kernel built it (one .data, as in the running module).
  const layouts = new Map<string, DataLayout>();
  const codeRefs = new Map<string, CodeReferences>();
  for (const t of tus) {
    if (t.object === 'vmlinux') continue;
    const cmd = await compileCommand(target, t.file);
    const obj = join(tuDirs(workDir, t.file).original, 'as-built.o');
    const argv = compileArgv(cmd, { output: obj });
    const r = await run(argv[0] as string, argv.slice(1), { cwd: cmd.cwd });
    if (r.code !== 0) continue;
    const code = readObjectCode(parseElf(await readFile(obj), obj));
    layouts.set(t.file, objectLayout(code));
    codeRefs.set(t.file, objectReferences(code));
  }

  // Symbols the running kernel does not export become KLP relocations (klp-convert).
  const resolution = resolveUndefined(target, built, ko, tus, (t) => join(kmodDir, objName(t.cName)), redirectedIn, layouts, codeRefs);
  // Tracepoints of a module stay inert in the new code (kpatch does the same): their jump
  // labels and static calls could not be set up when the livepatch loads.
  const moduleTracepoints = new Set(resolution.filter((r) => r.resolution === 'klp' && (r.relaObject ?? r.object) !== 'vmlinux' && /^(__tracepoint_|__SCK__tp_func_)/.test(r.name)).map((r) => r.name));
  const inert = dropModuleTracepoints(built, moduleTracepoints, ko);
  for (const name of [...inert.dropped.keys()].filter((n) => n.startsWith('__tracepoint_')).sort()) {
    staticNotes.push(`tracepoint ${name.slice('__tracepoint_'.length)} of ${resolution.find((r) => r.name === name)?.object}: inert in the new code (its key is in a module the livepatch may load before)`);
  }
  let converted: Buffer;
  try {
    converted = klpConvert(inert.ko, resolution.filter((r) => r.resolution === 'klp').map((r) => ({
      name: r.name, object: r.object as string, sympos: r.sympos as number, ...(r.target ? { target: r.target } : {}), ...(r.relaObject ? { relaObject: r.relaObject } : {}),
    })), ko);
  } catch (e) {
    // A reference the kernel cannot defer (a jump label or tracepoint of a module object) is a refusal.
    if (e instanceof KlpgenError && /cannot be a livepatch relocation/.test(e.message)) {
      refuse('unresolvable-reference', files.join(', '), e.message.replace(/^.*?: relocation/, 'relocation'));
    }
    throw e;
  }
  const klpProblems = checkKlpSymbols(converted, resolution.filter((r) => r.resolution === 'klp').map((r) => ({ object: r.object as string, name: r.target ?? r.name, sympos: r.sympos as number })), ko);
  if (klpProblems.length) throw new KlpgenError(`the livepatch's KLP symbols do not verify:\n${klpProblems.map((p) => `  ${p}`).join('\n')}`, 3);
  const out = resolve(o.out ?? `livepatch-${stem}.ko`);
  await writeFile(join(kmodDir, `livepatch-${stem}.klp.ko`), converted);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, converted);
  return {
    name, module: out, source: join(srcDir, tus[0]?.cName as string), sources: tus.map((t) => join(srcDir, t.cName)), analysis: report,
    emitted: {
      externalized: tus.flatMap((t) => t.emitted.externalized.map((x) => ({ ...x, file: t.file }))),
      copied: tus.flatMap((t) => t.emitted.copied.map((x) => ({ ...x, file: t.file, made: t.extracted ? 'extracted' as const : 'compiled-from-source' as const }))),
    },
    code: tus.map((t) => {
      const x = extractions.get(t.file);
      if (t.extracted) return { file: t.file, how: 'extracted' as const, specialEntries: t.extracted.specialEntries, data: t.extracted.data };
      return { file: t.file, how: 'compiled-from-source' as const, ...(x && 'kind' in x ? { refusal: x } : {}) };
    }),
    symbols: resolution.map((r) => ({ name: r.name, resolution: r.resolution, ...(r.resolution === 'klp' ? { sympos: r.sympos as number, object: r.object } : {}) })),
    staticLocals: staticNotes,
    verification,
    workDir,
  };
}

interface Resolution { name: string; resolution: 'exported' | 'klp'; object?: string; sympos?: number; target?: string; relaObject?: string }

/** One TU of the fix: its builds, and the file of new functions made from it. */
interface TuBuild {
  file: string;
  /** The module's C file for it. */
  cName: string;
  /** The klp_object its functions belong to: 'vmlinux' or a module's name. */
  object: string;
  originalObject: string;
  patchedObject: string;
  origCode: ObjectCode;
  patchedCode: ObjectCode;
  emitted: EmittedFunctions;
  report: TuReport | undefined;
  /** Set when its functions were taken from the patched build's object. */
  extracted?: Extracted;
}

function tuDirs(workDir: string, file: string): { base: string; original: string; patched: string } {
  const dir = join(workDir, '2-objects', file.replace(/\//g, '_').replace(/\.c$/, ''));
  return { base: basename(file, '.c'), original: join(dir, 'original'), patched: join(dir, 'patched') };
}

/**
 * The patched tree's directories that must come before the target's in the
 * module build's include path: for each changed header, its include root
 * (<linux/x.h> is found there first) and its own directory ("x.h").
 */
function headerOverlay(patchedRoot: string, headers: string[]): string[] {
  const roots = ['include', 'include/uapi', 'arch/x86/include', 'arch/x86/include/uapi'];
  const dirs = new Set<string>();
  for (const h of [...headers].sort()) {
    for (const r of roots) if (h.startsWith(`${r}/`)) dirs.add(join(patchedRoot, r));
    dirs.add(join(patchedRoot, dirname(h)));
  }
  return [...dirs];
}

type Linkage = 'callers' | 'static' | 'global';

/** How many times a module that does not verify is rebuilt with more helpers copied. */
const MAX_KNOWLEDGE_ROUNDS = 3;

/** What emission needs of one TU, read once for every attempt. */
interface TuInput {
  file: string;
  isModule: boolean;
  /** Flags its Makefile adds or removes, for the module's compile of it. */
  flags: TuFlags;
  cName: string;
  modName: string;
  patchedText: string;
  preprocessed: string;
  model: TuModel;
  entries: ReplaceEntry[];
  originalObject: string;
  patchedObject: string;
  origCode: ObjectCode;
  patchedCode: ObjectCode;
  /** Functions the patched build inlined into the replaced ones. */
  patchedInlined: Set<string>;
  prefix: string;
}

interface Attempt {
  tus: TuBuild[];
  ko?: string;
  verification?: Verification;
  /** Each TU's verification, in the order of `tus`. */
  perTu?: Verification[];
  error?: string;
}

/**
 * Same-file functions that the patched build's versions of the differing
 * functions call and that the module calls in the running kernel: copying
 * them gives the module's compiler what the patched build's knew.
 */
function helpersOfDiffering(a: Attempt): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const t of a.tus) {
    const copied = new Set(t.emitted.copied.map((c) => c.name));
    const names = new Set<string>();
    const differing = new Set(a.verification?.functions.filter((f) => !f.equal).map((f) => f.of));
    for (const name of differing) {
      if (!copied.has(name)) continue;
      for (const r of t.patchedCode.functions.get(name)?.relocs ?? []) {
        const callee = t.patchedCode.functions.get(r.raw);
        if (callee && !copied.has(callee.name) && t.origCode.functions.has(callee.name)) names.add(callee.name);
      }
    }
    out.set(t.file, names);
  }
  return out;
}

/**
 * Of the original's statics `candidates`, the one whose code references come from the source
 * lines (with their inlining chains) the module's references come from; undefined when none
 * or several do, or a line is unknown.
 */
async function sameLineStatic(ko: string, references: { fn: string; offset: number }[], originalObject: string, origCode: ObjectCode, candidates: Set<string>,
  fileNames: Record<string, string>, tuBase: string, added: Set<number>): Promise<string | 'fresh' | undefined> {
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
  const ours = new Set((await sourceLines(ko, modulePlaces)).map((chain) => chain.split('<').map((c) => {
    const [f, n] = c.split(':') as [string, string];
    return `${fileNames[f] ?? f}:${n}`;
  }).join('<')));
  if (ours.size === 0 || ours.has('?')) return undefined;
  const places: { name: string; place: CodePlace }[] = [];
  for (const f of origCode.functions.values()) {
    for (const r of f.relocs) if (candidates.has(r.raw)) places.push({ name: r.raw, place: { section: f.section, offset: f.offset + r.offset } });
  }
  const lines = await sourceLines(originalObject, places.map((p) => p.place));
  const matching = new Set(places.filter((p, i) => ours.has(lines[i] as string)).map((p) => p.name));
  // The .c line each of our references is written on (the outermost of its chain in the .c).
  const written = [...ours].map((chain) => Number(chain.split('<').filter((c) => c.startsWith(`${tuBase}:`)).pop()?.split(':')[1] ?? NaN));
  // Only a static that holds no state worth keeping (a once flag, a ratelimit, a lockdep key:
  // kpatch never correlates those either) may start fresh; a counter written on a changed line
  // may be the running kernel's, and is refused rather than guessed.
  const stateless = /^(_rs|__already_done|__print_once|__warned|__key|__func__|__FUNCTION__|CSWTCH|descriptor)$/.test(staticLocalBase(candidates.values().next().value ?? ''));
  if (matching.size === 0 && stateless && written.every((n) => added.has(n))) return 'fresh';
  if (matching.size !== 1) return undefined;
  const [name] = matching;
  // Every line of ours is one of its lines: not a partial overlap with another static's.
  const its = new Set(places.map((p, i) => (p.name === name ? lines[i] : undefined)).filter((x) => x !== undefined));
  return [...ours].every((k) => its.has(k)) ? name : undefined;
}

/** Line numbers of the patched file that the fix adds or rewrites. */
async function addedLines(sourceRoot: string, workDir: string, file: string): Promise<Set<number>> {
  const r = await run('diff', ['-U0', join(sourceRoot, file), join(workDir, '1-sources', 'patched', file)]);
  if (r.code > 1) throw new KlpgenError(`diff failed: ${r.stderr.trim()}`);
  const out = new Set<number>();
  for (const h of parseUnifiedZeroHunks(r.stdout)) for (let n = h.newStart; n < h.newStart + h.newLines; n++) out.add(n);
  return out;
}

/** STEM.c for a one-TU fix; STEM-BASE.c per TU otherwise (the path when two bases are equal). */
function uniqueFileNames(stem: string, files: string[]): Map<string, string> {
  if (files.length === 1) return new Map([[files[0] as string, `${stem}.c`]]);
  const base = (f: string) => basename(f, '.c');
  const clashes = (f: string) => files.filter((g) => base(g) === base(f)).length > 1;
  const part = (f: string) => (clashes(f) ? f.replace(/\.c$/, '') : base(f)).replace(/[^A-Za-z0-9_-]/g, '-');
  return new Map(files.map((f) => [f, `${stem}-${part(f)}.c`]));
}

/** The TU whose new code all these module functions are, if one. */
function tuOfFunctions(tus: TuBuild[], functions: string[]): TuBuild | undefined {
  if (tus.length === 1) return tus[0];
  // Functions the module has beyond the copies (a header's inline function kept out of line) tell nothing.
  const owners = new Set(functions.map((fn) => tus.find((t) => t.emitted.copied.some((c) => c.as === fn))).filter((t) => t !== undefined));
  const [only] = owners;
  return owners.size === 1 ? only : undefined;
}

function mergeVerifications(vs: Verification[], files: string[]): Verification {
  if (vs.length === 1) return vs[0] as Verification;
  return {
    status: vs.every((v) => v.status === 'passed') ? 'passed' : 'failed',
    functions: vs.flatMap((v) => v.functions),
    uncovered: vs.flatMap((v, i) => v.uncovered.map((u) => `${files[i]}: ${u}`)),
  };
}

/** Functions the build of `object` inlined into `into` (directly or through other inlined ones): its ipa-clones dump. */
function inlinedInto(object: string, source: string, into: Set<string>): Set<string> {
  const dump = ipaClonesDumpPath(object, source);
  if (!existsSync(dump)) return new Set();
  const inlines = readIpaClones(dump).clones.filter((c) => c.reason === INLINING_TO);
  const out = new Set<string>();
  const hosts = new Set(into);
  for (let grew = true; grew;) {
    grew = false;
    for (const c of inlines) {
      if (hosts.has(c.clone.name) && !out.has(c.origin.name)) {
        out.add(c.origin.name);
        hosts.add(c.origin.name);
        grew = true;
      }
    }
  }
  return out;
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
  return new Set(elf.symbols().filter((s) => s.shndx === 0 && s.name && s.type !== 4).map((s) => s.name));
}

/**
 * Every undefined symbol of the built module: exported ones (Module.symvers)
 * stay ordinary; the rest must be in the running kernel (the patched module,
 * then vmlinux), found with their sympos like the replaced functions, in the
 * context of the TU that names them. A name that means different symbols in
 * two TUs cannot be one relocation target: refused.
 */
function resolveUndefined(
  target: TargetManifest, ko: Buffer, koPath: string, tus: TuBuild[], objectOfTu: (t: TuBuild) => string, redirectedIn: Map<string, TuBuild>,
  layouts: ReadonlyMap<string, DataLayout> = new Map(), codeRefs: ReadonlyMap<string, CodeReferences> = new Map(),
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
    const ownExport = exporter !== undefined && contexts.some((c) => c.tu.object !== 'vmlinux' && moduleKey(c.tu.object) === moduleKey(exporter));
    // An export of a module the patched module depends on: loaded before it, but perhaps never
    // (dell_wmi's dell-smbios on other hardware). An ordinary reference would make the livepatch
    // depend on it and fail to load there; resolved when the patched module loads, it cannot.
    const dependent = exporter === undefined || exporter === 'vmlinux' || ownExport ? undefined
      : contexts.find((c) => c.tu.object !== 'vmlinux' && moduleDepends(target, c.tu.object).has(moduleKey(exporter)));
    if (dependent) {
      out.push({ name: s.name, resolution: 'klp', object: moduleKey(exporter as string), sympos: 0, relaObject: dependent.tu.object });
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
      if (objects.size !== 1 || objects.has('vmlinux')) refuse('unresolvable-reference', users.map((c) => c.tu.file).join(', '), 'THIS_MODULE of code in several modules');
      out.push({ name: s.name, resolution: 'klp', object: [...objects][0] as string, sympos: 0, target: '__this_module' });
      continue;
    }
    const found = new Map<string, Resolution>();
    // The running kernel's copy of a function the module also has a copy of (for inlining).
    const real = s.name.startsWith(ADDRESS_PREFIX) ? s.name.slice(ADDRESS_PREFIX.length) : undefined;
    for (const c of users.length ? users : contexts) {
      for (const index of c.indexes) {
        const loc = locateSymbol(index, real ?? s.name, c.tu.file, c.tuLocals, c.layout, c.references);
        if (loc.found) {
          const r: Resolution = { name: s.name, resolution: 'klp', object: index.object, sympos: loc.sympos, ...(real ? { target: real } : {}) };
          found.set(`${r.object},${r.sympos}`, r);
          break;
        }
      }
    }
    if (found.size > 1) {
      refuse('unresolvable-reference', users.map((c) => c.tu.file).join(', '), `${s.name} names a different symbol in each of these files`);
    }
    const [r] = found.values();
    if (r) out.push(r); else missing.push(s.name);
  }
  if (missing.length) throw new KlpgenError(`the livepatch needs symbols the running kernel does not have: ${missing.join(', ')}`);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Add the original file:line to compiler messages about generated lines. */
function mapDiagnostics(text: string, tus: TuBuild[]): string {
  let mapped = text;
  for (const t of tus) {
    mapped = mapped.replace(new RegExp(`([^\\s:]*${t.cName.replace(/[.-]/g, '\\$&')}):(\\d+):(\\d+):`, 'g'), (m, _f: string, line: string) => {
      const orig = t.emitted.lineMap[Number(line) - 1];
      return orig && orig.line ? `${m} [${orig.file}:${orig.line}]` : m;
    });
  }
  return mapped;
}

/** The patched build of a TU after Kbuild's objtool run, in 4-extract. */
function processedObjectPath(workDir: string, file: string): string {
  return join(workDir, '4-extract', tuKey(file), 'patched.o');
}

/** A stable directory name for one TU's files in a stage dir. */
function tuKey(file: string): string {
  return file.replace(/\//g, '_').replace(/\.c$/, '');
}

/**
 * 4-extract/<tu>/: the patched build's object after the objtool run Kbuild makes for a module
 * object (ORC, static calls, return sites, jump-label nops), and the functions taken from it.
 */
async function extractTuFunctions(target: TargetManifest, workDir: string, i: TuInput, installs: EmittedFunctions['installs'], codeChanged: ReadonlySet<string>): Promise<Extracted | ExtractRefusal> {
  const dir = join(workDir, '4-extract', tuKey(i.file));
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const refused = async (r: ExtractRefusal) => {
    await writeFile(join(dir, 'refusal.json'), `${JSON.stringify(r, null, 2)}\n`);
    return r;
  };
  const processed = await processPatched(target, workDir, i);
  if (typeof processed !== 'string') return refused(processed);
  const x = extractFunctions({
    object: await readFile(processed), source: processed, original: i.origCode, codeChanged, installs,
    isModule: i.isModule, thisModule: TARGET_MODULE, kernelPrefix: ADDRESS_PREFIX,
  });
  if (!x.ok) return refused(x.refusal);
  const { ok: _ok, object, ...rest } = x;
  await writeFile(join(dir, 'extracted.o'), object);
  await writeFile(join(dir, 'extract.json'), `${JSON.stringify(rest, null, 2)}\n`);
  return { object, ...rest };
}

/**
 * The patched build of a TU after the objtool run Kbuild makes of a module object (ORC, static
 * calls, return sites, jump-label nops): what extraction takes from and verify compares with.
 */
async function processPatched(target: TargetManifest, workDir: string, i: TuInput): Promise<string | ExtractRefusal> {
  const processed = processedObjectPath(workDir, i.file);
  await mkdir(dirname(processed), { recursive: true });
  const cmd = await compileCommand(target, i.file);
  const objtool = cmd.post.find((argv) => /(^|\/)objtool$/.test(argv[0] ?? ''));
  if (!objtool) return { kind: 'no-objtool', subject: i.file, reason: 'Kbuild ran no objtool on this object: there is no ORC to carry' };
  await copyFile(i.patchedObject, processed);
  const argv = [...objtool.slice(0, -1), ...(objtool.includes('--module') ? [] : ['--module']), processed];
  const r = await run(argv[0] as string, argv.slice(1), { cwd: cmd.cwd });
  await writeFile(join(dirname(processed), 'objtool.log'), `${argv.join(' ')}\n${r.stdout}${r.stderr}`);
  if (r.code !== 0) {
    await rm(processed, { force: true });
    return { kind: 'no-objtool', subject: i.file, reason: `objtool failed on the patched object: ${r.stderr.trim().split('\n')[0] ?? ''}` };
  }
  return processed;
}

/** What the later stages read of a TU's emission, for its extracted functions. */
function extractedEmission(emitted: EmittedFunctions, x: Extracted): EmittedFunctions {
  return {
    ...emitted,
    copied: x.functions.map((f) => ({ name: f.name, as: f.as, why: f.why })),
    externalized: x.kernelReferences.map((k) => ({ name: k.name, kind: k.kind })),
    // Addresses of carried functions and the kernel's variables are resolved in extraction already.
    kernelAddressed: [],
    kernelData: [],
  };
}
