/**
 * The frontend's own work (lex, parse, model) on a ready .i file, in this
 * (cold) process: no gcc -E running beside it. Prints wall and CPU times.
 *   node --max-semi-space-size=16 dist/bench/frontend-parse.js [FILE.c] [ABI] [--chunks]
 * --chunks feeds the text in 256 KiB chunks as the streamed reader does.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildModel } from '../src/frontend/model.js';
import { compileCommand } from '../src/target/compile-command.js';
import { loadTarget } from '../src/target/manifest.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const chunked = process.argv.includes('--chunks');
const file = args[0] ?? 'kernel/sched/core.c';
const target = await loadTarget(args[1]);
const cmd = await compileCommand(target, file);
const iPath = join(target.paths.root, 'tu', cmd.file.replace(/\.c$/, '.i'));
const sourceText = readFileSync(cmd.source, 'utf8');
const text = readFileSync(iPath, 'latin1');
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let at = 0;
const CHUNK = 256 * 1024;
const source = chunked
  ? {
      next(): string | null {
        if (at >= text.length) return null;
        let cut = text.indexOf('\n', Math.min(text.length - 1, at + CHUNK)) + 1;
        if (cut <= 0) cut = text.length;
        const s = text.slice(at, cut);
        at = cut;
        return s;
      },
    }
  : text;
const model = buildModel({ preprocessed: source, file: cmd.file, sourceText, sourceRoot: target.paths.source });
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${JSON.stringify({
  wall: +wall.toFixed(3), parse: +model.stats.parseSeconds.toFixed(3),
  cpuUser: +(cpu.user / 1e6).toFixed(3), cpuSys: +(cpu.system / 1e6).toFixed(3),
  tokens: model.stats.tokens, entities: model.stats.entities, maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
})}\n`);
if (process.argv.includes('--threads')) {
  const { readdirSync, readFileSync: rf } = await import('node:fs');
  for (const t of readdirSync('/proc/self/task')) {
    const comm = rf(`/proc/self/task/${t}/comm`, 'utf8').trim();
    const st = rf(`/proc/self/task/${t}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    process.stdout.write(`  ${t} ${comm} utime ${Number(f[11]) * 10} ms stime ${Number(f[12]) * 10} ms\n`);
  }
}
