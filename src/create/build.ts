import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { TuReport } from '../analyze/analyze.js';
import { hasFentry, type ObjectCode } from '../analyze/objdiff.js';
import {
  ADDRESS_PREFIX,
  emitFunctions,
  emitScaffolding,
  importedNamespaces,
  TARGET_MODULE,
  type EmittedFunctions,
} from '../emit/emit.js';
import { extractFunctions, type ExtractRefusal, type Extracted } from '../extract/extract.js';
import { compilerDiagnostics } from '../kmod/build.js';
import { makeWords } from '../kmod/flags.js';
import { compileCommand } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import { makeEnv } from '../target/setup.js';
import { run } from '../util/exec.js';
import type { WorkLayout } from '../util/layout.js';
import { info, timed } from '../util/progress.js';
import { formatVerification, verify, type Verification } from '../verify/verify.js';
import type { FixPlan, TuInput } from './plan.js';
import { readDeclarations, type CallbackKind, type FixDeclarations } from './declarations.js';
import { KlpgenError } from '../util/errors.js';
import { KLPGEN_INCLUDE } from '../util/klpgen-include.js';

/**
 * create's build stage: each TU's new functions extracted from the patched build's object (or,
 * where extraction refuses or does not verify, compiled from the emitted C), linked by Kbuild
 * with the klp_patch scaffolding into 5-kmod, and verified against the patched build. A C-path
 * module that does not verify is rebuilt with other linkage and with the helpers the patched
 * build knew copied, and the best attempt kept.
 */

/** One TU of the fix: its builds, and the file of new functions made from it. */
export interface TuBuild {
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

export type Linkage = 'callers' | 'static' | 'global';

/** How many times a module that does not verify is rebuilt with more helpers copied. */
const MAX_KNOWLEDGE_ROUNDS = 3;

export interface Attempt {
  tus: TuBuild[];
  ko?: string;
  verification?: Verification;
  /** Each TU's verification, in the order of `tus`. */
  perTu?: Verification[];
  error?: string;
}

export class ModuleBuilder {
  /** Export namespaces modpost asked for beyond those the original files import. */
  private readonly namespaces: string[] = [];
  /**
   * Local types the new code uses only through expressions (`adev->ip_top->die_kset`, where a
   * header declares the member as a pointer to a struct the .c defines): the model's references
   * do not name them, the compiler's errors do.
   */
  private readonly usedTypes: string[] = [];
  /** Which attempt the module on disk is (each attempt builds into the same directory). */
  private onDisk = { round: -1, linkage: 'callers' as Linkage };
  /**
   * The new functions are taken from the patched build's own object where extraction can carry
   * them (their code is then the patched build's by construction); the C is emitted either way.
   */
  readonly extractions = new Map<string, Extracted | ExtractRefusal>();
  /** What each TU's fix declares with <klpgen/livepatch.h>, read once from its patched object. */
  private readonly declarations = new Map<string, FixDeclarations>();

  private declarationsOf(i: TuInput): FixDeclarations {
    let d = this.declarations.get(i.file);
    if (!d) {
      d = readDeclarations(i.patchedObject);
      this.declarations.set(i.file, d);
    }
    return d;
  }

  /** TUs built from the emitted C: all with --from-source, else those whose extracted code did not verify. */
  private readonly fromSource: Set<string>;

  constructor(
    private readonly target: TargetManifest,
    private readonly plan: FixPlan,
    private readonly options: { replace: boolean; fromSource?: boolean },
  ) {
    this.fromSource = new Set(options.fromSource ? plan.files : []);
  }

  /** The module that verifies, or the attempt that proved the most functions. */
  async build(): Promise<Attempt> {
    // The smallest module first: the running kernel's helpers are called, not copied. When it does
    // not verify, the patched build knew something of the helpers the differing functions call
    // (modref, pure/const, what a callee does with its arguments): copy those too and try again.
    const copyForKnowledge = new Map(this.plan.files.map((f) => [f, new Set<string>()]));
    const differing = (a: Attempt) =>
      a.verification
        ? a.verification.functions.filter((f) => !f.equal).length + a.verification.uncovered.length
        : Infinity;
    // Static functions and variables first stay static where the patched build's compiler saw
    // the same users; when that does not verify, knowledge copies static regardless (the module's
    // callers may teach the compiler nothing more), then everything global.
    const eachLinkage = async (round: number): Promise<{ result: Attempt; linkage: Linkage }> => {
      let best: { result: Attempt; linkage: Linkage } | undefined;
      for (const linkage of ['callers', 'static', 'global'] as const) {
        if (best)
          info(
            `${best.result.verification ? `${differing(best.result)} differing` : 'not built'} with ${best.linkage} linkage: trying ${linkage}`,
          );
        let result = await this.attempt(copyForKnowledge, round, linkage);
        // Extracted code that does not verify (it should by construction) is built from source instead.
        const failing = (result.perTu ?? [])
          .map((v, k) => ({ v, t: result.tus[k] as TuBuild }))
          .filter(({ v, t }) => t.extracted && v.status !== 'passed');
        if (failing.length) {
          for (const { t, v } of failing) {
            this.fromSource.add(t.file);
            info(
              `${t.file}: the extracted functions do not verify, compiling them from source:\n${formatVerification(v)}`,
            );
          }
          result = await this.attempt(copyForKnowledge, round, linkage);
        }
        // Linkage and knowledge copies are choices of the C path: extracted TUs have none to make.
        if (result.tus.every((t) => t.extracted)) return { result, linkage };
        if (!best || differing(result) < differing(best.result)) best = { result, linkage };
        if (result.verification?.status === 'passed') break;
      }
      return best as { result: Attempt; linkage: Linkage };
    };
    let { result, linkage } = await eachLinkage(0);
    if (result.tus.every((t) => t.extracted) && result.verification?.status === 'passed')
      info("every new function is the patched build's own code (extracted)");
    const snapshot = () => new Map([...copyForKnowledge].map(([f, names]) => [f, new Set(names)]));
    let best = { round: 0, differing: differing(result), copies: snapshot(), linkage };
    for (let round = 1; round <= MAX_KNOWLEDGE_ROUNDS && result.verification?.status === 'failed'; round++) {
      let added = 0;
      for (const [file, names] of helpersOfDiffering(result)) {
        const set = copyForKnowledge.get(file) as Set<string>;
        for (const n of names)
          if (!set.has(n)) {
            set.add(n);
            added++;
          }
      }
      if (added === 0) break;
      info(
        `the module does not verify: copying ${added} helper${added === 1 ? '' : 's'} the patched build knew the bodies of`,
      );
      const next = await eachLinkage(round);
      if (!next.result.verification) {
        info(
          `with those copies the module does not build: ${(next.result.error ?? '').split('\n').slice(1, 3).join(' ').trim()}`,
        );
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
    if (
      result.verification?.status !== 'passed' &&
      (best.round !== this.onDisk.round || best.linkage !== this.onDisk.linkage)
    )
      result = await this.attempt(best.copies, best.round, best.linkage);
    return result;
  }

  private async extractTu(i: TuInput, installs: EmittedFunctions['installs']): Promise<Extracted | ExtractRefusal> {
    const hit = this.extractions.get(i.file);
    if (hit) return hit;
    const codeChanged = new Set(
      (this.plan.report.tus.find((t) => t.file === i.file)?.codeChanged ?? []).map((c) => c.name),
    );
    const done = await timed(`extract ${i.file}`, () =>
      extractTuFunctions(this.target, this.plan.layout, i, installs, codeChanged, [
        ...providedBy(this.plan.inputs, i),
        ...(Object.values(this.declarationsOf(i).callbacks) as string[]),
      ]),
    );
    this.extractions.set(i.file, done);
    if ('kind' in done)
      info(`${i.file}: not extracted (${done.kind}: ${done.reason}); its functions are compiled from the emitted C`);
    return done;
  }

  /** Emit, build and verify once, with these same-file helpers copied for what the compiler knows of them. */
  private async attempt(
    copyForKnowledge: Map<string, Set<string>>,
    round: number,
    linkage: Linkage = 'callers',
  ): Promise<Attempt> {
    const { target } = this;
    const { inputs, report, name, scaffoldingFile, stem, layout } = this.plan;
    const { namespaces, usedTypes } = this;
    const srcDir = layout.sourceDir();
    const kmodDir = layout.kmodDir();
    const objName = (cName: string) => cName.replace(/\.c$/, '.o');
    const overlay = headerOverlay(layout.sources('patched'), report.changedHeaders ?? []);
    // "x.h" is looked up beside the .c first (security/selinux/ss/policydb.c's "policydb.h", which
    // no -I names): the module's copy is elsewhere, so that directory is named, the fix's first.
    const quoteDirs = (file: string) =>
      [join(layout.sources('patched'), dirname(file)), join(target.paths.source, dirname(file))]
        .filter((d) => existsSync(d))
        .map((d) => `-iquote ${d}`);
    this.onDisk = { round, linkage };
    const tus: TuBuild[] = inputs.map((i) => ({
      file: i.file,
      cName: i.cName,
      object: i.entries[0]?.object ?? 'vmlinux',
      originalObject: i.originalObject,
      patchedObject: i.patchedObject,
      origCode: i.origCode,
      patchedCode: i.patchedCode,
      report: report.tus.find((t) => t.file === i.file),
      emitted: emitFunctions({
        report,
        file: i.file,
        patchedText: i.patchedText,
        model: i.model,
        preprocessed: i.preprocessed,
        name,
        modName: i.modName,
        isModule: i.isModule,
        originalFunctions: new Set(i.origCode.functions.keys()),
        dataSizes: new Map([...i.origCode.data.values()].map((v) => [v.name, v.size])),
        patchedReferences: new Set(
          i.entries.flatMap((e) => (i.patchedCode.functions.get(e.symbol)?.relocs ?? []).map((r) => r.raw)),
        ),
        // (A replaced function's split-off pieces are its code too: `foo.cold` calls what foo calls.)
        patchedPieceReferences: new Set(
          [...i.patchedCode.functions.values()]
            .filter((f) => i.entries.some((e) => f.name === `${e.symbol}.cold`))
            .flatMap((f) => f.relocs.map((r) => r.raw)),
        ),
        dataSections: new Map([...i.origCode.data.values()].map((v) => [v.name, v.section])),
        changedData: new Set((report.tus.find((t) => t.file === i.file)?.changedData ?? []).map((d) => d.name)),
        valueTables: new Set(
          [...i.origCode.data.values()]
            .filter((v) => v.bind === 'local' && v.section.startsWith('.rodata') && v.relocs.length === 0)
            .map((v) => v.name),
        ),
        patchedFunctionRefs: new Map(
          [...i.patchedCode.functions.values()].map((f) => [f.name, new Set(f.relocs.map((r) => r.raw))]),
        ),
        prefix: i.prefix,
        scaffoldingFile,
        cName: i.cName,
        copyForKnowledge: copyForKnowledge.get(i.file),
        linkage,
        alsoNeed: usedTypes,
        patchedInlined: i.patchedInlined,
      }),
    }));
    // Callbacks and states the fix declares with <klpgen/livepatch.h>: the code is taken from the
    // patched object, so they need its extraction.
    const callbacks = new Map<string, FixDeclarations['callbacks']>();
    const states: FixDeclarations['states'] = [];
    for (const i of inputs) {
      const d = this.declarationsOf(i);
      if (Object.keys(d.callbacks).length) {
        if (this.fromSource.has(i.file))
          throw new KlpgenError(
            `${i.file}: the fix declares livepatch callbacks (KLPGEN_*_CALLBACK); they are taken from the patched object, which --from-source does not use`,
          );
        const object = i.entries[0]?.object ?? 'vmlinux';
        const have = callbacks.get(object) ?? {};
        for (const [kind, fn] of Object.entries(d.callbacks) as [CallbackKind, string][]) {
          if (have[kind] && have[kind] !== fn)
            throw new KlpgenError(`${i.file}: a second ${kind} callback for ${object} (${have[kind]} and ${fn})`);
          have[kind] = fn;
        }
        callbacks.set(object, have);
      }
      for (const st of d.states) if (!states.some((x) => x.id === st.id)) states.push(st);
    }
    const scaffolding = emitScaffolding(
      name,
      tus.map((t) => t.cName),
      tus.flatMap((t) => t.emitted.installs),
      this.options.replace,
      [...inputs.flatMap((i) => importedNamespaces(i.patchedText)), ...namespaces],
      { callbacks, states },
    );
    await rm(srcDir, { recursive: true, force: true });
    await mkdir(srcDir, { recursive: true });
    for (const t of tus) await writeFile(join(srcDir, t.cName), t.emitted.source);
    await writeFile(join(srcDir, scaffoldingFile), scaffolding);
    await writeFile(
      join(srcDir, 'Kbuild'),
      [
        `obj-m += livepatch-${stem}.o`,
        `livepatch-${stem}-y := ${[...tus.map((t) => objName(t.cName)), objName(scaffoldingFile)].join(' ')}`,
        // <klpgen/livepatch.h>, which the fix's own text may include, after every kernel directory.
        `ccflags-y += -idirafter ${KLPGEN_INCLUDE}`,
        // Each TU's own flags from its Makefile (its directory for "local.h" includes, ccflags-y,
        // CFLAGS_REMOVE), then function and data sections as in the analysis' patched build,
        // which verification compares with.
        ...inputs.flatMap((i) => [
          `CFLAGS_${objName(i.cName)} += ${[...i.flags.extra, ...quoteDirs(i.file), '-ffunction-sections', '-fdata-sections'].flatMap(makeWords).join(' ')}`,
          ...(i.flags.removed.length
            ? [`CFLAGS_REMOVE_${objName(i.cName)} += ${i.flags.removed.flatMap(makeWords).join(' ')}`]
            : []),
        ]),
        '',
      ].join('\n'),
    );

    await rm(kmodDir, { recursive: true, force: true });
    await mkdir(kmodDir, { recursive: true });
    const extractedHere = new Set<string>();
    for (const t of tus) {
      const input = inputs.find((i) => i.file === t.file) as TuInput;
      if (this.fromSource.has(t.file)) {
        if (!existsSync(layout.processedObject(t.file))) await processPatched(target, layout, input);
        continue;
      }
      const x = await this.extractTu(input, t.emitted.installs);
      if ('kind' in x) continue;
      // Kbuild links a prebuilt object that has no source beside it as it is.
      await writeFile(join(kmodDir, objName(t.cName)), x.object);
      // modpost reads each object's .cmd file (for symbol CRCs): this one exports none.
      await writeFile(
        join(kmodDir, `.${objName(t.cName)}.cmd`),
        `cmd_${join(kmodDir, objName(t.cName))} := klpgen extract ${t.file}\n`,
      );
      t.emitted = extractedEmission(t.emitted, x);
      t.extracted = x;
      extractedHere.add(t.cName);
    }
    await writeFile(
      layout.plan(),
      `${JSON.stringify(describeAttempt(this.plan, tus, round, linkage, this.extractions), null, 2)}\n`,
    );
    for (const f of readdirSync(srcDir))
      if (!extractedHere.has(f) && f !== basename(layout.plan())) await copyFile(join(srcDir, f), join(kmodDir, f));
    const build = await timed(round ? `build module (round ${round + 1})` : 'build module', () =>
      run(
        'make',
        [
          '-C',
          target.paths.headers,
          `M=${kmodDir}`,
          // Kbuild puts NOSTDINC_FLAGS before every other -I: the fix's headers shadow the target's,
          // and the full source's come before the headers package's, whose copies of some headers
          // include files it does not ship (trace/events/dlm.h: "../../../fs/dlm/...").
          `NOSTDINC_FLAGS=-nostdinc ${[...overlay, join(target.paths.source, 'arch/x86/include'), join(target.paths.source, 'include')].map((d) => `-I${d}`).join(' ')}`,
          // Unexported symbols are resolved below by klp-convert, not by modpost.
          'KBUILD_MODPOST_WARN=1',
          // Same inputs, same bytes: the work dir's path must not reach the debug info (also of the .mod.c).
          // The kernel's __FILE__ is relative to its tree ("include/net/sch_generic.h" in a WARN):
          // so are the headers this build finds in the full source or in the fix's changed copies.
          `KCFLAGS=-fdebug-prefix-map=${kmodDir}=livepatch ${[kmodDir, target.paths.source, layout.sources('patched')].map((d) => `-fmacro-prefix-map=${d}/=`).join(' ')}`,
          'modules',
        ],
        { env: makeEnv() },
      ),
    );
    // modpost names an export namespace the new code needs and no original file imported: import it, build again.
    const missingNs = [
      ...`${build.stdout}${build.stderr}`.matchAll(/uses symbol \S+ from namespace (\w+), but does not import it/g),
    ].map((m) => m[1] as string);
    if (build.code !== 0 && missingNs.some((ns) => !namespaces.includes(ns))) {
      namespaces.push(...missingNs.filter((ns) => !namespaces.includes(ns)));
      return this.attempt(copyForKnowledge, round, linkage);
    }
    // A local struct the new code needs complete: copy it, build again.
    const output = `${build.stdout}${build.stderr}`;
    // (`storage size of 'kattr' isn't known` names the variable: its type is on that line of the .c.)
    const sized = [
      ...output.matchAll(/^([^\s:]+\.c):(\d+):\d+: error: storage size of [‘'](\w+)[’'] isn[’']t known/gm),
    ].flatMap((m) => {
      const text = inputs.find((i) => i.file === m[1])?.patchedText.split('\n')[Number(m[2]) - 1] ?? '';
      const t = new RegExp(`\\b(struct|union|enum)\\s+(\\w+)[\\s*]+${m[3]}\\b`).exec(text);
      return t ? [`${t[1]}:${t[2]}`] : [];
    });
    const incomplete = [
      ...[...output.matchAll(/(?:undefined|incomplete(?: element)?) type [‘'](struct|union|enum) (\w+)[’']/g)].map(
        (m) => `${m[1]}:${m[2]}`,
      ),
      ...sized,
    ].filter(
      (k) =>
        !usedTypes.includes(k) &&
        inputs.some((i) => i.model.entities.some((e) => `${e.kind}:${e.name}` === k && e.span.file === i.file)),
    );
    if (build.code !== 0 && incomplete.length) {
      usedTypes.push(...new Set(incomplete));
      info(`the new code needs the complete type of ${[...new Set(incomplete)].join(', ')}: copied, building again`);
      return this.attempt(copyForKnowledge, round, linkage);
    }
    if (build.code !== 0) {
      return {
        tus,
        error: `building the livepatch failed (sources in ${srcDir}):\n${mapDiagnostics(compilerDiagnostics(`${build.stdout}${build.stderr}`), tus)}`,
      };
    }
    const ko = join(kmodDir, `livepatch-${stem}.ko`);
    if (!existsSync(ko)) return { tus, error: `the module build produced no ${basename(ko)}` };

    // Verification: the new functions equal the patched build's, and no changed code is left out.
    const verifications = tus.map((t) =>
      verify({
        moduleObject: join(kmodDir, objName(t.cName)),
        patchedObject: t.patchedObject,
        functions: new Map(t.emitted.copied.map((c) => [c.as, c.name])),
        codeChanged: (t.report?.codeChanged ?? []).map((c) => c.name),
        replaced: new Set(t.emitted.installs.map((e) => e.symbol)),
        coveredByCallers: new Set(
          (t.report?.codeChanged ?? [])
            .map((c) => t.origCode.functions.get(c.name))
            .filter((f) => f !== undefined && !hasFentry(f))
            .map((f) => f!.name),
        ),
        ...(existsSync(layout.processedObject(t.file)) ? { patchedProcessed: layout.processedObject(t.file) } : {}),
        carriedData: (t.report?.changedData ?? []).map((d) => d.name),
        symbolAliases: new Map([
          [TARGET_MODULE, '__this_module'],
          ...t.emitted.externalized
            .filter((x) => x.name.startsWith(ADDRESS_PREFIX))
            .map((x) => [x.name, x.name.slice(ADDRESS_PREFIX.length)] as [string, string]),
        ]),
      }),
    );
    return {
      tus,
      ko,
      verification: mergeVerifications(
        verifications,
        tus.map((t) => t.file),
      ),
      perTu: verifications,
    };
  }
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

function mergeVerifications(vs: Verification[], files: string[]): Verification {
  if (vs.length === 1) return vs[0] as Verification;
  return {
    status: vs.every((v) => v.status === 'passed') ? 'passed' : 'failed',
    functions: vs.flatMap((v) => v.functions),
    uncovered: vs.flatMap((v, i) => v.uncovered.map((u) => `${files[i]}: ${u}`)),
    ...(vs.some((v) => v.data?.length) ? { data: vs.flatMap((v) => v.data ?? []) } : {}),
  };
}

/** Add the original file:line to compiler messages about generated lines. */
function mapDiagnostics(text: string, tus: TuBuild[]): string {
  let mapped = text;
  for (const t of tus) {
    mapped = mapped.replace(
      new RegExp(`([^\\s:]*${t.cName.replace(/[.-]/g, '\\$&')}):(\\d+):(\\d+):`, 'g'),
      (m, _f: string, line: string) => {
        const orig = t.emitted.lineMap[Number(line) - 1];
        return orig && orig.line ? `${m} [${orig.file}:${orig.line}]` : m;
      },
    );
  }
  return mapped;
}

/**
 * Functions TU `i` must provide to the module: global ones the fix adds there (the running
 * kernel has none) that the patched build of another TU of the fix calls
 * (fs/libfs.c's new simple_rename_timestamp, called by fs/reiserfs/namei.c).
 */

function providedBy(inputs: readonly TuInput[], i: TuInput): string[] {
  const calledElsewhere = new Set(
    inputs
      .filter((o) => o !== i)
      .flatMap((o) => [...o.patchedCode.functions.values()].flatMap((f) => f.relocs.map((r) => r.raw))),
  );
  return [...i.patchedCode.functions.values()]
    .filter((f) => f.bind === 'global' && !i.origCode.functions.has(f.name) && calledElsewhere.has(f.name))
    .map((f) => f.name)
    .sort();
}

/**
 * 4-extract/<tu>/: the patched build's object after the objtool run Kbuild makes for a module
 * object (ORC, static calls, return sites, jump-label nops), and the functions taken from it.
 */
async function extractTuFunctions(
  target: TargetManifest,
  layout: WorkLayout,
  i: TuInput,
  installs: EmittedFunctions['installs'],
  codeChanged: ReadonlySet<string>,
  provides: string[],
): Promise<Extracted | ExtractRefusal> {
  const dir = layout.extractDir(i.file);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const refused = async (r: ExtractRefusal) => {
    await writeFile(join(dir, 'refusal.json'), `${JSON.stringify(r, null, 2)}\n`);
    return r;
  };
  const processed = await processPatched(target, layout, i);
  if (typeof processed !== 'string') return refused(processed);
  const x = extractFunctions({
    object: await readFile(processed),
    source: processed,
    original: i.origCode,
    codeChanged,
    installs,
    provides,
    isModule: i.isModule,
    thisModule: TARGET_MODULE,
    kernelPrefix: ADDRESS_PREFIX,
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
async function processPatched(
  target: TargetManifest,
  layout: WorkLayout,
  i: TuInput,
): Promise<string | ExtractRefusal> {
  const processed = layout.processedObject(i.file);
  await mkdir(dirname(processed), { recursive: true });
  const cmd = await compileCommand(target, i.file);
  const objtool = cmd.post.find((argv) => /(^|\/)objtool$/.test(argv[0] ?? ''));
  if (!objtool)
    return {
      kind: 'no-objtool',
      subject: i.file,
      reason: 'Kbuild ran no objtool on this object: there is no ORC to carry',
    };
  await copyFile(i.patchedObject, processed);
  const argv = [...objtool.slice(0, -1), ...(objtool.includes('--module') ? [] : ['--module']), processed];
  const r = await run(argv[0] as string, argv.slice(1), { cwd: cmd.cwd });
  await writeFile(join(dirname(processed), 'objtool.log'), `${argv.join(' ')}\n${r.stdout}${r.stderr}`);
  if (r.code !== 0) {
    await rm(processed, { force: true });
    return {
      kind: 'no-objtool',
      subject: i.file,
      reason: `objtool failed on the patched object: ${r.stderr.trim().split('\n')[0] ?? ''}`,
    };
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

/** plan.json: what each TU's module code is made of in this attempt, and why. */
function describeAttempt(
  plan: FixPlan,
  tus: TuBuild[],
  round: number,
  linkage: Linkage,
  extractions: ReadonlyMap<string, Extracted | ExtractRefusal>,
) {
  return {
    module: `livepatch_${plan.name}`,
    attempt: { round: round + 1, linkage },
    tus: tus.map((t) => {
      const x = extractions.get(t.file);
      return {
        file: t.file,
        object: t.object,
        moduleFile: t.cName,
        how: t.extracted ? 'extracted' : 'compiled-from-source',
        ...(x && 'kind' in x ? { extractionRefused: x } : {}),
        ...(t.extracted
          ? {
              extracted: {
                functions: t.extracted.functions,
                specialEntries: t.extracted.specialEntries,
                data: t.extracted.data,
              },
            }
          : {}),
        source: t.emitted.plan,
      };
    }),
  };
}
