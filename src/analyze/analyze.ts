import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseElf, type ElfFile } from '../elf/elf64.js';
import { judgeChangedData } from './data-refs.js';
import { KLPGEN_INCLUDE } from '../util/klpgen-include.js';
import { buildModel, FrontendError, type TuEntity, type TuModel } from '../frontend/model.js';
import {
  compileArgv,
  compileCommand,
  compileCommands,
  objectOf,
  type CompileCommand,
} from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import { KlpgenError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { compareLayouts, readLayouts, type Layout } from './layout.js';
import { info } from '../util/progress.js';
import { indexModules, moduleKey } from '../vm/initramfs.js';
import { inliningClosure, ipaClonesDumpPath, parseIpaClones } from './ipa-clones.js';
import { alignLineNumbers, parseUnifiedZeroHunks, type LineHunk } from './lines.js';
import { overlayIncludes } from './overlay.js';
import { headerChange } from '../usage/header-change.js';
import { headerUsers } from '../usage/users.js';
import { builtCommands, commandOf, commandsPath } from '../usage/commands.js';

/** Above this many TUs to analyse for one header, a fix is refused (--max-tus). */
export const DEFAULT_MAX_TUS = 2000;
import { parseCallGraph, type CallGraph } from './callgraph.js';
import {
  aliasesIn,
  changedTables,
  compareCode,
  diffFunctions,
  hasFentry,
  readObjectCode,
  referrers,
  type FunctionCode,
  type ObjectCode,
} from './objdiff.js';
import { applyFilePatch, parsePatch } from './patch.js';
import { aliasesOf, loadSymbolIndex, locateSymbol, type SymbolIndex } from './symbols.js';
import type { Refusal, RefusalKind } from '../util/refusal.js';
import { WorkLayout } from '../util/layout.js';
import { baseFunction, coldParent, isNumberedLocal, isPrivateClone } from '../gcc/names.js';

/**
 * `klpgen analyze`: from kernel patches to the must-replace set. Each
 * changed .c is compiled twice in a work dir, with the exact Kbuild flags
 * plus -ffunction-sections -fdata-sections -fdump-ipa-clones: the original
 * (line-aligned, see lines.ts) and the patched copy. The set is the union of
 *  - functions whose source changed,
 *  - functions into which GCC inlined or cloned those (the original's
 *    ipa-clones dump, closed transitively),
 *  - functions whose machine code changed for any reason (object diff: IPA-RA,
 *    pure/const, modref, alignment, value ranges, .cold splits, ICF),
 * each mapped to a symbol the running kernel has and livepatch can redirect.
 */
export interface Reason {
  kind: 'source' | 'inlined' | 'clone' | 'code' | 'data' | 'caller-of-clone' | 'caller-of-untraceable' | 'cold-part';
  detail: string;
  /** 'patch', 'ipa-clones' or 'object diff': where the fact comes from. */
  evidence: string;
}

export interface ReplaceEntry {
  /** 'vmlinux' or the module's name. */
  object: string;
  /** Symbol in the running kernel (and in the original build). */
  symbol: string;
  sympos: number;
  /** The .c file it comes from. */
  file: string;
  /** Line of its definition in the patched file (0 if it has none there). */
  line: number;
  reasons: Reason[];
}

export type { Refusal, RefusalKind } from '../util/refusal.js';

export interface TuReport {
  file: string;
  object: string;
  sourceChanged: string[];
  addedFunctions: string[];
  removedFunctions: string[];
  codeChanged: { name: string; reason: string; firstDifference: number }[];
  /** Functions with no out-of-line copy in the original object (inlined everywhere or unused). */
  noSymbol: string[];
  /** Constants whose contents change that the module carries, with their readers in the running kernel. */
  changedData?: { name: string; readers: string[] }[];
  lineDirectives: number;
}

export interface AnalysisReport {
  abi: string;
  /** Headers the patches change; their includers are analysed as TUs. */
  changedHeaders?: string[];
  /** For each changed header: how many built TUs read it, which use what changed (and are analysed). */
  headerUsers?: {
    header: string;
    via: 'index' | 'on demand' | 'none';
    includers: number;
    users: string[];
    /** Names the change touches. */
    names: string[];
    /** Why every includer counts (the change is not bounded by names). */
    unbounded?: string;
    /** Usage records made for this header (the rest were cached). */
    made: number;
    seconds: number;
  }[];
  patches: string[];
  workDir: string;
  files: { path: string; kind: 'c' | 'header' | 'asm' | 'other'; change: 'modified' | 'added' | 'deleted' }[];
  tus: TuReport[];
  mustReplace: ReplaceEntry[];
  refusals: Refusal[];
  notes: string[];
  ok: boolean;
}

export interface AnalyzeOptions {
  patches: string[];
  workDir: string;
  /** Filled with each TU's patched model, by file (create's plan reads them instead of parsing again). */
  patchedModels?: Map<string, TuModel>;
  /** Refuse a header change that reaches more translation units than this. */
  maxTus?: number;
  /** Analyse every built TU that reads a changed header, not only those that use what changed. */
  allIncluders?: boolean;
}

interface ChangedFile {
  path: string;
  original: string | null;
  patched: string | null;
}

/** Read the patches and apply them (in order) to copies of the target's files. */
export function applyAll(target: TargetManifest, patchFiles: string[]): ChangedFile[] {
  const contents = new Map<string, { original: string | null; current: string | null }>();
  for (const pf of patchFiles) {
    if (!existsSync(pf)) throw new KlpgenError(`${pf}: no such patch file`);
    const name = basename(pf);
    for (const fp of parsePatch(readFileSync(pf, 'utf8'), name)) {
      const path = fp.newPath ?? fp.oldPath;
      if (path === null) continue;
      if (fp.oldPath && fp.newPath && fp.oldPath !== fp.newPath) {
        throw new KlpgenError(`${name}: renames (${fp.oldPath} -> ${fp.newPath}) are not supported`);
      }
      let entry = contents.get(path);
      if (!entry) {
        const abs = join(target.paths.source, path);
        const original = existsSync(abs) ? readFileSync(abs, 'utf8') : null;
        entry = { original, current: original };
        contents.set(path, entry);
      }
      entry.current = applyFilePatch(entry.current, fp, name).text;
    }
  }
  return [...contents].map(([path, c]) => ({ path, original: c.original, patched: c.current }));
}

function fileKind(path: string): 'c' | 'header' | 'asm' | 'other' {
  if (path.endsWith('.c')) return 'c';
  if (path.endsWith('.h')) return 'header';
  if (/\.(S|s)$/.test(path)) return 'asm';
  return 'other';
}

export function emptyReport(abi: string, patches: string[], workDir: string): AnalysisReport {
  return { abi, patches, workDir, files: [], tus: [], mustReplace: [], refusals: [], notes: [], ok: false };
}

export async function analyze(target: TargetManifest, o: AnalyzeOptions): Promise<AnalysisReport> {
  const workDir = resolve(o.workDir);
  const changed = applyAll(target, o.patches);
  if (changed.length === 0) throw new KlpgenError('the patches change no file');
  const report = emptyReport(
    target.abi,
    o.patches.map((p) => resolve(p)),
    workDir,
  );

  // 1-sources: the original (line-aligned) and patched trees, only the files the patches touch.
  const layout = new WorkLayout(workDir);
  const origRoot = layout.sources('original');
  const patchedRoot = layout.sources('patched');
  await rm(layout.sourcesDir(), { recursive: true, force: true });
  const tus: { path: string; original: string; patched: string; directives: number }[] = [];
  const headers: string[] = [];
  const headerHunks = new Map<string, LineHunk[]>();
  for (const f of changed) {
    const kind = fileKind(f.path);
    const change = f.original === null ? 'added' : f.patched === null ? 'deleted' : 'modified';
    report.files.push({ path: f.path, kind, change });
    if (f.patched !== null) {
      await mkdir(dirname(join(patchedRoot, f.path)), { recursive: true });
      await writeFile(join(patchedRoot, f.path), f.patched);
    }
    const firstLine = firstChangedLine(f.original ?? '', f.patched ?? '');
    if (kind === 'asm') {
      report.refusals.push({
        kind: 'assembly',
        reason: 'assembly source changed: klpgen patches C functions only',
        file: f.path,
        line: firstLine,
      });
    } else if (kind === 'header') {
      if (change !== 'modified') {
        report.refusals.push({
          kind: 'file-added-or-removed',
          reason: `a header was ${change}`,
          file: f.path,
          line: firstLine,
        });
        continue;
      }
      // Both versions of the header go into the two trees, which shadow the target's.
      const hunks = parseUnifiedZeroHunks(await lineDiff(workDir, f.original as string, f.patched as string));
      await mkdir(dirname(join(origRoot, f.path)), { recursive: true });
      await writeFile(join(origRoot, f.path), alignLineNumbers(f.original as string, hunks).text);
      headerHunks.set(f.path, hunks);
      // Its neighbours too, so that "sibling.h" includes between them resolve inside each tree.
      const dir = dirname(f.path);
      for (const n of readdirSync(join(target.paths.source, dir))) {
        if (!n.endsWith('.h') || n === basename(f.path) || changed.some((c) => c.path === join(dir, n))) continue;
        for (const root of [origRoot, patchedRoot]) {
          await mkdir(join(root, dir), { recursive: true });
          await copyFile(join(target.paths.source, dir, n), join(root, dir, n));
        }
      }
      headers.push(f.path);
    } else if (kind === 'other') {
      if (/(^|\/)(Makefile|Kbuild|Kconfig)[^/]*$/.test(f.path)) {
        report.refusals.push({
          kind: 'build-configuration',
          reason: 'build configuration changed (Makefile/Kconfig): not a code change a livepatch can carry',
          file: f.path,
          line: firstLine,
        });
      } else {
        report.notes.push(`${f.path}: not source code, ignored`);
      }
    } else if (change !== 'modified') {
      report.refusals.push({
        kind: 'file-added-or-removed',
        reason: `a .c file was ${change}: new or removed translation units are not livepatchable`,
        file: f.path,
        line: 1,
      });
    } else {
      const hunks = parseUnifiedZeroHunks(await lineDiff(workDir, f.original as string, f.patched as string));
      const aligned = alignLineNumbers(f.original as string, hunks);
      await mkdir(dirname(join(origRoot, f.path)), { recursive: true });
      await writeFile(join(origRoot, f.path), aligned.text);
      tus.push({ path: f.path, original: aligned.text, patched: f.patched as string, directives: aligned.directives });
    }
  }

  // A changed .c this configuration does not build: the running kernel has none of its code.
  for (const [u, r] of await compileCommands(
    target,
    tus.map((t) => t.path),
  )) {
    if (!(r instanceof KlpgenError) || !/not built in this configuration/.test(r.message)) continue;
    report.notes.push(`${r.message.replace(/^[^:]*: it is/, `${u} is`)}: the running kernel has none of its code`);
    tus.splice(
      tus.findIndex((t) => t.path === u),
      1,
    );
  }

  // A changed header: the built TUs that read it and use a name its change touches are
  // analysed with both versions (src/usage); the others' code cannot change.
  report.headerUsers = [];
  const headerUserTus = new Set<string>();
  const maxTus = o.maxTus ?? DEFAULT_MAX_TUS;
  for (const h of headers) {
    const f = changed.find((c) => c.path === h) as ChangedFile;
    const change = headerChange(h, f.original as string, f.patched as string, headerHunks.get(h) ?? []);
    if (change.cosmetic) {
      report.notes.push(`${h}: only comments and spacing change: no code can change`);
      report.headerUsers.push({ header: h, via: 'none', includers: 0, users: [], names: [], made: 0, seconds: 0 });
      continue;
    }
    // --all-includers: every TU that reads the header, as a check of the narrowing.
    const found = await headerUsers(target, o.allIncluders ? { ...change, names: null } : change);
    const users = found.users.filter((u) => !tus.some((t) => t.path === u.file));
    report.headerUsers.push({
      header: h,
      via: found.via,
      includers: found.includers,
      users: found.users.map((u) => u.file),
      names: change.names ?? [],
      ...(change.unbounded ? { unbounded: change.unbounded.why } : {}),
      made: found.made,
      seconds: Math.round(found.seconds * 10) / 10,
    });
    info(
      `${h}: ${found.includers} built translation units read it, ${found.users.length} use what changed (${found.via}, ${found.seconds.toFixed(1)} s)`,
    );
    if (users.length > maxTus) {
      report.refusals.push({
        kind: 'wide-header',
        reason: `header change reaches ${users.length} translation units (of ${found.includers} that read it), above the ceiling of ${maxTus} (--max-tus)${change.unbounded ? `: ${change.unbounded.why}, so every includer may change` : ''}`,
        file: h,
        line: change.unbounded?.line ?? change.touched[0]?.line ?? 1,
      });
      continue;
    }
    if (found.includers === 0) report.notes.push(`${h}: no translation unit of this configuration reads it`);
    else if (found.users.length === 0)
      report.notes.push(
        `${h}: none of the ${found.includers} translation units that read it uses what changed (${(change.names ?? []).slice(0, 8).join(', ')})`,
      );
    for (const u of users) {
      const text = readFileSync(join(target.paths.source, u.file), 'utf8');
      for (const root of [origRoot, patchedRoot]) {
        await mkdir(dirname(join(root, u.file)), { recursive: true });
        await writeFile(join(root, u.file), text);
      }
      tus.push({ path: u.file, original: text, patched: text, directives: 0 });
      headerUserTus.add(u.file);
    }
  }
  report.changedHeaders = headers;

  const dirs = {
    origRoot,
    patchedRoot,
    workDir,
    headers,
    onPatchedModel: (model: TuModel, file: string) => {
      o.patchedModels?.set(file, model);
    },
  };
  let skipped = 0;
  for (const tu of tus) {
    // A fix already refused gains nothing from its header's other users: each costs two compiles.
    if (headerUserTus.has(tu.path) && report.refusals.length > 0) {
      skipped++;
      continue;
    }
    info(`analysing ${tu.path}`);
    await analyzeTu(target, tu, dirs, report);
  }
  if (skipped)
    report.notes.push(
      `${skipped} more translation units that use the changed headers were not analysed: the fix is refused already`,
    );
  report.mustReplace.sort((a, b) => a.object.localeCompare(b.object) || a.symbol.localeCompare(b.symbol));
  report.ok = report.refusals.length === 0;
  await mkdir(layout.analysisDir(), { recursive: true });
  await writeFile(layout.analysisReport(), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

/** Kbuild's command of a TU: from its .cmd file, else from the make -n listing (no compile needed). */
async function commandFor(target: TargetManifest, file: string): Promise<CompileCommand> {
  const cmdFile = join(target.paths.build, file.replace(/\.c$/, '.o').replace(/([^/]+)$/, '.$1.cmd'));
  if (!existsSync(cmdFile) && existsSync(commandsPath(target.abi))) {
    const cmd = commandOf(target, await builtCommands(target), file);
    if (cmd) return cmd;
  }
  return compileCommand(target, file);
}

async function lineDiff(workDir: string, a: string, b: string): Promise<string> {
  const dir = join(workDir, '.diff');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'a'), a);
  await writeFile(join(dir, 'b'), b);
  const r = await run('diff', ['-U0', join(dir, 'a'), join(dir, 'b')]);
  await rm(dir, { recursive: true, force: true });
  if (r.code > 1) throw new KlpgenError(`diff failed: ${r.stderr.trim()}`);
  return r.stdout;
}

function firstChangedLine(a: string, b: string): number {
  const x = a.split('\n');
  const y = b.split('\n');
  for (let i = 0; i < Math.max(x.length, y.length); i++) if (x[i] !== y[i]) return i + 1;
  return 1;
}

interface Variant {
  /** The object file this variant compiled to. */
  objectFile: string;
  elf: ElfFile;
  model: TuModel;
  code: ObjectCode;
  ipaClones: string;
  callGraph: CallGraph;
}

/** Preprocess + model, and compile with function sections and the ipa-clones dump, one variant. */
async function buildVariant(
  cmd: CompileCommand,
  source: string,
  root: string,
  outDir: string,
  file: string,
  onSpawned?: () => void,
): Promise<Variant> {
  await mkdir(outDir, { recursive: true });
  const obj = join(outDir, `${basename(file, '.c')}.o`);
  const pre = join(outDir, `${basename(file, '.c')}.i`);
  // Changed headers in `root` shadow the target's: their directories come first in -I.
  const tree = cmd.source.slice(0, cmd.source.length - cmd.file.length - 1);
  // <klpgen/livepatch.h> after every kernel directory: a fix may declare callbacks and states.
  const withOverlay = (argv: string[]) => [...overlayIncludes(argv, tree, root), '-idirafter', KLPGEN_INCLUDE];
  const compile = withOverlay(
    compileArgv(cmd, {
      source,
      sourceRoot: root,
      output: obj,
      extraFlags: ['-ffunction-sections', '-fdata-sections', '-fdump-ipa-clones', '-fcallgraph-info'],
    }),
  );
  const preprocess = withOverlay(compileArgv(cmd, { source, sourceRoot: root, output: pre, preprocess: true }));
  const failed = (r: { stderr: string }) => {
    const first =
      r.stderr
        .split('\n')
        .filter((l) => /error/.test(l))
        .slice(0, 3)
        .join('\n') || r.stderr.trim().split('\n').slice(-3).join('\n');
    return new KlpgenError(`compiling ${file} (${outDir}) failed:\n${first.replaceAll(root + '/', '')}`);
  };
  const compiling = run(compile[0] as string, compile.slice(1), { cwd: cmd.cwd });
  const preprocessing = run(preprocess[0] as string, preprocess.slice(1), { cwd: cmd.cwd });
  onSpawned?.();
  const p = await preprocessing;
  // The model is parsed while the compiler still compiles (a compile error is the one reported).
  let model: TuModel | FrontendError | undefined;
  if (p.code === 0) {
    try {
      model = buildModel({
        preprocessed: await readFile(pre, 'utf8'),
        file,
        sourceText: await readFile(source, 'utf8'),
        sourceRoot: root,
      });
    } catch (e) {
      if (!(e instanceof FrontendError)) throw e;
      model = e;
    }
  }
  const c = await compiling;
  for (const r of [c, p]) if (r.code !== 0) throw failed(r);
  if (model instanceof FrontendError)
    throw new KlpgenError(`${model.location.file}:${model.location.line}:${model.location.col}: ${model.message}`);
  if (model === undefined) throw failed(p);
  const dump = ipaClonesDumpPath(obj, source);
  if (!existsSync(dump)) throw new KlpgenError(`gcc wrote no ipa-clones dump for ${file} (expected ${dump})`);
  const ipaClones = await readFile(dump, 'utf8');
  const ci = obj.replace(/\.o$/, '.ci');
  const callGraph = parseCallGraph(existsSync(ci) ? await readFile(ci, 'utf8') : '');
  const elf = parseElf(await readFile(obj), obj);
  return { objectFile: obj, elf, model, code: readObjectCode(elf), ipaClones, callGraph };
}

/**
 * Entity text as compared between the builds: line markers dropped (they name
 * the copies' paths), whitespace collapsed, and __COUNTER__-numbered names
 * (__UNIQUE_ID_x123, from min()/max()/WARN_ONCE...) unnumbered, because a
 * patch that adds one use renumbers every later one.
 */
const COUNTER_NAMES = /\b(__UNIQUE_ID_\w*?|__compiletime_assert_|__initcall__kmod_\w*?__)\d+\b/g;

export function comparableText(text: string): string {
  return text.replace(/^#.*$/gm, ' ').replace(COUNTER_NAMES, '$1#').replace(/\s+/g, ' ').trim();
}

/** Function definitions of the .c itself, by name, with their comparable text. */
function ownFunctions(
  model: TuModel,
  files: Set<string>,
  text: string,
): Map<string, { entity: TuEntity; text: string }> {
  const out = new Map<string, { entity: TuEntity; text: string }>();
  for (const e of model.entities) {
    if (e.kind !== 'function' || !e.definition || !files.has(e.span.file) || e.flags.alias !== undefined) continue;
    out.set(e.name, { entity: e, text: comparableText(text.slice(e.iSpan[0], e.iSpan[1])) });
  }
  return out;
}

/** Data, types and other non-function entities of the .c whose text changed. */
function ownOthers(model: TuModel, files: Set<string>, text: string): Map<string, { entity: TuEntity; text: string }> {
  const out = new Map<string, { entity: TuEntity; text: string }>();
  for (const e of model.entities) {
    if (e.kind === 'function' || !files.has(e.span.file)) continue;
    out.set(`${e.kind} ${comparableText(e.name)}`, {
      entity: e,
      text: comparableText(text.slice(e.iSpan[0], e.iSpan[1])),
    });
  }
  return out;
}

async function analyzeTu(
  target: TargetManifest,
  tu: { path: string; directives: number },
  dirs: AnalysisDirs,
  report: AnalysisReport,
): Promise<void> {
  const cmd = await commandFor(target, tu.path);
  const { modName, isModule } = objectOf(cmd);
  const object = isModule ? modName : 'vmlinux';
  const symbols = (): SymbolIndex | string => {
    if (!isModule) return loadSymbolIndex(target.paths.vmlinux, 'vmlinux', true);
    const ko = indexModules(target.paths.modules).get(moduleKey(modName));
    return ko ? loadSymbolIndex(ko, modName, false) : `module ${modName} is not among the target's modules`;
  };
  await analyzeCompiledTu({ cmd, tu, dirs, object, symbols }, report);
}

export interface AnalysisDirs {
  origRoot: string;
  patchedRoot: string;
  workDir: string;
  /** Changed headers: their definitions count as the TU's own. */
  headers?: string[];
  /** Sees each TU's patched model (the wide-header check reads it). */
  onPatchedModel?: (model: TuModel, file: string) => void;
}

/**
 * The analysis of one TU once its compile command is known; `symbols` gives
 * the running object's symbol table (or why there is none). Fixture tests
 * call it with their own command and the original object as the "kernel".
 */
export async function analyzeCompiledTu(
  p: {
    cmd: CompileCommand;
    tu: { path: string; directives: number };
    dirs: AnalysisDirs;
    object: string;
    symbols: () => SymbolIndex | string;
  },
  report: AnalysisReport,
): Promise<void> {
  const { cmd, tu, dirs, object } = p;
  const objDir = new WorkLayout(dirs.workDir).objects(tu.path);
  // The running object's symbols are read while both compilers run: the event loop is idle then.
  let spawned = 0;
  const warm = () => {
    try {
      p.symbols();
    } catch {
      /* reported where the index is used */
    }
  };
  const onSpawned = () => {
    if (++spawned === 2) setImmediate(warm);
  };
  const [orig, patched] = await Promise.all([
    buildVariant(cmd, join(dirs.origRoot, tu.path), dirs.origRoot, objDir.original, tu.path, onSpawned),
    buildVariant(cmd, join(dirs.patchedRoot, tu.path), dirs.patchedRoot, objDir.patched, tu.path, onSpawned),
  ]);
  dirs.onPatchedModel?.(patched.model, tu.path);
  const origText = await readFile(join(objDir.original, `${objDir.base}.i`), 'utf8');
  const patchedText = await readFile(objDir.patchedPreprocessed, 'utf8');

  // Source level: which functions' text changed; data and type changes are refused.
  // The .c's own definitions, and those of the changed headers it includes.
  const mine = new Set([tu.path, ...(dirs.headers ?? [])]);
  const fo = ownFunctions(orig.model, mine, origText);
  const fp = ownFunctions(patched.model, mine, patchedText);
  const sourceChanged = [...fo]
    .filter(([n, v]) => fp.has(n) && fp.get(n)?.text !== v.text)
    .map(([n]) => n)
    .sort();
  const added = [...fp.keys()].filter((n) => !fo.has(n)).sort();
  const removed = [...fo.keys()].filter((n) => !fp.has(n)).sort();
  const oo = ownOthers(orig.model, mine, origText);
  const op = ownOthers(patched.model, mine, patchedText);
  const [layoutsBefore, layoutsAfter] = await Promise.all([
    readLayouts(orig.objectFile),
    readLayouts(patched.objectFile),
  ]);
  const haveLayouts = layoutsBefore !== null && layoutsAfter !== null;
  /** Changed constants the module carries, with the functions of the running kernel that read them. */
  const changedData = new Map<string, string[]>();
  /** Variables whose own text changed: judged there. */
  const judgedData = new Set<string>();
  // Types whose text changed: the layouts in the objects decide (below), not the text.
  const retexted = new Map<string, TuEntity>();
  for (const [key, v] of op) {
    const before = oo.get(key);
    const e = v.entity;
    if (before && before.text !== v.text) {
      const at = { file: e.span.file, line: e.span.line };
      let reason = '';
      let kind: RefusalKind = 'data-change';
      const typeKey = layoutKey(e);
      // `typedef struct foo { ... } foo_t;`: the struct's own entry is judged by its layout.
      const tagged = e.kind === 'typedef' ? /^typedef (struct|union) (\w+) \{/.exec(v.text) : null;
      if (haveLayouts && tagged && layoutsAfter.has(`${tagged[1]} ${tagged[2]}`) && op.has(`${tagged[1]} ${tagged[2]}`))
        continue;
      if (
        haveLayouts &&
        (e.kind === 'struct' || e.kind === 'union' || (e.kind === 'typedef' && layoutsAfter.has(typeKey)))
      ) {
        retexted.set(typeKey, e);
        continue;
      }
      if (e.kind === 'variable') {
        judgedData.add(e.name);
        // The objects decide: a constant only replaced code reads moves into the module.
        const v = await judgeChangedData(e.name, orig, patched);
        if (v.kind === 'code' || v.kind === 'same') {
          report.notes.push(
            `${tu.path}:${e.span.line}: ${e.name} changed ${v.kind === 'code' ? 'but neither build has it as data (folded into code or unused): the code diff covers it' : 'in its text but not its contents'}`,
          );
          continue;
        }
        if (v.kind === 'copy') {
          changedData.set(e.name, v.readers);
          report.notes.push(
            `${tu.path}:${e.span.line}: ${e.name} changed: read-only, read only by ${v.readers.length ? v.readers.join(', ') : 'code that changes with it'}; the livepatch carries the new contents and replaces its readers${v.passed.length ? ` (its address is passed to ${v.passed.join(', ')}, which must not keep it)` : ''}`,
          );
          continue;
        }
        if (v.init) kind = 'init-exit';
        reason = v.reason;
      } else if (e.kind === 'struct' || e.kind === 'union')
        [kind, reason] = [
          'struct-layout',
          `data layout change: ${e.kind} ${e.name} changed (no debug info to compare its layout)`,
        ];
      else if (e.kind === 'enum' || e.kind === 'enumerator')
        [kind, reason] = [
          'constant-change',
          `${e.kind} ${e.name} changed: constants baked into unchanged code would disagree`,
        ];
      else if (e.kind === 'typedef' && haveLayouts) {
        // A scalar, pointer or function type: what uses it is judged by the objects (code diff,
        // every variable's size and contents below, every struct's layout).
        report.notes.push(
          `${e.span.file}:${e.span.line}: typedef ${e.name} changed: judged by what uses it (code, variable sizes and contents, struct layouts)`,
        );
        continue;
      } else if (e.kind === 'typedef') [kind, reason] = ['type-change', `type change: typedef ${e.name} changed`];
      // One refusal per definition, however many TUs include its header: it names the first.
      if (e.span.file !== tu.path) reason += ` (a header definition; ${tu.path} uses it)`;
      if (reason && !report.refusals.some((r) => r.kind === kind && r.file === at.file && r.line === at.line))
        report.refusals.push({ kind, reason, ...at });
    } else if (!before && e.kind === 'variable' && e.definition) {
      report.notes.push(
        `${tu.path}:${e.span.line}: new variable ${e.name}: it will live in the livepatch module, initialised afresh`,
      );
    }
  }

  // Data whose text is the same but whose size or contents are not (a macro, a typedef, an
  // enumerator or a struct of a header it uses changed): judged by the same rule.
  for (const [name, a] of orig.code.data) {
    const b = patched.code.data.get(name);
    if (!b || judgedData.has(name) || isNumberedLocal(name) || !/^\.(data|rodata|bss)\b/.test(a.section)) continue;
    if (a.size === b.size && a.section === b.section && compareCode(a, b) === undefined) continue;
    const ent = patched.model.entities.find((x) => x.kind === 'variable' && x.name === name && x.definition);
    const at = {
      file: ent?.span.file ?? tu.path,
      line: ent?.span.line ?? firstAddedLineIn(tu.path, patchedText, origText),
    };
    const why = a.size !== b.size ? `its size changes from ${a.size} to ${b.size} bytes` : 'its contents change';
    const v = await judgeChangedData(name, orig, patched);
    if (v.kind === 'copy') {
      changedData.set(name, v.readers);
      report.notes.push(
        `${at.file}:${at.line}: ${name}: ${why}, though its text does not: read-only, read only by ${v.readers.join(', ') || 'code that changes with it'}; the livepatch carries the new contents and replaces its readers`,
      );
      continue;
    }
    const reason =
      v.kind === 'refuse'
        ? `${v.reason} (${why}, though its text does not)`
        : `data change: ${name}: ${why}, though its text does not; the running kernel's instance would not follow`;
    if (!report.refusals.some((r) => r.file === at.file && r.line === at.line && r.reason === reason))
      report.refusals.push({ kind: v.kind === 'refuse' && v.init ? 'init-exit' : 'data-change', reason, ...at });
  }

  const changes = diffFunctions(orig.code, patched.code);
  if (haveLayouts) {
    refuseLayoutChanges(report, tu.path, layoutsBefore, layoutsAfter, retexted, patched.model, {
      codeChanged: changes.length > 0,
      line: () => firstAddedLineIn(tu.path, patchedText, origText),
    });
  }

  // Object level.
  // Entries of the kernel's registration tables (a new PCI fixup, module parameter, initcall):
  // they change behaviour without changing a function, and cannot be added to a running kernel.
  for (const t of changedTables(orig.code, patched.code)) {
    report.refusals.push({
      kind: 'kernel-table',
      reason: `the fix ${t.after > t.before ? 'adds entries to' : t.after < t.before ? 'removes entries from' : 'changes'} ${t.section} (${t.before} -> ${t.after} bytes), a table the kernel reads from its image: a livepatch cannot change it`,
      file: tu.path,
      line: firstAddedLineIn(tu.path, patchedText, origText),
    });
  }
  const codeChanged = changes.flatMap((c) =>
    c.status === 'changed' ? [{ name: c.name, reason: c.reason, firstDifference: c.firstDifference }] : [],
  );
  const closure = inliningClosure(parseIpaClones(orig.ipaClones, 'ipa-clones of the original build'), sourceChanged);
  const noSymbol = sourceChanged.filter((n) => !orig.code.functions.has(n));

  const tuReport: TuReport = {
    file: tu.path,
    object,
    sourceChanged,
    addedFunctions: added,
    removedFunctions: removed,
    codeChanged,
    noSymbol,
    ...(changedData.size ? { changedData: [...changedData].map(([name, readers]) => ({ name, readers })) } : {}),
    lineDirectives: tu.directives,
  };
  report.tus.push(tuReport);

  // Candidates with their reasons, then mapped to symbols livepatch can redirect.
  const reasons = new Map<string, Reason[]>();
  const add = (name: string, r: Reason) => {
    const list = reasons.get(name) ?? [];
    if (!list.some((x) => x.kind === r.kind && x.detail === r.detail)) list.push(r);
    reasons.set(name, list);
  };
  for (const n of sourceChanged) add(n, { kind: 'source', detail: 'its source changed', evidence: 'patch' });
  for (const c of codeChanged)
    add(c.name, { kind: 'code', detail: `machine code changed: ${c.reason}`, evidence: 'object diff' });
  for (const [v, readers] of changedData)
    for (const r of readers)
      add(r, {
        kind: 'data',
        detail: `reads ${v}, whose contents change (the module carries the new ${v})`,
        evidence: 'object diff',
      });
  for (const [name, chain] of closure) {
    if (chain.length === 0) continue; // a changed function itself
    const path = chain
      .map((r) =>
        r.kind === 'inlined' ? `${r.from} inlined into ${r.into}` : `${r.clone} is a ${r.suffix} clone of ${r.of}`,
      )
      .join(', ');
    const last = chain[chain.length - 1];
    add(name, { kind: last?.kind === 'inlined' ? 'inlined' : 'clone', detail: path, evidence: 'ipa-clones' });
  }

  // Callers: relocations, plus GCC's call graph for calls the assembler resolved itself.
  // A function's own .cold/.part pieces jump back into it: they are not callers.
  const ownPiece = (c: string, name: string) => c === name || c.replace(/\.(cold|part)(\.\d+)?$/, '') === name;
  const callersOf = (name: string) =>
    [...new Set([...referrers(orig.code, name), ...(orig.callGraph.callers.get(name) ?? [])])]
      .filter((c) => !ownPiece(c, name))
      .sort();
  const final = new Map<string, Reason[]>();
  const queue = [...reasons.keys()];
  const seen = new Set<string>();
  while (queue.length) {
    const name = queue.shift() as string;
    if (seen.has(name)) continue;
    seen.add(name);
    const why = reasons.get(name) ?? [];
    const f = orig.code.functions.get(name);
    if (!f) continue; // inlined everywhere or not emitted: its callers are in the set through ipa-clones
    const parent = coldParent(name);
    if (parent !== undefined) {
      add(parent, { kind: 'cold-part', detail: `its .cold part ${name} changed`, evidence: 'object diff' });
      queue.push(parent);
      continue;
    }
    if (isPrivateClone(name)) {
      // A clone has its own calling convention: patch the functions that call it.
      const callers = callersOf(name);
      if (callers.length === 0) {
        report.refusals.push({
          kind: 'private-clone',
          function: name,
          reason: `${name} changed, is a compiler clone with a private calling convention, and no function of ${tu.path} calls it`,
          file: tu.path,
          line: lineOf(patched.model, tu.path, name),
        });
      }
      for (const c of callers) {
        add(c, {
          kind: 'caller-of-clone',
          detail: `calls ${name}, a clone whose code changed`,
          evidence: 'object diff',
        });
        queue.push(c);
      }
      continue;
    }
    const twins = aliasesIn(orig.code, f);
    if (twins.length) {
      // Identical code folding: several names, one body, one address. ftrace redirects the
      // address, so all the names move together. If every caller of ours is replaced anyway,
      // leave the address alone; otherwise redirect it, but only when every caller of the
      // other names is replaced too (they must not reach our new code). Global names may have
      // callers in other TUs: refuse.
      const names = [f, ...twins];
      const line = lineOf(patched.model, tu.path, name);
      if (names.some((g) => g.bind !== 'local')) {
        report.refusals.push({
          kind: 'shared-address',
          function: name,
          reason: `${name} changed and shares its code with ${twins.map((t) => t.name).join(', ')} (identical code folding); one of them is global, so not all callers can be seen`,
          file: tu.path,
          line,
        });
        continue;
      }
      const covered = (g: FunctionCode) =>
        callersOf(g.name).every((c) => reasons.has(c) || names.some((n) => n.name === c));
      if (covered(f)) continue;
      if (twins.every(covered)) {
        final.set(name, [
          ...why,
          {
            kind: 'code',
            detail: `shares its address with ${twins.map((t) => t.name).join(', ')} (ICF), whose callers are all replaced`,
            evidence: 'object diff',
          },
        ]);
        continue;
      }
      report.refusals.push({
        kind: 'shared-address',
        function: name,
        reason: `${name} changed and shares its code with ${twins.map((t) => t.name).join(', ')} (identical code folding), whose callers do not all change`,
        file: tu.path,
        line,
      });
      continue;
    }
    const ent = fo.get(name)?.entity ?? fp.get(name)?.entity;
    if (ent?.flags.init || ent?.flags.exit || /^\.(init|exit)\./.test(f.section.replace(/^\.text/, ''))) {
      report.refusals.push({
        kind: 'init-exit',
        function: name,
        reason: `${name} is ${ent?.flags.exit ? '__exit' : '__init'} code: it is gone after boot (or never runs) and cannot be livepatched`,
        file: tu.path,
        line: lineOf(patched.model, tu.path, name),
      });
      continue;
    }
    if (!hasFentry(f)) {
      if (f.bind !== 'local') {
        report.refusals.push({
          kind: 'untraceable',
          function: name,
          reason: `${name} changed but cannot be traced (no __fentry__ call) and is global: its callers in other files cannot all be replaced`,
          file: tu.path,
          line: lineOf(patched.model, tu.path, name),
        });
        continue;
      }
      const callers = callersOf(name);
      if (callers.length === 0) {
        report.refusals.push({
          kind: 'untraceable',
          function: name,
          reason: `${name} changed but cannot be traced (no __fentry__ call: notrace or noinstr) and no function of ${tu.path} calls it`,
          file: tu.path,
          line: lineOf(patched.model, tu.path, name),
        });
      }
      for (const c of callers) {
        add(c, {
          kind: 'caller-of-untraceable',
          detail: `calls ${name}, which changed and cannot be traced`,
          evidence: 'object diff',
        });
        queue.push(c);
      }
      continue;
    }
    final.set(name, why);
  }

  // A static function the patched build inlined into every caller (or only calls as a clone or
  // a split-off piece) has no new body of its own. When each caller of its running copy is
  // replaced and nothing takes its address, that copy is never called again: not installed.
  const replacedCallers = new Set(final.keys());
  for (const name of [...final.keys()]) {
    if (!deadAfterTransition(name, orig.code, patched.code, callersOf, replacedCallers)) continue;
    final.delete(name);
    report.notes.push(
      `${tu.path}: ${name} has no body of its own in the patched build (inlined, or only clones and pieces its new callers carry), and every caller of its running copy is replaced or is a clone only replaced functions call: its old copy is no longer called, so it is not installed`,
    );
  }

  // Map to the running kernel.
  const tuLocals = new Set([...orig.code.functions.values()].filter((f) => f.bind === 'local').map((f) => f.name));
  if (final.size === 0) {
    // Code changed, yet nothing to redirect and nothing refused: never report that as safe.
    const refusedHere = report.refusals.some((r) => r.file === tu.path);
    const changedCode = codeChanged.filter((c) => orig.code.functions.has(c.name));
    if (!refusedHere && changedCode.length) {
      report.refusals.push({
        kind: 'uncovered-code',
        reason: `code of ${changedCode.map((c) => c.name).join(', ')} changed but no function klpgen can redirect covers it`,
        file: tu.path,
        line: 1,
      });
    }
    return;
  }
  const index = p.symbols();
  if (typeof index === 'string') {
    report.refusals.push({ kind: 'symbol-not-found', reason: index, file: tu.path, line: 1 });
    return;
  }
  for (const [name, why] of final) {
    const loc = locateSymbol(index, name, tu.path, tuLocals);
    if (!loc.found) {
      report.refusals.push({
        kind: 'symbol-not-found',
        function: name,
        reason: `${name} must be replaced but: ${loc.why}`,
        file: tu.path,
        line: lineOf(patched.model, tu.path, name),
      });
      continue;
    }
    // In a relocatable object (a module) addresses are section offsets: no aliasing to see there.
    const aliases = index.linked ? aliasesOf(index, loc.symbol).filter((a) => !final.has(a.name)) : [];
    if (aliases.length) {
      report.refusals.push({
        kind: 'shared-address',
        function: name,
        reason: `${name} shares its address with ${aliases.map((a) => a.name).join(', ')} (identical code folding or an alias): redirecting it would redirect them too`,
        file: tu.path,
        line: lineOf(patched.model, tu.path, name),
      });
      continue;
    }
    report.mustReplace.push({
      object,
      symbol: name,
      sympos: loc.sympos,
      file: tu.path,
      line: lineOf(patched.model, tu.path, name),
      reasons: why,
    });
  }
}

/**
 * A function whose running copy nothing can reach once the callers are replaced: static, with
 * no body of its own in the patched build (at most clones or pieces split off it, which the new
 * callers carry); called (not address-taken) only by replaced functions, or by compiler clones
 * only such functions call; not stored in any data.
 */
export function deadAfterTransition(
  name: string,
  orig: ObjectCode,
  patched: ObjectCode,
  callersOf: (fn: string) => string[],
  replaced: Set<string>,
): boolean {
  const f = orig.functions.get(name);
  if (!f || f.bind !== 'local' || !hasFentry(f)) return false;
  // (Its clones and split pieces there have private calling conventions: only the new callers,
  // which carry them, call them. A body of its own could be called or have its address taken.)
  if (patched.functions.has(name)) return false;
  // Every reference from the caller's code is a direct call or jump: no pointer to the old copy escapes.
  const callsOnly = (callee: string, caller: string) => {
    const code = orig.functions.get(caller);
    if (!code) return false;
    for (const r of code.relocs) {
      if (r.target !== callee && r.raw !== callee) continue;
      const op = code.bytes[r.offset - 1];
      const jcc = code.bytes[r.offset - 2] === 0x0f && op !== undefined && op >= 0x80 && op <= 0x8f;
      if (op !== 0xe8 && op !== 0xe9 && !jcc) return false;
    }
    return true;
  };
  const inData = (fn: string) =>
    [...orig.data.values()].some((d) => d.relocs.some((r) => r.target === fn || r.raw === fn));
  // A caller is gone after the transition when it is replaced, or is a clone only such callers call.
  const gone = (callee: string, caller: string, seen: ReadonlySet<string>): boolean => {
    if (caller === name || !callsOnly(callee, caller)) return false;
    if (replaced.has(coldParent(caller) ?? caller)) return true;
    if (!isPrivateClone(caller) || seen.has(caller) || inData(caller)) return false;
    const up = callersOf(caller);
    return up.length > 0 && up.every((c) => gone(caller, c, new Set([...seen, caller])));
  };
  const callers = callersOf(name);
  return callers.length > 0 && callers.every((c) => gone(name, c, new Set())) && !inData(name);
}

/** A type's key as pahole's layouts name it: "struct foo", "union bar", "typedef foo_t". */
function layoutKey(e: TuEntity): string {
  return `${e.kind} ${e.name}`;
}

/**
 * Every struct and union both objects describe, compared by layout: one whose
 * members move is refused at its definition, whether its own text changed or a
 * macro it uses did; one whose text changed but not its layout is a note. A type
 * whose text changed but that neither object describes is used by no emitted
 * data or debug info of this TU: harmless if the TU's code is the same.
 */
function refuseLayoutChanges(
  report: AnalysisReport,
  file: string,
  before: Map<string, Layout>,
  after: Map<string, Layout>,
  retexted: Map<string, TuEntity>,
  model: TuModel,
  tu: { codeChanged: boolean; line: () => number },
): void {
  const definitions = new Map<string, TuEntity>();
  for (const e of model.entities) {
    if (!e.definition && e.kind !== 'typedef') continue;
    const key = layoutKey(e);
    if (!definitions.has(key)) definitions.set(key, e);
  }
  const refuse = (kind: RefusalKind, key: string, why: string) => {
    const e = retexted.get(key) ?? definitions.get(key);
    const at = e ? { file: e.span.file, line: e.span.line } : { file, line: tu.line() };
    const where = at.file !== file ? ` (a header definition; ${file} uses it)` : '';
    if (report.refusals.some((r) => r.file === at.file && r.line === at.line && r.kind === kind)) return;
    report.refusals.push({ kind, reason: `data layout change: ${key} changed: ${why}${where}`, ...at });
  };
  for (const [key, a] of before) {
    const b = after.get(key);
    if (!b) continue;
    const v = compareLayouts(a, b);
    if (!v.same) {
      refuse(v.retype ? 'type-change' : 'struct-layout', key, v.why);
      continue;
    }
    const e = retexted.get(key);
    if (!e) continue;
    const what = [
      v.renamed.length ? `renamed ${v.renamed.join(', ')}` : '',
      v.retyped.length ? `retyped ${v.retyped.join(', ')}` : '',
    ].filter(Boolean);
    const note = `${e.span.file}:${e.span.line}: ${key} changed but not its layout (size ${b.size}, every member at its offset${what.length ? `; ${what.join('; ')}` : ''}): the running kernel's data stays valid, code that uses it is in the object diff`;
    if (!report.notes.includes(note)) report.notes.push(note);
  }
  for (const [key] of retexted) {
    const inBefore = before.has(key);
    const inAfter = after.has(key);
    if (inBefore && inAfter) continue;
    if (inBefore !== inAfter)
      refuse(
        'struct-layout',
        key,
        `the ${inAfter ? 'patched' : 'original'} build alone describes it: ${file} starts or stops using it`,
      );
    else if (tu.codeChanged)
      refuse('struct-layout', key, `${file} has no debug info for it to compare its layout, and its code changes`);
  }
}

/** The first line of the .c (patched numbering) that the preprocessed texts disagree on, from their line markers; 1 if none. */
function firstAddedLineIn(file: string, patchedText: string, origText: string): number {
  const lines = (text: string) => {
    const out: number[] = [];
    let inFile = false;
    let line = 0;
    for (const l of text.split('\n')) {
      const m = /^# (\d+) "([^"]*)"/.exec(l);
      if (m) {
        line = Number(m[1]);
        inFile = (m[2] as string).endsWith(file);
        continue;
      }
      if (inFile && l.trim()) out.push(line);
      line++;
    }
    return out;
  };
  const a = new Set(lines(origText));
  return lines(patchedText).find((l) => !a.has(l)) ?? 1;
}

function lineOf(model: TuModel, file: string, name: string): number {
  const base = baseFunction(name);
  return (
    model.entities.find((e) => e.name === base && e.kind === 'function' && e.definition && e.span.file === file)?.span
      .line ?? 0
  );
}

export function formatAnalysis(r: AnalysisReport): string {
  const lines: string[] = [];
  for (const tu of r.tus) {
    lines.push(
      `${tu.file} (${tu.object}): source changed: ${tu.sourceChanged.join(', ') || '-'}; code changed: ${tu.codeChanged.map((c) => c.name).join(', ') || '-'}${tu.addedFunctions.length ? `; new: ${tu.addedFunctions.join(', ')}` : ''}`,
    );
  }
  lines.push(r.mustReplace.length ? 'must replace:' : 'must replace: nothing');
  for (const e of r.mustReplace) {
    lines.push(`  ${e.object}:${e.symbol}${e.sympos ? `,${e.sympos}` : ''}  (${e.file}:${e.line})`);
    for (const why of e.reasons) lines.push(`      ${why.detail} [${why.evidence}]`);
  }
  for (const f of r.refusals) lines.push(`refused: ${f.file}:${f.line}: ${f.reason}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  lines.push(`work dir: ${r.workDir}`);
  return lines.join('\n');
}
