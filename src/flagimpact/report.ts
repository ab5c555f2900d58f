/**
 * The report of a flag-impact run: the JSON document (shape documented in
 * docs/flag-impact.md), its ranking by hotness, and the text summary.
 * Everything is sorted so that the same inputs give the same bytes.
 */
import type { SkippedFile } from './kbuild.js';
import type { Cause, CloneChange, Delta, FunctionImpact, InliningChange, ObjtoolChange, TuDiff } from './diff.js';
import { ProfileIndex, type Profile, type ProfileFormat } from './profile.js';

export interface RankedFunction extends Omit<FunctionImpact, 'callers'> {
  rank: number;
  /** Weights from --profile: the function's own, the sum over its callers in the TU, and both. */
  profile: { self: number; callers: number; hotness: number } | null;
}

export interface FlagImpactSummary {
  tus: number;
  skipped: number;
  functions: { asIs: number; livepatch: number };
  changed: number;
  added: number;
  removed: number;
  /** Changed although the callees they depend on did not (ipa-ra, pure-const, noreturn, stack-alignment). */
  callersChanged: number;
  byCause: Record<string, number>;
  sizeDelta: number;
  instructionDelta: number;
  /** gained counts real decisions; callDeletedAsIs the gained pairs whose calls the as-is build deleted (pure/const). */
  inlining: { lost: number; gained: number; callDeletedAsIs: number };
  clones: { disappeared: number; appeared: number };
  objtool: { appeared: number; disappeared: number };
}

export interface FlagImpactReport {
  schema: 1;
  target: { abi: string; kernelRelease: string };
  paths: string[];
  flags: { livepatch: string; added: string[] };
  /** How causes of IPA-pass effects were found: code heuristics, or --attribute's single-pass builds. */
  attribution: 'heuristic' | 'measured';
  profile: { format: ProfileFormat; symbols: number; totalWeight: number; matched: number } | null;
  summary: FlagImpactSummary;
  functions: RankedFunction[];
  inlining: InliningChange[];
  clones: CloneChange[];
  objtool: ObjtoolChange[];
  skipped: SkippedFile[];
  workDir: string;
}

export interface ReportInput {
  target: { abi: string; kernelRelease: string };
  paths: string[];
  livepatchFlag: string;
  addedFlags: string[];
  tus: TuDiff[];
  skipped: SkippedFile[];
  profile: Profile | null;
  attribution: 'heuristic' | 'measured';
  workDir: string;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const round = (x: number) => Math.round(x * 1e6) / 1e6;

export function buildReport(input: ReportInput): FlagImpactReport {
  const tus = [...input.tus].sort((x, y) => cmp(x.file, y.file));
  const index = input.profile ? new ProfileIndex(input.profile) : undefined;
  const all = tus.flatMap((t) => t.impacts);
  const withWeights = all.map((f) => {
    const { callers, ...rest } = f;
    let profile: RankedFunction['profile'] = null;
    if (index) {
      const self = round(index.weightOf(f.name));
      const fromCallers = round(callers.reduce((s, c) => s + index.weightOf(c), 0));
      profile = { self, callers: fromCallers, hotness: round(self + fromCallers) };
    }
    return { ...rest, rank: 0, profile };
  });
  withWeights.sort(
    (x, y) =>
      (y.profile?.hotness ?? 0) - (x.profile?.hotness ?? 0) ||
      (y.profile?.self ?? 0) - (x.profile?.self ?? 0) ||
      Math.abs(y.size.delta) - Math.abs(x.size.delta) ||
      Math.abs(y.instructions.delta) - Math.abs(x.instructions.delta) ||
      cmp(x.file, y.file) ||
      cmp(x.name, y.name),
  );
  withWeights.forEach((f, i) => {
    f.rank = i + 1;
  });

  const byCause: Record<string, number> = {};
  for (const f of all) byCause[f.cause] = (byCause[f.cause] ?? 0) + 1;
  const sortedCauses: Record<string, number> = {};
  for (const k of Object.keys(byCause).sort(cmp)) sortedCauses[k] = byCause[k] as number;

  const inlining = tus.flatMap((t) => t.inlining);
  const clones = tus.flatMap((t) => t.clones);
  const objtool = tus.flatMap((t) => t.objtool);
  const sum = (pick: (d: FunctionImpact) => Delta) => all.reduce((s, f) => s + pick(f).delta, 0);
  const summary: FlagImpactSummary = {
    tus: tus.length,
    skipped: input.skipped.length,
    functions: {
      asIs: tus.reduce((s, t) => s + t.functions.asIs, 0),
      livepatch: tus.reduce((s, t) => s + t.functions.livepatch, 0),
    },
    changed: all.filter((f) => f.status === 'changed').length,
    added: all.filter((f) => f.status === 'added').length,
    removed: all.filter((f) => f.status === 'removed').length,
    callersChanged: all.filter((f) => f.kind === 'caller').length,
    byCause: sortedCauses,
    sizeDelta: sum((f) => f.size),
    instructionDelta: sum((f) => f.instructions),
    inlining: {
      lost: inlining.filter((c) => c.change === 'lost').length,
      gained: inlining.filter((c) => c.change === 'gained' && !c.callDeletedAsIs).length,
      callDeletedAsIs: inlining.filter((c) => c.callDeletedAsIs).length,
    },
    clones: {
      disappeared: clones.filter((c) => c.change === 'disappeared').length,
      appeared: clones.filter((c) => c.change === 'appeared').length,
    },
    objtool: {
      appeared: objtool.filter((c) => c.change === 'appeared').length,
      disappeared: objtool.filter((c) => c.change === 'disappeared').length,
    },
  };
  return {
    schema: 1,
    target: input.target,
    paths: input.paths,
    flags: { livepatch: input.livepatchFlag, added: input.addedFlags },
    attribution: input.attribution,
    profile: input.profile
      ? {
          format: input.profile.format,
          symbols: input.profile.weights.size,
          totalWeight: round(input.profile.total),
          matched: withWeights.filter((f) => (f.profile?.self ?? 0) > 0).length,
        }
      : null,
    summary,
    functions: withWeights,
    inlining,
    clones,
    objtool,
    skipped: [...input.skipped].sort((x, y) => cmp(x.file, y.file)),
    workDir: input.workDir,
  };
}

function signed(n: number): string {
  return n > 0 ? `+${n}` : `${n}`;
}

function table(rows: string[][], rightAligned: Set<number>): string[] {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, c) => {
        const w = widths[c] ?? 0;
        return rightAligned.has(c) ? cell.padStart(w) : cell.padEnd(w);
      })
      .join('  ')
      .trimEnd(),
  );
}

const TOP = 40;

export function formatReport(r: FlagImpactReport): string {
  const s = r.summary;
  const out: string[] = [];
  out.push(`flag-impact of ${r.flags.livepatch} on ${r.target.abi}: ${r.paths.join(' ')}`);
  out.push(
    `  TUs: ${s.tus} compiled twice (Kbuild flags + ${r.flags.added.join(' ')}), ${s.skipped} .c files skipped (not built on their own in this configuration)`,
  );
  out.push(
    `  functions: ${s.functions.asIs} as-is, ${s.functions.livepatch} with the flag; ${s.changed} changed, ${s.added} added, ${s.removed} removed; size ${signed(s.sizeDelta)} bytes, ${signed(s.instructionDelta)} instructions`,
  );
  out.push(
    `  changed only through what they knew about a callee (modref, pure-const, noreturn, ipa-ra, ...): ${s.callersChanged}`,
  );
  out.push(
    `  by cause: ${
      Object.entries(s.byCause)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none'
    } (${r.attribution === 'measured' ? 'measured with one build per IPA pass' : 'IPA-pass causes are heuristics; --attribute measures them'})`,
  );
  out.push(
    `  inlining decisions: ${s.inlining.lost} lost, ${s.inlining.gained} gained (+${s.inlining.callDeletedAsIs} inlined only because the as-is build deleted the calls: pure/const); clones: ${s.clones.disappeared} disappeared, ${s.clones.appeared} appeared`,
  );
  out.push(`  objtool warnings: ${s.objtool.appeared} appeared, ${s.objtool.disappeared} disappeared`);
  if (r.profile)
    out.push(
      `  profile: ${r.profile.format}, ${r.profile.symbols} symbols, ${r.profile.matched} affected functions sampled`,
    );
  if (r.functions.length) {
    out.push('');
    const head = [
      '#',
      'function',
      'file',
      'status',
      'cause',
      'size',
      'Δsize',
      'Δinsns',
      ...(r.profile ? ['hotness'] : []),
    ];
    const rows = r.functions
      .slice(0, TOP)
      .map((f) => [
        String(f.rank),
        f.name,
        f.file,
        f.status,
        f.cause,
        String(f.size.livepatch ?? f.size.asIs ?? 0),
        signed(f.size.delta),
        signed(f.instructions.delta),
        ...(r.profile ? [String(f.profile?.hotness ?? 0)] : []),
      ]);
    out.push(...table([head, ...rows], new Set([0, 5, 6, 7, 8])).map((l) => `  ${l}`));
    if (r.functions.length > TOP) out.push(`  ... ${r.functions.length - TOP} more (--json or --html for all)`);
  }
  if (r.objtool.length) {
    out.push('', '  objtool warnings that differ:');
    for (const w of r.objtool) out.push(`    ${w.change === 'appeared' ? '+' : '-'} ${w.warning}`);
  }
  const listed = 15;
  if (r.clones.length) {
    out.push('', '  clones that differ:');
    for (const c of r.clones.slice(0, listed))
      out.push(`    ${c.change === 'appeared' ? '+' : '-'} ${c.clone} (${c.reason} of ${c.origin}, ${c.file})`);
    if (r.clones.length > listed) out.push(`    ... ${r.clones.length - listed} more`);
  }
  const decisions = r.inlining.filter((c) => !c.callDeletedAsIs);
  if (decisions.length) {
    out.push('', '  inlining decisions that differ (- inlined only as-is, + only with the flag):');
    const ordered = [
      ...decisions.filter((c) => c.change === 'lost'),
      ...decisions.filter((c) => c.change === 'gained'),
    ];
    for (const c of ordered.slice(0, listed))
      out.push(`    ${c.change === 'gained' ? '+' : '-'} ${c.callee} into ${c.into} (${c.file})`);
    if (ordered.length > listed) out.push(`    ... ${ordered.length - listed} more`);
  }
  out.push('', `  work dir: ${r.workDir}`);
  return out.join('\n');
}

export type { Cause };
