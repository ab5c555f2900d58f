import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseElf, STB_GLOBAL, STB_LOCAL, STB_WEAK, STT_FUNC, SHN_UNDEF } from '../../src/elf/elf64.js';
import { buildModel, FrontendError, type TuModel } from '../../src/frontend/model.js';
import { compileArgv, compileCommands, type CompileCommand } from '../../src/target/compile-command.js';
import { loadTarget } from '../../src/target/manifest.js';
import { ROOT, ensureTarget, tempDir } from '../helpers.js';

/**
 * The frontend on real translation units of the target: zero parse errors,
 * no identifier left unresolved, and agreement with gcc's own symbol table.
 * CI runs every 8th TU of the committed sample; KLPGEN_TU_SAMPLE=all runs all.
 */
const SAMPLE = readFileSync(join(ROOT, 'test/corpus/tu-sample.txt'), 'utf8').split('\n').filter(Boolean);
const files = process.env.KLPGEN_TU_SAMPLE === 'all' ? SAMPLE : SAMPLE.filter((_, i) => i % 8 === 0);

/** foo.isra.0, foo.constprop.3.isra.0, foo.part.1, foo.cold → foo */
export function foldCloneSuffixes(sym: string): string {
  return sym.replace(/\.(isra|constprop|part|cold|lto_priv)(\.\d+)?/g, '');
}

function disagreements(model: TuModel, objectPath: string): string[] {
  const problems: string[] = [];
  const defs = new Map<string, { linkage: string }[]>();
  for (const e of model.entities) {
    if (e.kind === 'function' && e.definition) defs.set(e.name, [...(defs.get(e.name) ?? []), { linkage: e.linkage }]);
  }
  const asm = new Map(model.asmFunctions.map((f) => [f.name, f.global]));
  const elf = parseElf(readFileSync(objectPath), objectPath);
  for (const s of elf.symbols()) {
    if (s.type !== STT_FUNC || s.shndx === SHN_UNDEF) continue;
    if (s.bind === STB_GLOBAL || s.bind === STB_WEAK) {
      if (asm.get(s.name) === true) continue;
      if (!defs.get(s.name)?.some((d) => d.linkage === 'external'))
        problems.push(`global ${s.name}: no external function definition in the model`);
    } else if (s.bind === STB_LOCAL) {
      if (asm.has(s.name)) continue;
      const base = foldCloneSuffixes(s.name);
      // A clone or split part is local even when its parent is global.
      const ok = base === s.name ? defs.get(base)?.some((d) => d.linkage === 'internal') : defs.has(base);
      if (!ok)
        problems.push(
          `static ${s.name}: no ${base === s.name ? 'static ' : ''}function definition ${base} in the model`,
        );
    }
  }
  return problems;
}

test(`frontend: ${files.length} real TUs parse with zero errors and agree with gcc's symbols`, async () => {
  const target = await loadTarget(ensureTarget().abi);
  const commands = await compileCommands(target, files);
  const work = tempDir('corpus');
  const failures: string[] = [];
  let entities = 0;
  let checkedSymbols = 0;
  for (const file of files) {
    const cmd = commands.get(file);
    if (!(cmd && 'argv' in cmd)) {
      failures.push(`${file}: no compile command: ${cmd instanceof Error ? cmd.message : 'missing'}`);
      continue;
    }
    const c = cmd as CompileCommand;
    const out = join(work, file.replace(/\//g, '_').replace(/\.c$/, '.i'));
    const argv = compileArgv(c, { output: out, preprocess: true });
    const r = spawnSync(argv[0] as string, argv.slice(1), { cwd: c.cwd, encoding: 'utf8' });
    if (r.status !== 0) {
      failures.push(`${file}: gcc -E failed: ${r.stderr.slice(0, 200)}`);
      continue;
    }
    let model: TuModel;
    try {
      model = buildModel({
        preprocessed: readFileSync(out, 'utf8'),
        file,
        sourceText: readFileSync(c.source, 'utf8'),
        sourceRoot: target.paths.source,
      });
    } catch (e) {
      if (e instanceof FrontendError) {
        failures.push(`${file}: ${e.location.file}:${e.location.line}:${e.location.col}: ${e.message}`);
        continue;
      }
      throw e;
    }
    entities += model.entities.length;
    if (model.entities.length === 0) failures.push(`${file}: no entities`);
    if (model.unresolved.length)
      failures.push(`${file}: unresolved identifiers: ${model.unresolved.slice(0, 10).join(' ')}`);
    const problems = disagreements(model, c.object);
    checkedSymbols += parseElf(readFileSync(c.object))
      .symbols()
      .filter((s) => s.type === STT_FUNC && s.shndx !== SHN_UNDEF).length;
    failures.push(...problems.map((p) => `${file}: ${p}`));
  }
  process.stderr.write(
    `frontend corpus: ${files.length} TUs, ${entities} entities, ${checkedSymbols} function symbols checked, ${failures.length} failures\n`,
  );
  assert.deepEqual(failures, []);
  assert.ok(checkedSymbols > files.length, 'too few symbols checked');
});
