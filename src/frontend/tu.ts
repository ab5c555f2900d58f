import { readFile } from 'node:fs/promises';
import { KlpgenError } from '../util/errors.js';
import { compileArgv, compileCommand } from '../target/compile-command.js';
import type { TargetManifest } from '../target/manifest.js';
import { buildModel, FrontendError, type TuModel } from './model.js';
import { StreamedPreprocessor } from './stream.js';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface TimedModel {
  model: TuModel;
  /** gcc -E's own run time (it overlaps with lexing and parsing). */
  preprocessSeconds: number;
  /** Of which the parser spent waiting for gcc -E to write more. */
  waitSeconds: number;
  totalSeconds: number;
}

/**
 * `klpgen tu`: preprocess one TU of the target with its exact flags and model
 * it, parsing gcc -E's output while gcc still writes it.
 */
export async function translationUnit(target: TargetManifest, file: string): Promise<TuModel> {
  return (await timedTranslationUnit(target, file)).model;
}

export async function timedTranslationUnit(target: TargetManifest, file: string): Promise<TimedModel> {
  const cmd = await compileCommand(target, file);
  const sourceText = await readFile(cmd.source, 'utf8');
  // The .i is kept in the target's tu/ dir for inspection.
  const out = join(target.paths.root, 'tu', cmd.file.replace(/\.c$/, '.i'));
  await mkdir(join(out, '..'), { recursive: true });
  await rm(out, { force: true });
  const pipe = new StreamedPreprocessor(compileArgv(cmd, { output: out, preprocess: true }), cmd.cwd, out);
  let model: TuModel | undefined;
  let failure: unknown;
  try {
    model = buildModel({ preprocessed: pipe, file: cmd.file, sourceText, sourceRoot: target.paths.source });
  } catch (e) {
    failure = e;
  }
  const gcc = await pipe.finish();
  if (gcc.code !== 0) {
    // gcc's own error explains a truncated output better than the parser can.
    const first = gcc.stderr.split('\n').find((l) => /error/.test(l)) ?? gcc.stderr.trim().split('\n')[0] ?? '';
    throw new KlpgenError(`preprocessing ${cmd.file} failed: ${first.trim()}`);
  }
  if (failure instanceof FrontendError) {
    throw new KlpgenError(
      `${failure.location.file}:${failure.location.line}:${failure.location.col}: ${failure.message}`,
    );
  }
  if (failure !== undefined || model === undefined) throw failure;
  const end = performance.now();
  return {
    model,
    preprocessSeconds: (pipe.endedAt - pipe.startedAt) / 1000,
    waitSeconds: pipe.waitedMs / 1000,
    totalSeconds: (end - pipe.startedAt) / 1000,
  };
}

export function formatModel(m: TuModel, all: boolean): string {
  const lines: string[] = [];
  const shown = all ? m.entities : m.entities.filter((e) => e.span.file === m.file);
  for (const e of shown) {
    const attrs = e.attributes.length
      ? ` [${e.attributes.map((a) => (a.args ? `${a.name}(${a.args})` : a.name)).join(', ')}]`
      : '';
    const where = `${e.span.file}:${e.span.line}${e.span.endLine !== e.span.line ? `-${e.span.endLine}` : ''}`;
    lines.push(`${where} ${e.kind} ${e.name} ${e.linkage}${e.definition ? ' definition' : ''}${attrs}`);
    if (e.refs.length) lines.push(`    refs: ${e.refs.join(' ')}`);
  }
  for (const mac of m.macros) {
    lines.push(
      `${m.file}:${mac.line} macro ${mac.name}${mac.params ?? ''}${mac.refs.length ? `\n    refs: ${mac.refs.join(' ')}` : ''}`,
    );
  }
  lines.push(
    `${m.stats.entities} entities (${shown.length} shown), ${m.macros.length} macros, ${m.stats.tokens} tokens, ${m.stats.files} files, parsed in ${m.stats.parseSeconds.toFixed(3)} s`,
  );
  return lines.join('\n');
}
