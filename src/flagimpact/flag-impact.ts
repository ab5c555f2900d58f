/**
 * `klpgen flag-impact`: what building with -flive-patching=inline-clone
 * (what a livepatch-safe kernel build needs) changes in the code of a set
 * of TUs of the target, compared with the kernel as Debian built it.
 *
 * Stages: Kbuild dry run for the TUs and their commands (kbuild.ts); per
 * TU, two compiles in parallel jobs, objtool and one objdump per object
 * (build.ts, disasm.ts); the per-function diff (diff.ts); the report
 * (report.ts, html.ts). Each TU's result is cached under the target's work
 * dir by its exact command and source, so a re-run compiles nothing.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseIpaClones, type IpaClonesDump } from '../analyze/ipa-clones.js';
import { readObjectCode } from '../analyze/objdiff.js';
import { parseElf } from '../elf/elf64.js';
import type { CompileCommand } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import { kbuildArgs, makeEnv } from '../target/setup.js';
import { targetLayout } from '../target/paths.js';
import { KlpgenError, errnoCode } from '../util/errors.js';
import { run } from '../util/exec.js';
import { sha256, writeFileAtomic } from '../util/fsutil.js';
import { info, timed } from '../util/progress.js';
import {
  LIVEPATCH_FLAG,
  Slots,
  VARIANTS,
  addedFlags,
  compileVariant,
  removeVariantFiles,
  runPostCommands,
  type CompileResult,
  type VariantFiles,
} from './build.js';
import { attribute } from './attribute.js';
import { disassemble } from './disasm.js';
import { diffTu, type BuildOutput, type TuDiff } from './diff.js';
import { renderHtml } from './html.js';
import { normalisePaths, planTus, type SkippedFile } from './kbuild.js';
import { parseProfile, type Profile } from './profile.js';
import { buildReport, formatReport, type FlagImpactReport } from './report.js';

/** Bump when the analysis changes, so cached TU results are not reused. */
const ANALYSIS_VERSION = 2;
export const DEFAULT_PATHS = ['kernel/sched/'];

export interface FlagImpactOptions {
  paths: string[];
  profile?: string;
  html?: string;
  jobs?: number;
  /** false: ignore cached TU results (they are still written), e.g. to measure a cold run. */
  cache?: boolean;
  /** Measure causes with one build per disabled IPA pass (attribute.ts) instead of code heuristics. */
  attribute?: boolean;
}

export function flagImpactRoot(target: TargetManifest): string {
  return join(target.paths.root, 'work', 'flag-impact');
}

export async function flagImpact(target: TargetManifest, opts: FlagImpactOptions): Promise<FlagImpactReport> {
  const jobs = opts.jobs ?? cpus().length;
  if (!Number.isInteger(jobs) || jobs < 1) throw new KlpgenError(`-j: not a positive integer: ${jobs}`);
  const reqs = normalisePaths(target, opts.paths.length ? opts.paths : DEFAULT_PATHS);
  const profileText = opts.profile === undefined ? undefined : await readProfile(opts.profile);
  const profile: Profile | null = profileText === undefined ? null : parseProfile(profileText, opts.profile);
  const root = flagImpactRoot(target);
  const inputsHash = sha256(
    JSON.stringify({
      abi: target.abi,
      paths: reqs.map((r) => r.rel),
      profile: profileText === undefined ? null : sha256(profileText),
      attribute: !!opts.attribute,
    }),
  ).slice(0, 12);
  const workDir = join(root, inputsHash);
  await mkdir(workDir, { recursive: true });

  // Scratch space of this process only (a dry-run tree, objects until their TU is analysed).
  const scratch = join(workDir, `tmp-${process.pid}`);
  const skipped: SkippedFile[] = [];
  let plan: Awaited<ReturnType<typeof planTus>>;
  let results: TuDiff[];
  try {
    plan = await timed(`Kbuild dry run for ${reqs.map((r) => r.rel).join(' ')}`, () =>
      planTus(target, reqs, join(scratch, 'kbuild-dry-run')),
    );
    info(
      `${plan.tus.length} TUs to compile; ${plan.skipped.length} .c files skipped (not built on their own in this configuration)`,
    );
    if (plan.tus.length === 0)
      throw new KlpgenError(`${reqs.map((r) => r.rel).join(' ')}: no .c file there is built in this configuration`);
    skipped.push(...plan.skipped);
    const tus = plan.tus;
    results = await timed(`compile ${tus.length} TUs twice (-j${jobs})`, () =>
      analyseAll(
        target,
        tus,
        join(scratch, 'obj'),
        join(root, 'tu-cache'),
        jobs,
        skipped,
        opts.cache !== false,
        !!opts.attribute,
      ),
    );
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }

  const flags = new Set<string>();
  for (const cmd of plan.tus) for (const f of addedFlags(cmd, 'asIs')) flags.add(f);
  const report = buildReport({
    target: { abi: target.abi, kernelRelease: target.kernelRelease },
    paths: reqs.map((r) => r.rel),
    livepatchFlag: LIVEPATCH_FLAG,
    addedFlags: [...flags],
    tus: results,
    skipped,
    profile,
    attribution: opts.attribute ? 'measured' : 'heuristic',
    workDir,
  });
  await writeFileAtomic(join(workDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFileAtomic(join(workDir, 'report.txt'), `${formatReport(report)}\n`);
  if (opts.html !== undefined) {
    const out = resolve(opts.html);
    if (out.startsWith(`${target.paths.source}/`))
      throw new KlpgenError(`${opts.html}: refusing to write into the kernel source tree`);
    try {
      await writeFileAtomic(out, renderHtml(report));
    } catch (e) {
      throw errnoCode(e) ? new KlpgenError(`${opts.html}: cannot write: ${(e as Error).message}`) : e;
    }
    info(`HTML report: ${out}`);
  }
  return report;
}

async function readProfile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new KlpgenError(`${path}: cannot read the profile (${errnoCode(e) ?? String(e)})`);
  }
}

function cacheKey(cmd: CompileCommand, sourceSha: string, measure: boolean): string {
  return sha256(
    JSON.stringify({
      v: ANALYSIS_VERSION,
      argv: cmd.argv,
      post: cmd.post,
      cwd: cmd.cwd,
      source: sourceSha,
      attribute: measure,
    }),
  );
}

type TuOutcome = { ok: true; diff: TuDiff } | { ok: false; variant: 'asIs' | 'livepatch'; error: string };

async function analyseAll(
  target: TargetManifest,
  tus: CompileCommand[],
  objDir: string,
  cacheDir: string,
  jobs: number,
  skipped: SkippedFile[],
  useCache: boolean,
  measure: boolean,
): Promise<TuDiff[]> {
  await mkdir(cacheDir, { recursive: true });
  const slots = new Slots(jobs);
  const started = Date.now();
  const results: TuDiff[] = [];
  let done = 0;
  let cached = 0;
  const progress = (file: string, what: string) => {
    done++;
    const secs = (Date.now() - started) / 1000;
    info(`[${done}/${tus.length} ${secs.toFixed(1)} s] ${file}: ${what}`);
  };
  const failed: { cmd: CompileCommand; outcome: TuOutcome & { ok: false } }[] = [];
  // Size (for the order) and hash (for the cache key) of each source, before any job starts.
  const sources = new Map<string, { size: number; sha: string }>();
  await Promise.all(
    tus.map(async (t) => {
      const b = await readFile(t.source);
      sources.set(t.file, { size: b.length, sha: sha256(b) });
    }),
  );
  const one = async (cmd: CompileCommand, retry: boolean): Promise<void> => {
    const cachePath = join(cacheDir, `${cacheKey(cmd, sources.get(cmd.file)?.sha ?? '', measure)}.json`);
    if (useCache && existsSync(cachePath)) {
      const diff = JSON.parse(await readFile(cachePath, 'utf8')) as TuDiff;
      results.push(diff);
      cached++;
      progress(cmd.file, `${describe(diff)} (cached)`);
      return;
    }
    const outcome = await analyseTu(cmd, objDir, slots, measure);
    if (!outcome.ok) {
      if (!retry && outcome.variant === 'asIs') {
        failed.push({ cmd, outcome });
        return;
      }
      skipped.push({
        file: cmd.file,
        reason: `${outcome.variant === 'asIs' ? 'the as-is' : 'the -flive-patching'} build failed: ${outcome.error}`,
      });
      progress(cmd.file, `skipped: ${outcome.error}`);
      return;
    }
    await writeFileAtomic(cachePath, JSON.stringify(outcome.diff));
    results.push(outcome.diff);
    progress(cmd.file, describe(outcome.diff));
  };
  // Biggest sources first: with few cores the last jobs are short ones, not core.c.
  const size = (t: CompileCommand) => sources.get(t.file)?.size ?? 0;
  const ordered = [...tus].sort((a, b) => size(b) - size(a) || a.file.localeCompare(b.file));
  await Promise.all(ordered.map((cmd) => one(cmd, false)));

  if (failed.length) {
    // Usually a generated file the TU needs (Kbuild makes it before compiling the object):
    // let Kbuild build these objects once in the target's tree, then try again.
    info(`${failed.length} TUs did not compile as-is; letting Kbuild build their prerequisites`);
    const layout = targetLayout(target.abi);
    await run(
      'make',
      [...kbuildArgs(layout, target.abi), '-k', `-j${jobs}`, ...failed.map((f) => f.cmd.file.replace(/\.c$/, '.o'))],
      {
        env: makeEnv(),
        heartbeat: `Kbuild: ${failed.length} objects`,
      },
    );
    await Promise.all(failed.map((f) => one(f.cmd, true)));
  }
  if (cached) info(`${cached} of ${tus.length} TUs from the cache (${cacheDir})`);
  return results.sort((a, b) => a.file.localeCompare(b.file));
}

function describe(d: TuDiff): string {
  const n = d.impacts.length;
  return n === 0 ? 'no function differs' : n === 1 ? '1 function differs' : `${n} functions differ`;
}

async function analyseTu(cmd: CompileCommand, objDir: string, slots: Slots, measure: boolean): Promise<TuOutcome> {
  const compiled = await Promise.all(VARIANTS.map((v) => slots.run(() => compileVariant(cmd, v, objDir))));
  const files = compiled.filter((c): c is CompileResult & { ok: true } => c.ok).map((c) => c.files);
  try {
    for (const [i, c] of compiled.entries()) {
      if (!c.ok) return { ok: false, variant: VARIANTS[i] as 'asIs' | 'livepatch', error: c.error };
    }
    const [asIs, lp] = (await Promise.all(files.map((f) => readBuild(cmd, f, slots)))) as [BuildOutput, BuildOutput];
    const diff = diffTu(cmd.file, asIs, lp);
    if (measure) diff.impacts = await attribute(cmd, diff.impacts, asIs.code, lp.code, objDir, slots);
    return { ok: true, diff };
  } finally {
    await Promise.all(files.map((f) => removeVariantFiles(f)));
  }
}

async function readBuild(cmd: CompileCommand, files: VariantFiles, slots: Slots): Promise<BuildOutput> {
  // objtool first: it rewrites the object (jump labels, ...) into what the kernel links.
  const objtool = await slots.run(() => runPostCommands(cmd, files.object), true);
  const sections = await slots.run(() => disassemble(files.object), true);
  const code = readObjectCode(parseElf(await readFile(files.object), files.object));
  let dump: IpaClonesDump = { source: files.dump, clones: [], removals: [] };
  if (existsSync(files.dump)) dump = parseIpaClones(await readFile(files.dump, 'utf8'), files.dump);
  return { code, sections, dump, objtool };
}

export { formatReport, renderHtml };
export type { FlagImpactReport };
