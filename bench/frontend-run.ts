/**
 * One cold run of the frontend on one TU, in its own process, as `klpgen tu`
 * does it: gcc -E with the TU's exact flags, then lex, parse and model.
 * Prints {preprocessSeconds, modelSeconds, totalSeconds, maxRssMiB, tokens, entities}.
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel } from '../src/frontend/model.js';
import { preprocess } from '../src/frontend/preprocess.js';
import { loadTarget } from '../src/target/manifest.js';

const [file, abi] = process.argv.slice(2);
const target = await loadTarget(abi);
const t0 = performance.now();
const pp = await preprocess(target, file as string, join(tmpdir(), `klpgen-bench-fe-${process.pid}`));
const t1 = performance.now();
const model = buildModel({ preprocessed: pp.text, file: pp.command.file, sourceText: readFileSync(pp.command.source, 'utf8'), sourceRoot: target.paths.source });
const t2 = performance.now();
process.stdout.write(`${JSON.stringify({
  preprocessSeconds: (t1 - t0) / 1000,
  modelSeconds: (t2 - t1) / 1000,
  totalSeconds: (t2 - t0) / 1000,
  maxRssMiB: process.resourceUsage().maxRSS / 1024,
  tokens: model.stats.tokens,
  entities: model.stats.entities,
})}\n`);
