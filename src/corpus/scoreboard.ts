import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { create } from '../create/create.js';
import type { TargetManifest } from '../target/manifest.js';
import { KlpgenError } from '../util/errors.js';
import { RefusedError, type RefusalKind } from '../util/refusal.js';
import { info } from '../util/progress.js';
import { defaultWorkDir } from '../util/workdir.js';
import { vmTest } from '../vm/vm-test.js';
import { workloadsFor } from '../vm/workloads.js';

/**
 * `klpgen scoreboard DIR`: every patch of a corpus through create (analyze,
 * emit, build, verify) and the VM (load, transition, unload), counted by
 * outcome. kpatch's naming: X.patch should make a verified module,
 * X-FAIL.patch should be refused.
 */
export const OUTCOMES = [
  'loaded',            // generated, verified, loaded, transition <= 10 s, unloaded cleanly
  'loaded-unverified', // loaded, but verification found a difference
  'refused',
  'nothing',           // the fix changes no running code
  'incomplete-fix',    // the patched file does not compile against the target: the fix needs changes this patch lacks
  'failed-analyze',    // the analysis failed
  'failed-build',
  'failed-vm',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface PatchScore {
  patch: string;
  outcome: Outcome;
  /** Expected refusal (X-FAIL.patch) and got one, or expected a module and got one. */
  asExpected: boolean;
  /** For X-FAIL.patch: the reviewed reason it cannot be livepatched (X-FAIL.reason). */
  expectedReason?: string;
  detail: string;
  /** For a refused patch: the kind of each refusal, first one first (what the table counts). */
  refusals?: RefusalKind[];
  seconds: number;
}

export interface Scoreboard {
  abi: string;
  total: number;
  byOutcome: Record<Outcome, number>;
  refusedBy: Record<string, number>;
  verified: number;
  /** Of the patches klpgen did not refuse, the share that became verified, loaded modules. */
  livepatchableRate: number;
  patches: PatchScore[];
}

export interface ScoreboardOptions {
  limit?: number;
  sample?: number;
  match?: string;
  vm: boolean;
  /** Only the patches whose index is K-1 modulo N (`--shard K/N`): N processes share a corpus. */
  shard?: { k: number; n: number };
  /**
   * Append each patch's score to this file as one JSON line, and skip the patches it already
   * holds: a long run resumes where it stopped, and shards running side by side share one file.
   */
  journal?: string;
  /** Outcomes to run again although the journal holds them (after a fix to klpgen). */
  redo?: Outcome[];
}

/** The journal's lines, last one per patch wins; a torn last line (a killed run) is ignored. */
export function readJournal(file: string): Map<string, PatchScore> {
  const done = new Map<string, PatchScore>();
  if (!existsSync(file)) return done;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const s = JSON.parse(line) as PatchScore;
      if (typeof s.patch === 'string' && typeof s.outcome === 'string') done.set(s.patch, s);
    } catch { /* a line cut short when the run was killed */ }
  }
  return done;
}

export async function scoreboard(target: TargetManifest, dir: string, o: ScoreboardOptions): Promise<Scoreboard> {
  const root = resolve(dir);
  if (!existsSync(root)) throw new KlpgenError(`${dir}: no such corpus directory`);
  let patches = readdirSync(root).filter((f) => f.endsWith('.patch')).sort();
  if (o.match) patches = patches.filter((p) => p.includes(o.match as string));
  if (o.sample !== undefined && o.sample < patches.length) {
    // Spread over the whole corpus (sorted by path): every subsystem gets its share.
    const all = patches;
    patches = Array.from({ length: o.sample }, (_, i) => all[Math.floor((i * all.length) / (o.sample as number))] as string);
  }
  if (o.limit !== undefined) patches = patches.slice(0, o.limit);
  if (o.shard) {
    const { k, n } = o.shard;
    patches = patches.filter((_, i) => i % n === k - 1);
  }
  const journal = o.journal ? readJournal(o.journal) : new Map<string, PatchScore>();
  const scores: PatchScore[] = [];
  for (const [i, p] of patches.entries()) {
    const previous = journal.get(p);
    if (previous && !(o.redo ?? []).includes(previous.outcome)) {
      scores.push(previous);
      continue;
    }
    const start = performance.now();
    const path = join(root, p);
    const expectFail = p.endsWith('-FAIL.patch');
    let outcome: Outcome;
    let detail = '';
    let refusals: RefusalKind[] | undefined;
    const workDir = defaultWorkDir(target, 'score', [path]);
    try {
      const name = `sb_${p.replace(/\.patch$/, '').replace(/[^A-Za-z0-9]/g, '_')}`.slice(0, 45);
      const made = await create(target, { patches: [path], name, out: join(workDir, 'out.ko'), replace: true, workDir, allowUnverified: true });
      const verified = made.verification.status === 'passed';
      if (!o.vm) {
        outcome = verified ? 'loaded' : 'loaded-unverified';
        detail = 'not run in the VM';
      } else {
        const objects = [...new Set(made.analysis.mustReplace.map((e) => e.object))].filter((x) => x !== 'vmlinux');
        // The VM also runs a workload of the patched subsystems (file I/O for fs, sockets for net, ...).
        const workloads = workloadsFor(made.analysis.files.map((f) => f.path));
        const rep = await vmTest(target, { modules: [made.module], loadModules: objects, timeoutSeconds: 180, workloads });
        const p0 = rep.patches[0];
        // A driver whose hardware the VM lacks does not load (ENODEV); its klp_object then waits
        // for it, and the livepatch itself is still loaded, transitioned and unloaded.
        const absent = rep.failures.filter((f) => /^module \S+ failed to load$/.test(f));
        const failures = rep.failures.filter((f) => !absent.includes(f));
        const ok = failures.length === 0 && p0 !== undefined && p0.transitionSeconds !== null && p0.transitionSeconds <= 10;
        outcome = !ok ? 'failed-vm' : verified ? 'loaded' : 'loaded-unverified';
        detail = ok
          ? `transition ${p0?.transitionSeconds} s; workloads ${workloads.join(',')} ok${absent.length ? `; ${absent.join(', ')} in the VM (no such hardware): patch loaded without it` : ''}`
          : failures.join('; ');
      }
      if (!verified) detail = `${detail}; ${made.verification.functions.filter((f) => !f.equal).map((f) => `${f.name}: ${f.reason}`).join('; ')}`;
    } catch (e) {
      if (!(e instanceof KlpgenError)) throw e;
      const msg = e.message;
      if (e instanceof RefusedError) {
        outcome = 'refused';
        refusals = e.refusals.map((r) => r.kind);
        detail = msg.split('\n')[1]?.trim() ?? msg;
      } else if (/change no running code/.test(msg)) {
        outcome = 'nothing';
        detail = msg;
      } else if (/^compiling \S+ \(\S+\/patched\) failed/.test(msg) || /needs symbols the running kernel does not have/.test(msg)) {
        // The input's fault, not klpgen's: the corpus split a fix whose other parts (a header's
        // new prototype, a changed ops signature, a function it now calls) are not in this patch.
        outcome = 'incomplete-fix';
        detail = msg.split('\n').slice(0, 2).join(' ');
      } else if (/building the livepatch failed/.test(msg)) {
        outcome = 'failed-build';
        detail = msg.split('\n').find((l) => /error:/.test(l)) ?? msg.split('\n')[0] ?? '';
      } else {
        outcome = 'failed-analyze';
        detail = msg.split('\n').slice(0, 2).join(' ');
      }
    }
    const asExpected = expectFail ? outcome === 'refused' : outcome === 'loaded' || outcome === 'nothing';
    const seconds = Math.round((performance.now() - start) / 100) / 10;
    const reasonFile = path.replace(/\.patch$/, '.reason');
    const expectedReason = expectFail && existsSync(reasonFile) ? readFileSync(reasonFile, 'utf8').trim() : undefined;
    const score: PatchScore = { patch: p, outcome, asExpected, ...(expectedReason ? { expectedReason } : {}), detail: detail.slice(0, 300), ...(refusals ? { refusals } : {}), seconds };
    scores.push(score);
    // One write per line: shards appending to one journal do not interleave.
    if (o.journal) appendFileSync(o.journal, `${JSON.stringify(score)}\n`);
    // A whole-corpus run would keep tens of GB of objects: keep the work dirs worth a look.
    if (o.journal && outcome === 'loaded') rmSync(workDir, { recursive: true, force: true });
    info(`[${i + 1}/${patches.length}] ${p}: ${outcome} (${seconds} s)`);
  }
  const refusedBy: Record<string, number> = {};
  for (const s of scores) {
    if (s.outcome !== 'refused') continue;
    // A journal line written before refusals were typed has none: counted apart, never guessed from its text.
    const kind = s.refusals?.[0] ?? 'untyped (old journal line)';
    refusedBy[kind] = (refusedBy[kind] ?? 0) + 1;
  }
  const byOutcome = {
    loaded: 0, 'loaded-unverified': 0, refused: 0, nothing: 0, 'incomplete-fix': 0, 'failed-analyze': 0, 'failed-build': 0, 'failed-vm': 0,
  } as Record<Outcome, number>;
  for (const s of scores) byOutcome[s.outcome]++;
  // Livepatchable: what a livepatch could carry as given (not refused, something to patch, a complete fix).
  const livepatchable = scores.length - byOutcome.refused - byOutcome.nothing - byOutcome['incomplete-fix'];
  return {
    abi: target.abi,
    total: scores.length,
    byOutcome,
    refusedBy,
    verified: byOutcome.loaded,
    livepatchableRate: livepatchable ? byOutcome.loaded / livepatchable : 0,
    patches: scores,
  };
}

export function formatScoreboard(s: Scoreboard): string {
  const lines = [
    `scoreboard for ${s.abi}: ${s.total} patches`,
    `  generated, verified, loaded (transition <= 10 s, clean unload): ${s.byOutcome.loaded}`,
    `  loaded but not verified:  ${s.byOutcome['loaded-unverified']}`,
    `  refused:                  ${s.byOutcome.refused}${Object.keys(s.refusedBy).length ? ` (${Object.entries(s.refusedBy).map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}`,
    `  no running code changed:  ${s.byOutcome.nothing}`,
    `  incomplete fix (the patched file does not compile against the target): ${s.byOutcome['incomplete-fix']}`,
    `  failed: analyze ${s.byOutcome['failed-analyze']}, build ${s.byOutcome['failed-build']}, vm ${s.byOutcome['failed-vm']}`,
    `  verified and loaded, of the livepatchable (not refused, not empty, complete): ${(s.livepatchableRate * 100).toFixed(0)}%`,
  ];
  for (const p of s.patches) lines.push(`  ${p.asExpected ? ' ' : '!'} ${p.outcome.padEnd(17)} ${p.patch}${p.detail ? `  ${p.detail.slice(0, 140)}` : ''}`);
  return lines.join('\n');
}
