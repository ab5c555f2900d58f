import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KlpgenError } from '../util/errors.js';
import type { TargetManifest } from '../target/manifest.js';
import { buildModel, FrontendError, type TuModel } from './model.js';
import { preprocess } from './preprocess.js';

/** `klpgen tu`: preprocess one TU of the target with its exact flags and model it. */
export async function translationUnit(target: TargetManifest, file: string): Promise<TuModel> {
  const pp = await preprocess(target, file, join(target.paths.root, 'tu'));
  const sourceText = await readFile(pp.command.source, 'utf8');
  try {
    return buildModel({ preprocessed: pp.text, file: pp.command.file, sourceText, sourceRoot: target.paths.source });
  } catch (e) {
    if (e instanceof FrontendError) {
      throw new KlpgenError(`${e.location.file}:${e.location.line}:${e.location.col}: ${e.message}`);
    }
    throw e;
  }
}

export function formatModel(m: TuModel, all: boolean): string {
  const lines: string[] = [];
  const shown = all ? m.entities : m.entities.filter((e) => e.span.file === m.file);
  for (const e of shown) {
    const attrs = e.attributes.length ? ` [${e.attributes.map((a) => (a.args ? `${a.name}(${a.args})` : a.name)).join(', ')}]` : '';
    const where = `${e.span.file}:${e.span.line}${e.span.endLine !== e.span.line ? `-${e.span.endLine}` : ''}`;
    lines.push(`${where} ${e.kind} ${e.name} ${e.linkage}${e.definition ? ' definition' : ''}${attrs}`);
    if (e.refs.length) lines.push(`    refs: ${e.refs.join(' ')}`);
  }
  for (const mac of m.macros) {
    lines.push(`${m.file}:${mac.line} macro ${mac.name}${mac.params ?? ''}${mac.refs.length ? `\n    refs: ${mac.refs.join(' ')}` : ''}`);
  }
  lines.push(`${m.stats.entities} entities (${shown.length} shown), ${m.macros.length} macros, ${m.stats.tokens} tokens, ${m.stats.files} files, parsed in ${m.stats.parseSeconds.toFixed(3)} s`);
  return lines.join('\n');
}
