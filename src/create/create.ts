import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { analyze, type AnalysisReport } from '../analyze/analyze.js';
import { buildModel } from '../frontend/model.js';
import { parseElf } from '../elf/elf64.js';
import { hasFentry, readObjectCode } from '../analyze/objdiff.js';
import { loadSymbolIndex, locateSymbol, type SymbolIndex } from '../analyze/symbols.js';
import { klpConvert } from '../kmod/klp-convert.js';
import { readSymvers } from '../kmod/symvers.js';
import { redirectStaticLocals, staticLocalsOf } from '../kmod/static-locals.js';
import { indexModules, moduleKey } from '../vm/initramfs.js';
import { formatVerification, verify, type Verification } from '../verify/verify.js';
import { emitModule, type EmittedModule } from '../emit/emit.js';
import { compileCommand, objectOf } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import { makeEnv } from '../target/setup.js';
import { compilerDiagnostics } from '../kmod/build.js';
import { KlpgenError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { info, timed } from '../util/progress.js';

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
}

export interface CreateReport {
  name: string;
  module: string;
  source: string;
  analysis: AnalysisReport;
  emitted: Omit<EmittedModule, 'source' | 'scaffolding' | 'lineMap'>;
  /** Undefined symbols of the built module and how each is resolved. */
  symbols: { name: string; resolution: 'exported' | 'klp'; object?: string; sympos?: number }[];
  /** How each static local of the new code was tied (or not) to the running kernel. */
  staticLocals: string[];
  verification: Verification;
  workDir: string;
}

export function moduleName(name: string): string {
  const n = name.replace(/[^A-Za-z0-9_]/g, '_');
  if (!/^[A-Za-z_]/.test(n) || n.length > 55) throw new KlpgenError(`--name ${name}: not a valid module name`);
  return n;
}

export async function create(target: TargetManifest, o: CreateOptions): Promise<CreateReport> {
  const workDir = resolve(o.workDir);
  const name = moduleName(o.name);
  const report = await timed('analyze', () => analyze(target, { patches: o.patches, workDir }));
  if (!report.ok) {
    throw new KlpgenError(`refused:\n${report.refusals.map((f) => `  ${f.file}:${f.line}: ${f.reason}`).join('\n')}`, 2);
  }
  if (report.mustReplace.length === 0) throw new KlpgenError('the patches change no running code: there is nothing to livepatch');
  const files = [...new Set(report.mustReplace.map((e) => e.file))];
  if (files.length > 1) throw new KlpgenError(`the fix changes code in ${files.length} translation units (${files.join(', ')}); one per livepatch is supported today`);
  const file = files[0] as string;
  const tu = report.tus.find((t) => t.file === file);

  // The patched build's model (the analysis wrote its .i).
  const base = basename(file, '.c');
  const objDir = join(workDir, '2-objects', file.replace(/\//g, '_').replace(/\.c$/, ''), 'patched');
  const patchedSource = join(workDir, '1-sources', 'patched', file);
  const patchedText = await readFile(patchedSource, 'utf8');
  const preprocessed = await readFile(join(objDir, `${base}.i`), 'latin1');
  const model = buildModel({ preprocessed, file, sourceText: patchedText, sourceRoot: join(workDir, '1-sources', 'patched') });
  const cmd = await compileCommand(target, file);
  const { modName } = objectOf(cmd);
  const originalObject = join(workDir, '2-objects', file.replace(/\//g, '_').replace(/\.c$/, ''), 'original', `${base}.o`);
  const origCode = readObjectCode(parseElf(await readFile(originalObject), originalObject));
  const originalFunctions = new Set(origCode.functions.keys());
  const patchedObject = join(objDir, `${base}.o`);
  const patchedCode = readObjectCode(parseElf(await readFile(patchedObject), patchedObject));
  const patchedReferences = new Set(report.mustReplace.flatMap((e) => (patchedCode.functions.get(e.symbol)?.relocs ?? []).map((r) => r.raw)));
  const emitted = emitModule({
    report, file, patchedText, model, preprocessed, name, replace: o.replace, modName, originalFunctions, patchedReferences,
  });

  const srcDir = join(workDir, '4-source');
  await rm(srcDir, { recursive: true, force: true });
  await mkdir(srcDir, { recursive: true });
  const stem = name.replace(/_/g, '-');
  const kmodDir = join(workDir, '5-kmod');
  const cName = `${stem}.c`;
  await writeFile(join(srcDir, cName), emitted.source);
  await writeFile(join(srcDir, `${stem}-klp.c`), emitted.scaffolding);
  // The TU's own directory comes first for its "local.h" includes; the full source tree
  // for internal headers the headers package does not ship (kernel/sched/sched.h, ...).
  const dir = dirname(join(target.paths.source, file));
  await writeFile(join(srcDir, 'Kbuild'), [
    `obj-m += livepatch-${stem}.o`,
    `livepatch-${stem}-y := ${stem}.o ${stem}-klp.o`,
    // Function and data sections as in the analysis' patched build, which verification compares with.
    `CFLAGS_${stem}.o += -I${dir} -I${target.paths.source}/include -ffunction-sections -fdata-sections`,
    '',
  ].join('\n'));

  await rm(kmodDir, { recursive: true, force: true });
  await mkdir(kmodDir, { recursive: true });
  for (const f of readdirSync(srcDir)) await copyFile(join(srcDir, f), join(kmodDir, f));
  const build = await timed('build module', () => run('make', [
    '-C', target.paths.headers, `M=${kmodDir}`,
    // Unexported symbols are resolved below by klp-convert, not by modpost.
    'KBUILD_MODPOST_WARN=1',
    // Same inputs, same bytes: the work dir's path must not reach the debug info (also of the .mod.c).
    `KCFLAGS=-fdebug-prefix-map=${kmodDir}=livepatch -fmacro-prefix-map=${kmodDir}/=`,
    'modules',
  ], { env: makeEnv() }));
  if (build.code !== 0) {
    throw new KlpgenError(`building the livepatch failed (source: ${join(srcDir, cName)}):\n${mapDiagnostics(compilerDiagnostics(`${build.stdout}${build.stderr}`), emitted, cName)}`);
  }
  const ko = join(kmodDir, `livepatch-${stem}.ko`);
  if (!existsSync(ko)) throw new KlpgenError(`the module build produced no ${basename(ko)}`);
  info(`built ${ko}`);

  // Verification: the new functions equal the patched build's, and no changed code is left out.
  const verification = verify({
    moduleObject: join(kmodDir, `${stem}.o`),
    patchedObject,
    functions: new Map(emitted.copied.map((c) => [c.as, c.name])),
    codeChanged: (tu?.codeChanged ?? []).map((c) => c.name),
    replaced: new Set(report.mustReplace.map((e) => e.symbol)),
    coveredByCallers: new Set((tu?.codeChanged ?? []).map((c) => origCode.functions.get(c.name)).filter((f) => f !== undefined && !hasFentry(f)).map((f) => f!.name)),
  });
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
  for (const l of staticLocalsOf(await readFile(ko), ko)) {
    const base = l.name.replace(/\.\d+$/, '');
    const owners = l.owners.map((o) => (o.startsWith('livepatch_') ? o.slice('livepatch_'.length) : o));
    const same = (raw: string) => /\.\d+$/.test(raw) && raw.replace(/\.\d+$/, '') === base;
    let found = new Set(owners.flatMap((o) => (origCode.functions.get(o)?.relocs ?? []).map((r) => r.raw).filter(same)));
    // An owner inlined everywhere in the original: its static is then the only one of that name.
    if (found.size === 0) found = new Set([...origCode.data.keys()].filter(same));
    if (found.size > 1) {
      throw new KlpgenError(`refused:\n  ${file}: static local ${base} of ${owners.join(', ')} matches ${[...found].join(', ')} in the original build`, 2);
    }
    const to = [...found][0];
    if (to) {
      redirects.push({ from: l.name, to });
      staticNotes.push(`static local ${base} of ${owners.join(', ')}: the running kernel's ${to}`);
    } else {
      staticNotes.push(`static local ${base} of ${owners.join(', ')}: new in the fix, a fresh instance`);
    }
  }
  const built = redirectStaticLocals(await readFile(ko), redirects, ko);

  // Symbols the running kernel does not export become KLP relocations (klp-convert).
  const object = report.mustReplace[0]?.object ?? 'vmlinux';
  const resolution = resolveUndefined(target, built, ko, object, file, originalObject);
  let converted: Buffer;
  try {
    converted = klpConvert(built, resolution.filter((r) => r.resolution === 'klp').map((r) => ({ name: r.name, object: r.object as string, sympos: r.sympos as number })), ko);
  } catch (e) {
    // A reference the kernel cannot defer (a jump label or tracepoint of a module object) is a refusal.
    if (e instanceof KlpgenError && /cannot be a livepatch relocation/.test(e.message)) {
      throw new KlpgenError(`refused:\n  ${file}: ${e.message.replace(/^.*?: relocation/, 'relocation')}`, 2);
    }
    throw e;
  }
  const out = resolve(o.out ?? `livepatch-${stem}.ko`);
  await writeFile(join(kmodDir, `livepatch-${stem}.klp.ko`), converted);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, converted);
  return {
    name, module: out, source: join(srcDir, cName), analysis: report,
    emitted: { externalized: emitted.externalized, copied: emitted.copied },
    symbols: resolution.map((r) => ({ name: r.name, resolution: r.resolution, ...(r.resolution === 'klp' ? { sympos: r.sympos as number, object: r.object } : {}) })),
    staticLocals: staticNotes,
    verification,
    workDir,
  };
}

interface Resolution { name: string; resolution: 'exported' | 'klp'; object?: string; sympos?: number }

/**
 * Every undefined symbol of the built module: exported ones (Module.symvers)
 * stay ordinary; the rest must be in the running kernel (the patched module,
 * then vmlinux), found with their sympos like the replaced functions.
 */
function resolveUndefined(target: TargetManifest, ko: Buffer, koPath: string, object: string, file: string, originalObject: string): Resolution[] {
  const exported = readSymvers(target.paths.moduleSymvers);
  const elf = parseElf(ko, koPath);
  const tuLocals = new Set([...readObjectCode(parseElf(readFileSync(originalObject), originalObject)).functions.values()].filter((f) => f.bind === 'local').map((f) => f.name));
  const indexes: SymbolIndex[] = [];
  if (object !== 'vmlinux') {
    const modKo = indexModules(target.paths.modules).get(moduleKey(object));
    if (modKo) indexes.push(loadSymbolIndex(modKo, object, false));
  }
  indexes.push(loadSymbolIndex(target.paths.vmlinux, 'vmlinux', true));
  const out: Resolution[] = [];
  const missing: string[] = [];
  for (const s of elf.symbols()) {
    if (s.shndx !== 0 || !s.name || s.type === 4) continue;
    if (exported.has(s.name) || s.name === '__this_module') {
      out.push({ name: s.name, resolution: 'exported' });
      continue;
    }
    let found = false;
    for (const index of indexes) {
      const loc = locateSymbol(index, s.name, file, tuLocals);
      if (loc.found) {
        out.push({ name: s.name, resolution: 'klp', object: index.object, sympos: loc.sympos });
        found = true;
        break;
      }
    }
    if (!found) missing.push(s.name);
  }
  if (missing.length) throw new KlpgenError(`the livepatch needs symbols the running kernel does not have: ${missing.join(', ')}`);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Add the original file:line to compiler messages about generated lines. */
function mapDiagnostics(text: string, emitted: EmittedModule, cName: string): string {
  return text.replace(new RegExp(`([^\\s:]*${cName.replace(/[.-]/g, '\\$&')}):(\\d+):(\\d+):`, 'g'), (m, _f: string, line: string) => {
    const orig = emitted.lineMap[Number(line) - 1];
    return orig && orig.line ? `${m} [${orig.file}:${orig.line}]` : m;
  });
}
