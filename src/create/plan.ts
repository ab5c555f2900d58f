import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { AnalysisReport, ReplaceEntry } from '../analyze/analyze.js';
import { INLINING_TO, ipaClonesDumpPath, readIpaClones } from '../analyze/ipa-clones.js';
import { readObjectCode, type ObjectCode } from '../analyze/objdiff.js';
import { parseElf } from '../elf/elf64.js';
import { PREFIX } from '../emit/emit.js';
import { buildModel, type TuModel } from '../frontend/model.js';
import { REFERENCE_TU, tuFlags, type TuFlags } from '../kmod/flags.js';
import { compileCommand, objectOf } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import type { WorkLayout } from '../util/layout.js';

/**
 * create's plan stage: after the analysis, what the module is made from, read once for every
 * build attempt: each TU of the must-replace set with its two builds, its model, its flags and
 * the names its new functions get.
 */
export interface FixPlan {
  /** The module's name (without `livepatch_`). */
  name: string;
  /** File-name stem of its files (`name` with dashes). */
  stem: string;
  /** The klp_patch scaffolding's C file. */
  scaffoldingFile: string;
  /** The TUs whose functions are replaced, sorted. */
  files: string[];
  inputs: TuInput[];
  report: AnalysisReport;
  layout: WorkLayout;
}

/** What emission needs of one TU, read once for every attempt. */
export interface TuInput {
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

/** `models`: the analysis' patched models by file, reused where the text is ASCII (then its offsets are the same in latin1). */
export async function planFix(
  target: TargetManifest,
  report: AnalysisReport,
  layout: WorkLayout,
  name: string,
  models: ReadonlyMap<string, TuModel> = new Map(),
): Promise<FixPlan> {
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
    const objects = layout.objects(file);
    const patchedText = await readFile(join(layout.sources('patched'), file), 'utf8');
    const preprocessed = await readFile(objects.patchedPreprocessed, 'latin1');
    const parsed = models.get(file);
    const model =
      parsed && !/[^\x00-\x7f]/.test(preprocessed)
        ? parsed
        : buildModel({ preprocessed, file, sourceText: patchedText, sourceRoot: layout.sources('patched') });
    const cmd = await compileCommand(target, file);
    const { modName, isModule } = objectOf(cmd);
    const { originalObject, patchedObject } = objects;
    const entries = report.mustReplace.filter((e) => e.file === file);
    const cName = cNames.get(file) as string;
    inputs.push({
      file,
      cName,
      modName,
      isModule,
      flags: tuFlags(cmd, reference),
      patchedText,
      preprocessed,
      model,
      entries,
      originalObject,
      patchedObject,
      origCode: readObjectCode(parseElf(await readFile(originalObject), originalObject)),
      patchedCode: readObjectCode(parseElf(await readFile(patchedObject), patchedObject)),
      patchedInlined: inlinedInto(
        patchedObject,
        join(layout.sources('patched'), file),
        new Set(entries.map((e) => e.symbol)),
      ),
      prefix: entries.some((e) => clash.has(e.symbol))
        ? `livepatch_${cName.slice(stem.length + 1, -2).replace(/[^A-Za-z0-9_]/g, '_')}_`
        : PREFIX,
    });
  }
  return { name, stem, scaffoldingFile, files, inputs, report, layout };
}

/** STEM.c for a one-TU fix; STEM-BASE.c per TU otherwise (the path when two bases are equal). */
function uniqueFileNames(stem: string, files: string[]): Map<string, string> {
  if (files.length === 1) return new Map([[files[0] as string, `${stem}.c`]]);
  const base = (f: string) => basename(f, '.c');
  const clashes = (f: string) => files.filter((g) => base(g) === base(f)).length > 1;
  const part = (f: string) => (clashes(f) ? f.replace(/\.c$/, '') : base(f)).replace(/[^A-Za-z0-9_-]/g, '-');
  return new Map(files.map((f) => [f, `${stem}-${part(f)}.c`]));
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
