import { join, resolve } from 'node:path';
import { analyze, type AnalysisReport } from '../analyze/analyze.js';
import type { ExtractRefusal } from '../extract/extract.js';
import type { TuModel } from '../frontend/model.js';
import type { TargetManifest } from '../target/manifest.js';
import { KlpgenError, NothingToPatch } from '../util/errors.js';
import { WorkLayout } from '../util/layout.js';
import { info, timed } from '../util/progress.js';
import { RefusedError } from '../util/refusal.js';
import { formatVerification, type Verification } from '../verify/verify.js';
import { ModuleBuilder } from './build.js';
import { linkModule } from './link.js';
import { planFix } from './plan.js';

/**
 * `klpgen create`: a short driver of typed stages, each reading and writing its work-dir files
 * through WorkLayout (1-sources, 2-objects, 3-analysis from the analysis; then 4-extract,
 * 4-source with plan.json, 5-kmod):
 *   analyze  the must-replace set, or a typed refusal, or nothing to patch
 *   plan     what each TU's module code is made from (plan.ts)
 *   build    extracted or compiled from the emitted C, linked by Kbuild, verified (build.ts)
 *   link     static locals, KLP relocations, the .klp.sym check, the written module (link.ts)
 */
export interface CreateOptions {
  patches: string[];
  /** Refuse a header change that reaches more translation units than this (analyze's default otherwise). */
  maxTus?: number;
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
  const layout = new WorkLayout(resolve(o.workDir));
  const name = moduleName(o.name);

  const patchedModels = new Map<string, TuModel>();
  const report = await timed('analyze', () =>
    analyze(target, { patches: o.patches, workDir: layout.root, patchedModels, maxTus: o.maxTus }),
  );
  if (!report.ok) throw new RefusedError(report.refusals);
  if (report.mustReplace.length === 0)
    throw new NothingToPatch('the patches change no running code: there is nothing to livepatch');

  const plan = await planFix(target, report, layout, name, patchedModels);

  const builder = new ModuleBuilder(target, plan, { replace: o.replace, fromSource: !!o.fromSource });
  const result = await builder.build();
  if (!result.verification || !result.ko) throw new KlpgenError(result.error ?? 'the module was not built');
  const { tus, ko, verification } = result;
  info(`built ${ko}`);
  if (verification.status !== 'passed') {
    if (!o.allowUnverified) {
      throw new KlpgenError(
        `the livepatch does not verify (the module is in ${layout.kmodDir()}, not written to the output; --allow-unverified writes it anyway):\n${formatVerification(verification)}`,
        3,
      );
    }
    info(
      `WARNING: the livepatch does not verify; written anyway (--allow-unverified):\n${formatVerification(verification)}`,
    );
  }

  const linked = await linkModule(target, plan, tus, ko, o.out);

  const srcDir = layout.sourceDir();
  return {
    name,
    module: linked.out,
    source: join(srcDir, tus[0]?.cName as string),
    sources: tus.map((t) => join(srcDir, t.cName)),
    analysis: report,
    emitted: {
      externalized: tus.flatMap((t) => t.emitted.externalized.map((x) => ({ ...x, file: t.file }))),
      copied: tus.flatMap((t) =>
        t.emitted.copied.map((x) => ({
          ...x,
          file: t.file,
          made: t.extracted ? ('extracted' as const) : ('compiled-from-source' as const),
        })),
      ),
    },
    code: tus.map((t) => {
      const x = builder.extractions.get(t.file);
      if (t.extracted)
        return {
          file: t.file,
          how: 'extracted' as const,
          specialEntries: t.extracted.specialEntries,
          data: t.extracted.data,
        };
      return { file: t.file, how: 'compiled-from-source' as const, ...(x && 'kind' in x ? { refusal: x } : {}) };
    }),
    symbols: linked.resolution.map((r) => ({
      name: r.name,
      resolution: r.resolution,
      ...(r.resolution === 'klp' ? { sympos: r.sympos as number, object: r.object } : {}),
    })),
    staticLocals: linked.staticNotes,
    verification,
    workDir: layout.root,
  };
}
