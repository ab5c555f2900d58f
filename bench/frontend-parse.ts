/**
 * The frontend's own work (lex, parse, model) on a ready .i file (as
 * `klpgen tu` leaves it in the target's tu/ dir), in this cold process: no
 * gcc -E running beside it. Prints wall and CPU times (all threads, then the
 * main thread's and the others', which are mostly V8 compiling).
 *   node --max-semi-space-size=16 dist/bench/frontend-parse.js [FILE.c] [ABI] [--whole] [--threads]
 * By default the text comes in 64 KiB chunks of bytes, as the streamed
 * reader hands them out; --whole passes it as one string (as `analyze` does).
 * --threads lists each thread's CPU time.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildModel } from '../src/frontend/model.js';
import type { TextSource } from '../src/frontend/lexer.js';
import { compileCommand } from '../src/target/compile-command.js';
import { loadTarget } from '../src/target/manifest.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const whole = process.argv.includes('--whole');
const file = args[0] ?? 'kernel/sched/core.c';
const target = await loadTarget(args[1]);
const cmd = await compileCommand(target, file);
const iPath = join(target.paths.root, 'tu', cmd.file.replace(/\.c$/, '.i'));
const sourceText = readFileSync(cmd.source, 'utf8');
const bytes = readFileSync(iPath);
const text = whole ? bytes.toString('latin1') : '';

/** CPU ms of this process's threads: [main, others], from /proc (10 ms ticks). */
function threadTimes(): [number, number] {
  let main = 0;
  let others = 0;
  for (const t of readdirSync('/proc/self/task')) {
    const st = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    const ms = (Number(f[11]) + Number(f[12])) * 10;
    if (Number(t) === process.pid) main += ms;
    else others += ms;
  }
  return [main, others];
}

const CHUNK = 64 * 1024;
let at = 0;
const chunks: TextSource = {
  next: () => {
    throw new Error('bytes only');
  },
  nextBytes: () => {
    if (at >= bytes.length) return null;
    let cut = bytes.indexOf(10, Math.min(bytes.length - 1, at + CHUNK)) + 1;
    if (cut <= 0) cut = bytes.length;
    const chunk = bytes.subarray(at, cut);
    at = cut;
    return chunk;
  },
};
const [main0, others0] = threadTimes();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const model = buildModel({
  preprocessed: whole ? text : chunks,
  file: cmd.file,
  sourceText,
  sourceRoot: target.paths.source,
});
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const [main1, others1] = threadTimes();
process.stdout.write(
  `${JSON.stringify({
    wall: +wall.toFixed(3),
    parse: +model.stats.parseSeconds.toFixed(3),
    cpuUser: +(cpu.user / 1e6).toFixed(3),
    cpuSys: +(cpu.system / 1e6).toFixed(3),
    mainThreadCpu: (main1 - main0) / 1000,
    otherThreadsCpu: (others1 - others0) / 1000,
    tokens: model.stats.tokens,
    entities: model.stats.entities,
    maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  })}\n`,
);
if (process.argv.includes('--threads')) {
  for (const t of readdirSync('/proc/self/task')) {
    const comm = readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim();
    const st = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    process.stdout.write(`  ${t} ${comm} utime ${Number(f[11]) * 10} ms stime ${Number(f[12]) * 10} ms\n`);
  }
}
