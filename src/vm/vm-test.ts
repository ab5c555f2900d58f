import { existsSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KlpgenError } from '../util/errors.js';
import { info, timed } from '../util/progress.js';
import { cacheRoot } from '../target/paths.js';
import type { TargetManifest } from '../target/manifest.js';
import {
  MODULES_TAG,
  SHARE_MODULES,
  buildInitramfs,
  indexModules,
  moduleInfo,
  moduleKey,
  moduleLoadOrder,
} from './initramfs.js';
import { bootQemu } from './qemu.js';
import type { WorkloadKind } from './workloads.js';

export interface VmTestOptions {
  modules: string[];
  testScript?: string;
  loadModules?: string[];
  timeoutSeconds?: number;
  testTimeoutSeconds?: number;
  transitionTimeoutSeconds?: number;
  workDir?: string;
  /** Run while the livepatches are enabled; any oops or WARN meanwhile fails the run. */
  workloads?: WorkloadKind[];
  /**
   * WARNs the run must see: a WARNING report (its `cut here` … `end trace` block) containing one
   * of these texts is not a problem, and each text no report contains is a failure. Any other WARN
   * still fails the run. (The VM's command line has no panic_on_warn: a WARN does not panic.)
   */
  expectWarnings?: string[];
}

export interface TestRun {
  exitCode: number | null;
  output: string[];
}

export interface PatchResult {
  file: string;
  name: string;
  loaded: boolean;
  enabled: boolean;
  /** Seconds from insmod until /sys/kernel/livepatch/<name>/transition read 0; null if it never did. */
  transitionSeconds: number | null;
  disabled: boolean;
  /** Taken over by an atomic-replace patch loaded after it: the kernel disabled it (its unpatch callbacks do not run). */
  replaced: boolean;
  unloaded: boolean;
}

export interface VmReport {
  ok: boolean;
  /** Why ok is false, one line each. */
  failures: string[];
  abi: string;
  kernelRelease: string;
  booted: boolean;
  /** The target's module tree mounted in the VM (modprobe works). */
  modulesAvailable: boolean;
  preloaded: { name: string; loaded: boolean }[];
  /** /proc/modules after preloading: what --load-modules brought in, dependencies included. */
  loadedModules: string[];
  patches: PatchResult[];
  /** kpatch's LOADED-test convention: fails before loading, passes while loaded, fails after unloading. */
  test: { script: string; before: TestRun; after: TestRun; unloaded: TestRun; ok: boolean } | null;
  /** Workloads run while the livepatches were enabled: exit code (0 = healthy), seconds, last lines. */
  workloads: { kind: string; exitCode: number | null; seconds: number | null; output: string[] }[];
  /** Oops, BUG, WARN or panic lines from the kernel console (expected WARNs left out). */
  problems: string[];
  /** Each --expect-warn text: how many WARNING reports contained it, and their WARNING: lines. */
  expectedWarnings: ExpectedWarning[];
  timedOut: boolean;
  seconds: number;
  serialLog: string;
  workDir: string;
}

export interface ExpectedWarning {
  text: string;
  seen: number;
  warnings: string[];
}

const PROBLEM =
  /(Oops|BUG: |WARNING: |Kernel panic|general protection fault|Call Trace:|RIP: |watchdog: .*stuck|INFO: task .* blocked|list_(add|del) corruption|UBSAN: |kernel BUG at)/;
/** The lines of a WARNING report that PROBLEM matches without the report being more than a WARN. */
const WARN_REPORT_LINE = /(WARNING: |Call Trace:|RIP: )/;
const CUT_HERE = '------------[ cut here ]------------';
const END_TRACE = '---[ end trace';

/**
 * The console's problem lines, less the WARNING reports an expected text accounts for. A report
 * runs from `cut here` to `---[ end trace` (or to the next `cut here`, or the end of the log); it is
 * a WARN when it has a `WARNING:` line and no other kind of problem (an oops or BUG report also
 * starts with `cut here`). An expected text matches a report when the report's text (its lines
 * without the timestamps: the message WARN() printed, the WARNING: line, the trace) contains it.
 */
export function consoleProblems(
  consoleLog: string,
  expectWarnings: string[] = [],
): { problems: string[]; expectedWarnings: ExpectedWarning[] } {
  const lines = consoleLog.split('\n');
  const expectedWarnings: ExpectedWarning[] = expectWarnings.map((text) => ({ text, seen: 0, warnings: [] }));
  const excused = new Set<number>();
  if (expectWarnings.length) {
    for (let i = 0; i < lines.length; i++) {
      if (!(lines[i] as string).includes(CUT_HERE)) continue;
      let end = i + 1;
      while (
        end < lines.length &&
        !(lines[end] as string).includes(CUT_HERE) &&
        !(lines[end - 1] as string).includes(END_TRACE)
      )
        end++;
      const block = lines.slice(i, end);
      const warning = block.find((l) => /WARNING: /.test(l));
      const onlyWarn = block.every((l) => !PROBLEM.test(l) || WARN_REPORT_LINE.test(l));
      if (warning !== undefined && onlyWarn) {
        const text = block.map((l) => l.replace(/^\[\s*\d+\.\d+\] /, '')).join('\n');
        const matched = expectedWarnings.filter((e) => text.includes(e.text));
        for (const e of matched) {
          e.seen++;
          if (e.warnings.length < 10) e.warnings.push(warning.trim());
        }
        if (matched.length) for (let k = i; k < end; k++) excused.add(k);
      }
      i = end - 1;
    }
  }
  const problems = lines.filter((l, k) => !excused.has(k) && PROBLEM.test(l)).slice(0, 100);
  return { problems, expectedWarnings };
}

export async function vmTest(target: TargetManifest, o: VmTestOptions): Promise<VmReport> {
  if (o.modules.length === 0) throw new KlpgenError('vm-test: no livepatch module given');
  const patches = o.modules.map((file) => {
    const path = resolve(file);
    if (!existsSync(path) || !statSync(path).isFile()) throw new KlpgenError(`${file}: no such file`);
    const mi = moduleInfo(file);
    if (!mi.livepatch) throw new KlpgenError(`${file}: not a livepatch module (its .modinfo has no livepatch=Y)`);
    const rel = mi.vermagic.split(' ')[0];
    if (rel !== target.kernelRelease) {
      throw new KlpgenError(
        `${file}: built for kernel ${rel || '(no vermagic)'}, but the target is ${target.kernelRelease}`,
      );
    }
    return { file: path, name: mi.name, path };
  });
  const names = new Set<string>();
  for (const p of patches) {
    if (names.has(p.name)) throw new KlpgenError(`${p.file}: module name ${p.name} given twice`);
    names.add(p.name);
  }
  let testScript: string | undefined;
  if (o.testScript !== undefined) {
    testScript = resolve(o.testScript);
    if (!existsSync(testScript) || !statSync(testScript).isFile())
      throw new KlpgenError(`${o.testScript}: no such test script`);
  }
  if (o.expectWarnings?.some((t) => t.trim() === ''))
    throw new KlpgenError('--expect-warn: an empty text would match any WARN');
  const index = indexModules(target.paths.modules);
  const preload = o.loadModules ?? [];
  for (const m of preload) {
    if (!index.has(moduleKey(m))) throw new KlpgenError(`module ${m} not found among the target's modules`);
  }
  const bootstrap = moduleLoadOrder(SHARE_MODULES, index);

  const workDir = resolve(o.workDir ?? join(cacheRoot(), 'vm-runs', runId()));
  await mkdir(workDir, { recursive: true });
  const initrd = join(workDir, 'initramfs.cpio');
  const testTimeout = o.testTimeoutSeconds ?? 60;
  const transitionTimeout = o.transitionTimeoutSeconds ?? 30;
  await writeFile(
    initrd,
    buildInitramfs({
      kernelRelease: target.kernelRelease,
      bootstrap,
      preload,
      livepatches: patches,
      testScript,
      testTimeoutSeconds: testTimeout,
      transitionTimeoutSeconds: transitionTimeout,
      workloads: o.workloads,
    }),
  );
  const serialLog = join(workDir, 'console.log');
  info(`VM work dir ${workDir}`);
  const q = await timed('boot VM, load, test, unload', () =>
    bootQemu({
      kernel: target.paths.vmlinuz,
      initrd,
      share: { path: target.paths.modules, tag: MODULES_TAG },
      consoleLog: serialLog,
      resultsLog: join(workDir, 'results.log'),
      timeoutSeconds: o.timeoutSeconds ?? 300,
    }),
  );

  const report = interpret(q.results, q.console, {
    patches,
    preload,
    testScript,
    abi: target.abi,
    kernelRelease: target.kernelRelease,
    workloads: o.workloads ?? [],
    expectWarnings: o.expectWarnings ?? [],
  });
  report.timedOut = q.timedOut;
  report.seconds = Math.round(q.seconds * 10) / 10;
  report.serialLog = serialLog;
  report.workDir = workDir;
  if (q.timedOut)
    report.failures.unshift(`VM did not finish within ${o.timeoutSeconds ?? 300} s (hang?); see ${serialLog}`);
  else if (q.exitCode !== 0 && !report.booted)
    report.failures.unshift(`qemu exited with ${q.exitCode}: ${q.stderr.trim().split('\n').pop() ?? ''}`);
  report.ok = report.failures.length === 0;
  await writeFile(join(workDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

function runId(): string {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}-${process.pid}`;
}

/** Turn the init's `@@ key args...` lines and the console log into a report. */
export function interpret(
  results: string,
  consoleLog: string,
  ctx: {
    patches: { file: string; name: string }[];
    preload: string[];
    testScript?: string;
    abi: string;
    kernelRelease: string;
    workloads?: string[];
    expectWarnings?: string[];
  },
): VmReport {
  const failures: string[] = [];
  const patches: PatchResult[] = ctx.patches.map((p) => ({
    file: p.file,
    name: p.name,
    loaded: false,
    enabled: false,
    transitionSeconds: null,
    disabled: false,
    replaced: false,
    unloaded: false,
  }));
  const byName = new Map(patches.map((p) => [p.name, p]));
  const preloaded = ctx.preload.map((name) => ({ name, loaded: false }));
  let modulesAvailable = false;
  let loadedModules: string[] = [];
  const tests: Record<string, TestRun> = {};
  const testRun = (phase: string): TestRun => (tests[phase] ??= { exitCode: null, output: [] });
  const workloads: VmReport['workloads'] = (ctx.workloads ?? []).map((kind) => ({
    kind,
    exitCode: null,
    seconds: null,
    output: [],
  }));
  const workload = (kind: string) => workloads.find((w) => w.kind === kind);
  let booted = false;
  let done = false;
  for (const line of results.split('\n')) {
    const m = /^@@ (\S+) ?(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1] as string;
    const rest = m[2] ?? '';
    const args = rest.split(' ');
    const p = byName.get(args[0] ?? '');
    switch (key) {
      case 'booted':
        booted = true;
        break;
      case 'done':
        done = true;
        break;
      case 'modules':
        modulesAvailable = args[0] === '0';
        break;
      case 'lsmod':
        loadedModules = args.filter(Boolean).sort();
        break;
      case 'preload': {
        const mod = preloaded.find((x) => x.name === args[0]);
        if (mod) mod.loaded = args[1] === '0';
        break;
      }
      case 'out':
        testRun(args[0] ?? '').output.push(rest.slice((args[0] ?? '').length + 1));
        break;
      case 'test':
        testRun(args[0] ?? '').exitCode = Number(args[1]);
        break;
      case 'wlout':
        workload(args[0] ?? '')?.output.push(rest.slice((args[0] ?? '').length + 1));
        break;
      case 'workload': {
        const w = workload(args[0] ?? '');
        if (w) {
          w.exitCode = Number(args[1]);
          w.seconds = Math.round((Number(args[3]) - Number(args[2])) * 100) / 100;
        }
        break;
      }
      case 'load':
        if (p) p.loaded = args[1] === '0';
        break;
      case 'transition':
        if (p && args[1] === '0') p.transitionSeconds = Math.round((Number(args[3]) - Number(args[2])) * 100) / 100;
        break;
      case 'enabled':
        if (p) p.enabled = args[1] === '1';
        break;
      case 'disabled':
        if (p) p.disabled = args[1] === '0';
        break;
      case 'replaced':
        if (p) p.replaced = true;
        break;
      case 'unload':
        if (p) p.unloaded = args[1] === '0';
        break;
      default:
        break;
    }
  }
  const { problems, expectedWarnings } = consoleProblems(consoleLog, ctx.expectWarnings);

  if (!booted) failures.push('the kernel did not reach our init (boot failed); see the serial log');
  if (booted && !modulesAvailable) failures.push("could not mount the target's modules in the VM (9p)");
  for (const m of preloaded) if (booted && !m.loaded) failures.push(`module ${m.name} failed to load`);
  for (const p of patches) {
    if (!booted) break;
    if (!p.loaded) {
      failures.push(`${p.name}: insmod failed`);
      continue;
    }
    if (p.transitionSeconds === null) failures.push(`${p.name}: transition did not finish`);
    if (!p.enabled) failures.push(`${p.name}: not enabled after loading`);
    if (!p.disabled && !p.replaced) failures.push(`${p.name}: disabling did not finish`);
    if (!p.unloaded) failures.push(`${p.name}: rmmod failed`);
  }
  let test: VmReport['test'] = null;
  if (ctx.testScript !== undefined) {
    const before = testRun('before');
    const after = testRun('after');
    const unloaded = testRun('unloaded');
    const ok =
      before.exitCode !== null &&
      before.exitCode !== 0 &&
      after.exitCode === 0 &&
      unloaded.exitCode !== null &&
      unloaded.exitCode !== 0;
    test = { script: ctx.testScript, before, after, unloaded, ok };
    if (booted && !ok) {
      const rc = (t: TestRun) =>
        t.exitCode === null
          ? 'did not run'
          : t.exitCode === 124 || t.exitCode === 143
            ? 'timed out'
            : `exit ${t.exitCode}`;
      failures.push(
        `LOADED test: before ${rc(before)} (want non-zero), loaded ${rc(after)} (want 0), unloaded ${rc(unloaded)} (want non-zero)`,
      );
    }
  }
  for (const w of workloads) {
    if (!booted || !patches.every((p) => p.loaded)) break;
    if (w.exitCode === null) failures.push(`workload ${w.kind} did not finish`);
    else if (w.exitCode !== 0)
      failures.push(
        `workload ${w.kind}: ${w.exitCode === 124 || w.exitCode === 143 ? 'timed out' : `exit ${w.exitCode}`}${w.output.length ? ` (${w.output[w.output.length - 1]})` : ''}`,
      );
  }
  if (problems.length) failures.push(`kernel reported problems: ${problems[0]?.trim()}`);
  for (const e of expectedWarnings) if (booted && e.seen === 0) failures.push(`expected WARN not seen: ${e.text}`);
  if (booted && !done) failures.push('the VM stopped before the test sequence finished');
  return {
    ok: failures.length === 0,
    failures,
    abi: ctx.abi,
    kernelRelease: ctx.kernelRelease,
    booted,
    modulesAvailable,
    preloaded,
    loadedModules,
    patches,
    test,
    workloads,
    problems,
    expectedWarnings,
    timedOut: false,
    seconds: 0,
    serialLog: '',
    workDir: '',
  };
}

export function formatVmReport(r: VmReport): string {
  const lines = [`vm-test ${r.ok ? 'PASSED' : 'FAILED'} on ${r.kernelRelease} in ${r.seconds} s`];
  for (const m of r.preloaded) lines.push(`  module ${m.name}: ${m.loaded ? 'loaded' : 'NOT loaded'}`);
  for (const p of r.patches) {
    lines.push(
      `  ${p.name}: loaded=${p.loaded} enabled=${p.enabled} transition=${p.transitionSeconds ?? 'unfinished'}${p.transitionSeconds !== null ? ' s' : ''} disabled=${p.disabled}${p.replaced ? ' (replaced)' : ''} unloaded=${p.unloaded}`,
    );
  }
  if (r.test) {
    const rc = (t: TestRun) => (t.exitCode === null ? '-' : String(t.exitCode));
    lines.push(
      `  test ${r.test.script}: before=${rc(r.test.before)} loaded=${rc(r.test.after)} unloaded=${rc(r.test.unloaded)} ${r.test.ok ? 'ok' : 'FAILED'}`,
    );
  }
  for (const w of r.workloads)
    lines.push(
      `  workload ${w.kind}: ${w.exitCode === null ? 'did not finish' : w.exitCode === 0 ? `ok in ${w.seconds} s` : `FAILED (exit ${w.exitCode})`}`,
    );
  for (const e of r.expectedWarnings)
    lines.push(`  expected WARN "${e.text}": ${e.seen ? `seen ${e.seen}x, ${e.warnings[0]}` : 'NOT seen'}`);
  for (const p of r.problems.slice(0, 10)) lines.push(`  kernel: ${p.trim()}`);
  for (const f of r.failures) lines.push(`  failure: ${f}`);
  lines.push(`  serial log: ${r.serialLog}`);
  return lines.join('\n');
}
