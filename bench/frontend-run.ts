/**
 * One cold run of the frontend on one TU, in its own process, as `klpgen tu`
 * does it: gcc -E with the TU's exact flags, its output lexed, parsed and
 * modelled while gcc writes it.
 * Prints {preprocessSeconds, waitSeconds, parseSeconds, totalSeconds, cpuSeconds, maxRssMiB, tokens, entities}.
 */
import { timedTranslationUnit } from '../src/frontend/tu.js';
import { loadTarget } from '../src/target/manifest.js';

const [file, abi] = process.argv.slice(2);
const target = await loadTarget(abi);
const cpu0 = process.cpuUsage();
const r = await timedTranslationUnit(target, file as string);
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `${JSON.stringify({
    preprocessSeconds: r.preprocessSeconds,
    waitSeconds: r.waitSeconds,
    parseSeconds: r.model.stats.parseSeconds,
    totalSeconds: r.totalSeconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    tokens: r.model.stats.tokens,
    entities: r.model.stats.entities,
  })}\n`,
);
