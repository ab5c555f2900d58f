/**
 * One cold run of the frontend on one TU, in its own process, as `klpgen tu`
 * does it: gcc -E with the TU's exact flags, its output lexed, parsed and
 * modelled while gcc writes it.
 * Prints {preprocessSeconds, totalSeconds, maxRssMiB, tokens, entities}.
 */
import { timedTranslationUnit } from '../src/frontend/tu.js';
import { loadTarget } from '../src/target/manifest.js';

const [file, abi] = process.argv.slice(2);
const target = await loadTarget(abi);
const r = await timedTranslationUnit(target, file as string);
process.stdout.write(`${JSON.stringify({
  preprocessSeconds: r.preprocessSeconds,
  totalSeconds: r.totalSeconds,
  maxRssMiB: process.resourceUsage().maxRSS / 1024,
  tokens: r.model.stats.tokens,
  entities: r.model.stats.entities,
})}\n`);
