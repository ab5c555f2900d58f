/**
 * --attribute: measured causes instead of code heuristics. The TU is built
 * once more per IPA pass that -flive-patching=inline-clone turns off, with
 * only that pass off; a changed function is attributed to the pass whose
 * build reproduces its livepatch code (else to the only pass that changes
 * it at all). Costs one compile per pass for each TU with changed
 * functions; the dump-based causes (inlining) are exact already and kept.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { compareCode, foldNumbers, readObjectCode, type FunctionCode, type ObjectCode } from '../analyze/objdiff.js';
import { parseElf } from '../elf/elf64.js';
import { compileArgv, type CompileCommand } from '../target/compile-command.js';
import { run } from '../util/exec.js';
import { addedFlags, runPostCommands, type Slots } from './build.js';
import { CALLER_CAUSES, type Cause, type FunctionImpact } from './diff.js';

export const SINGLE_PASSES: readonly { pass: string; flags: string[]; cause: Cause }[] = [
  { pass: 'ipa-modref', flags: ['-fno-ipa-modref'], cause: 'modref' },
  // ipa-pure-const also finds noreturn functions.
  { pass: 'ipa-pure-const', flags: ['-fno-ipa-pure-const'], cause: 'pure-const' },
  { pass: 'ipa-vrp', flags: ['-fno-ipa-vrp', '-fno-ipa-bit-cp'], cause: 'vrp' },
  { pass: 'ipa-icf', flags: ['-fno-ipa-icf'], cause: 'icf' },
  { pass: 'ipa-ra', flags: ['-fno-ipa-ra'], cause: 'ipa-ra' },
  { pass: 'ipa-stack-alignment', flags: ['-fno-ipa-stack-alignment'], cause: 'stack-alignment' },
  { pass: 'ipa-reference', flags: ['-fno-ipa-reference', '-fno-ipa-reference-addressable'], cause: 'ipa-reference' },
];

/** Build the TU with one pass off; undefined when that build fails (the pass is then not measured). */
async function buildWithout(
  cmd: CompileCommand,
  pass: (typeof SINGLE_PASSES)[number],
  objDir: string,
  slots: Slots,
): Promise<ObjectCode | undefined> {
  const object = join(objDir, cmd.file.replace(/\.c$/, `.no-${pass.pass}.o`));
  await mkdir(dirname(object), { recursive: true });
  try {
    const argv = compileArgv(cmd, {
      output: object,
      extraFlags: [...addedFlags(cmd, 'asIs').filter((f) => f !== '-fdump-ipa-clones'), ...pass.flags],
    });
    const r = await slots.run(() =>
      run(argv[0] as string, argv.slice(1), { cwd: cmd.cwd, env: { ...process.env, LC_ALL: 'C' } }),
    );
    if (r.code !== 0) return undefined;
    await slots.run(() => runPostCommands(cmd, object), true);
    return readObjectCode(parseElf(await readFile(object), object));
  } finally {
    await rm(object, { force: true });
  }
}

function find(code: ObjectCode, name: string): FunctionCode | undefined {
  const f = code.functions.get(name);
  if (f) return f;
  const k = foldNumbers(name);
  const hits = [...code.functions.values()].filter((g) => foldNumbers(g.name) === k);
  return hits.length === 1 ? hits[0] : undefined;
}

/** Re-attribute the changed functions whose cause is not from the dumps; returns the new impacts. */
export async function attribute(
  cmd: CompileCommand,
  impacts: FunctionImpact[],
  asIs: ObjectCode,
  lp: ObjectCode,
  objDir: string,
  slots: Slots,
): Promise<FunctionImpact[]> {
  const todo = impacts.filter((f) => f.status === 'changed' && f.evidence !== 'dump');
  if (todo.length === 0) return impacts;
  const builds = await Promise.all(SINGLE_PASSES.map((p) => buildWithout(cmd, p, objDir, slots)));
  return impacts.map((f) => {
    if (!todo.includes(f)) return f;
    const fa = find(asIs, f.name);
    const fl = find(lp, f.name);
    if (!fa || !fl) return f;
    const changes: (typeof SINGLE_PASSES)[number][] = [];
    const reproduces: (typeof SINGLE_PASSES)[number][] = [];
    SINGLE_PASSES.forEach((p, i) => {
      const code = builds[i];
      const fx = code && find(code, f.name);
      if (!fx) return;
      if (compareCode(fa, fx)) changes.push(p);
      if (!compareCode(fx, fl)) reproduces.push(p);
    });
    const chosen =
      reproduces[0] ?? (changes.length === 1 ? changes[0] : (changes.find((p) => p.cause === f.cause) ?? changes[0]));
    if (!chosen) return { ...f, passes: [] };
    // pure-const's noreturn findings: the heuristic says which of the two it was.
    const cause: Cause = chosen.cause === 'pure-const' && f.cause === 'noreturn' ? 'noreturn' : chosen.cause;
    return {
      ...f,
      cause,
      evidence: 'measured',
      passes: changes.map((p) => p.pass),
      kind: CALLER_CAUSES.includes(cause) ? 'caller' : 'self',
      related: cause === f.cause ? f.related : [],
    };
  });
}
