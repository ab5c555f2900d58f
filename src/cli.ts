import { Command, CommanderError, Option } from 'commander';
import { KlpgenError, NothingToPatch } from './util/errors.js';
import { RefusedError } from './util/refusal.js';
import { setupTarget } from './target/setup.js';
import { listTargets, loadTarget } from './target/manifest.js';
import { compileCommand } from './target/compile-command.js';
import { shellQuote } from './util/shell.js';
import { buildModule } from './kmod/build.js';
import { vmTest, formatVmReport } from './vm/vm-test.js';
import { parseWorkloads, WORKLOAD_KINDS } from './vm/workloads.js';
import { runDemo } from './demo.js';
import { formatModel, translationUnit } from './frontend/tu.js';
import { analyze, DEFAULT_MAX_TUS, formatAnalysis } from './analyze/analyze.js';
import { UsageIndex } from './usage/index.js';
import { defaultWorkDir } from './util/workdir.js';
import { create } from './create/create.js';
import { formatVerification } from './verify/verify.js';
import { formatScoreboard, OUTCOMES, type Outcome, scoreboard } from './corpus/scoreboard.js';
import { DEFAULT_PATHS, flagImpact, formatReport as formatFlagImpact } from './flagimpact/flag-impact.js';

function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function positive(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new KlpgenError(`${flag}: not a positive number: ${value}`);
  return n;
}

function shardOption(value: string): { k: number; n: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value);
  const k = Number(m?.[1]);
  const n = Number(m?.[2]);
  if (!m || n < 1 || k < 1 || k > n) throw new KlpgenError(`--shard: expected K/N with 1 <= K <= N: ${value}`);
  return { k, n };
}

function outcomesOption(value: string): Outcome[] {
  const list = value
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const bad = list.find((x) => !(OUTCOMES as readonly string[]).includes(x));
  if (bad !== undefined || list.length === 0)
    throw new KlpgenError(`--redo: not an outcome: ${bad ?? value} (one of ${OUTCOMES.join(', ')})`);
  return list as Outcome[];
}

export function buildProgram(): Command {
  const program = new Command('klpgen')
    .description('Safe Linux kernel live patches, generated from source')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`klpgen: error: ${str.replace(/^error: /, '')}`) });

  const abiOption = () => new Option('--abi <abi>', 'target ABI, e.g. 6.1.0-56 (default: newest set up)');
  const maxTusOption = () =>
    new Option(
      '--max-tus <n>',
      `refuse a header change that reaches more translation units than this (default ${DEFAULT_MAX_TUS})`,
    );
  const target = program.command('target').description('the Debian kernel to patch');

  target
    .command('setup')
    .description('download, unpack and prepare a Debian 6.1 kernel as the target (idempotent)')
    .addOption(new Option('--abi <abi>', 'pin the ABI, e.g. 6.1.0-56 (default: newest in the archive)'))
    .option('--json', 'print the target manifest as JSON')
    .action(async (o: { abi?: string; json?: boolean }) => {
      const r = await setupTarget({ abi: o.abi });
      print(
        !!o.json,
        { ...r.manifest, changed: r.changed, timings: r.timings },
        `target ${r.manifest.abi} (Debian ${r.manifest.debianVersion}) ${r.changed ? 'is ready' : 'was already set up'}: ${r.manifest.paths.root}`,
      );
    });

  target
    .command('list')
    .description('list the targets that are set up, newest first')
    .option('--json', 'JSON output')
    .action((o: { json?: boolean }) => {
      const abis = listTargets();
      print(!!o.json, abis, abis.join('\n'));
    });

  target
    .command('show')
    .description("print a target's manifest")
    .addOption(abiOption())
    .option('--json', 'JSON output')
    .action(async (o: { abi?: string; json?: boolean }) => {
      const m = await loadTarget(o.abi);
      print(
        !!o.json,
        m,
        Object.entries(m.paths)
          .map(([k, v]) => `${k.padEnd(14)} ${v}`)
          .join('\n'),
      );
    });

  target
    .command('compile-command')
    .description('the exact Kbuild compile command of one .c file of the target')
    .argument('<file>', 'path of the .c file, relative to the kernel tree')
    .addOption(abiOption())
    .option('--json', 'JSON output')
    .action(async (file: string, o: { abi?: string; json?: boolean }) => {
      const cmd = await compileCommand(await loadTarget(o.abi), file);
      print(!!o.json, cmd, `cd ${shellQuote(cmd.cwd)} && ${cmd.argv.map(shellQuote).join(' ')}`);
    });

  target
    .command('index')
    .description(
      'record, for every translation unit the target builds, the headers it reads and the names its code uses (one gcc -E each; cached, incremental)',
    )
    .addOption(abiOption())
    .option('-j, --jobs <n>', 'preprocessors run at once (default: number of CPUs)')
    .option(
      '--only <prefix>',
      'only TUs whose path starts with this (repeatable); the index is then partial',
      collect,
      [],
    )
    .option('--json', 'JSON output')
    .action(async (o: { abi?: string; jobs?: string; only: string[]; json?: boolean }) => {
      const index = await UsageIndex.open(await loadTarget(o.abi));
      const r = await index.buildAll({
        jobs: o.jobs === undefined ? undefined : positive('--jobs', o.jobs),
        only: o.only.length ? o.only : undefined,
      });
      const failed = [...r.failed].map(([file, why]) => ({ file, why }));
      print(
        !!o.json,
        { ...r.meta, failed, dir: index.dir },
        [
          `${r.meta.tus} translation units indexed in ${r.meta.seconds} s (${r.meta.complete ? 'complete' : 'partial'}): ${index.dir}`,
          ...failed.map((f) => `  not indexed: ${f.file}: ${f.why}`),
        ].join('\n'),
      );
      if (failed.length) process.exitCode = 1;
    });

  program
    .command('tu')
    .description('the model of one translation unit of the target: declarations, definitions, references')
    .argument('<file>', 'path of the .c file, relative to the kernel tree')
    .option('--all', 'text output lists header entities too (JSON always has all)')
    .addOption(abiOption())
    .option('--json', 'JSON output')
    .action(async (file: string, o: { abi?: string; json?: boolean; all?: boolean }) => {
      const model = await translationUnit(await loadTarget(o.abi), file);
      print(!!o.json, model, formatModel(model, !!o.all));
    });

  program
    .command('analyze')
    .description(
      'the must-replace set of a fix: every function whose running code must change, with reasons; and refusals',
    )
    .argument('<patches...>', 'unified diffs (git or plain), applied in order to copies of the target source')
    .option('--work-dir <dir>', 'where the stages are written (default: under the cache, named by the patches)')
    .addOption(maxTusOption())
    .option(
      '--all-includers',
      'analyse every built TU that reads a changed header, not only those that use what changed (a check; slow)',
    )
    .addOption(abiOption())
    .option('--json', 'JSON output')
    .action(
      async (
        patches: string[],
        o: { abi?: string; json?: boolean; workDir?: string; maxTus?: string; allIncluders?: boolean },
      ) => {
        const target = await loadTarget(o.abi);
        const report = await analyze(target, {
          patches,
          workDir: o.workDir ?? defaultWorkDir(target, 'analyze', patches),
          maxTus: o.maxTus === undefined ? undefined : positive('--max-tus', o.maxTus),
          allIncluders: !!o.allIncluders,
        });
        print(!!o.json, report, formatAnalysis(report));
        if (!report.ok) process.exitCode = 2;
      },
    );

  program
    .command('create')
    .description('make a livepatch module from fix patches: analyze, emit C, build (stages in a work dir)')
    .argument('<patches...>', 'unified diffs, applied in order to copies of the target source')
    .option('-o, --out <file>', 'where to write the .ko (default: ./livepatch-NAME.ko)')
    .option('--name <name>', 'module name', 'klpgen_fix')
    .option('--no-replace', 'do not set klp_patch.replace (cumulative patches replace earlier ones by default)')
    .option(
      '--allow-unverified',
      'write the module even if its functions do not match the patched build (exit 0, reported)',
    )
    .option('--from-source', "compile the emitted C instead of taking the functions from the patched build's object")
    .option('--work-dir <dir>', 'stage dirs (default: under the cache, named by the patches)')
    .addOption(maxTusOption())
    .addOption(abiOption())
    .option('--json', 'JSON output')
    .action(
      async (
        patches: string[],
        o: {
          abi?: string;
          json?: boolean;
          workDir?: string;
          out?: string;
          name: string;
          replace: boolean;
          allowUnverified?: boolean;
          fromSource?: boolean;
          maxTus?: string;
        },
      ) => {
        const target = await loadTarget(o.abi);
        const r = await create(target, {
          patches,
          maxTus: o.maxTus === undefined ? undefined : positive('--max-tus', o.maxTus),
          name: o.name,
          out: o.out,
          replace: o.replace,
          allowUnverified: !!o.allowUnverified,
          fromSource: !!o.fromSource,
          workDir: o.workDir ?? defaultWorkDir(target, 'create', patches),
        }).catch((e: unknown) => {
          // --json callers get the refusals typed on stdout; the one-line error still goes to stderr.
          if (o.json && e instanceof RefusedError) print(true, { refused: e.refusals }, '');
          if (o.json && e instanceof NothingToPatch) print(true, { nothing: true, reason: e.message }, '');
          throw e;
        });
        print(
          !!o.json,
          r,
          [
            r.module,
            `  source: ${r.sources.join(', ')}`,
            `  replaces: ${r.analysis.mustReplace.map((e) => e.symbol).join(', ')}`,
            ...r.code.map(
              (c) => `  ${c.file}: ${c.how}${c.refusal ? ` (${c.refusal.kind}: ${c.refusal.reason})` : ''}`,
            ),
            ...formatVerification(r.verification)
              .split('\n')
              .map((l) => `  ${l}`),
          ].join('\n'),
        );
      },
    );

  program
    .command('scoreboard')
    .description('run every patch of a corpus through create and the VM, and count the outcomes')
    .argument('<dir>', 'a corpus directory of .patch files (X.patch: should load; X-FAIL.patch: should be refused)')
    .option('--limit <n>', 'only the first N patches (sorted by name)')
    .option('--sample <n>', 'N patches spread evenly over the corpus')
    .option('--match <text>', 'only patches whose name contains this')
    .option('--no-vm', 'stop after create (no VM boot)')
    .option(
      '--journal <file>',
      'append each score to FILE (JSON lines) and skip the patches it holds: resumable, shareable by shards',
    )
    .option('--shard <k/n>', 'only every N-th patch, starting with the K-th (run N processes side by side)')
    .option('--redo <outcomes>', 'with --journal: run again the patches with these outcomes (comma-separated)')
    .addOption(abiOption())
    .option('--json', 'JSON output')
    .action(
      async (
        dir: string,
        o: {
          abi?: string;
          json?: boolean;
          limit?: string;
          sample?: string;
          match?: string;
          vm: boolean;
          journal?: string;
          shard?: string;
          redo?: string;
        },
      ) => {
        const s = await scoreboard(await loadTarget(o.abi), dir, {
          limit: o.limit === undefined ? undefined : positive('--limit', o.limit),
          sample: o.sample === undefined ? undefined : positive('--sample', o.sample),
          match: o.match,
          vm: o.vm,
          journal: o.journal,
          shard: o.shard === undefined ? undefined : shardOption(o.shard),
          redo: o.redo === undefined ? undefined : outcomesOption(o.redo),
        });
        print(!!o.json, s, formatScoreboard(s));
      },
    );

  program
    .command('flag-impact')
    .description(
      "what -flive-patching=inline-clone changes in the target's code: per function size and instructions, callers, inlining and clones, objtool warnings",
    )
    .argument(
      '[paths...]',
      `.c files or directories of the kernel tree (default: ${DEFAULT_PATHS.join(' ')}; . is the whole kernel)`,
    )
    .addOption(abiOption())
    .option(
      '--profile <file>',
      'rank by hotness: `perf report --stdio` or `perf script` output, or `symbol weight` lines',
    )
    .option('--json', 'print one JSON document (see docs/flag-impact.md)')
    .option('--html <out>', 'also write a self-contained HTML report (sortable table, chart)')
    .option('-j, --jobs <n>', 'parallel jobs (default: number of CPUs)')
    .option('--no-cache', 'compile every TU again instead of reusing results of earlier runs')
    .option('--attribute', 'measure each cause: one more build per IPA pass the flag turns off (slower)')
    .action(
      async (
        paths: string[],
        o: {
          abi?: string;
          json?: boolean;
          profile?: string;
          html?: string;
          jobs?: string;
          cache: boolean;
          attribute?: boolean;
        },
      ) => {
        const jobs = o.jobs === undefined ? undefined : positive('-j', o.jobs);
        if (jobs !== undefined && !Number.isInteger(jobs)) throw new KlpgenError(`-j: not a whole number: ${o.jobs}`);
        const report = await flagImpact(await loadTarget(o.abi), {
          paths,
          profile: o.profile,
          html: o.html,
          jobs,
          cache: o.cache,
          attribute: !!o.attribute,
        });
        print(!!o.json, report, formatFlagImpact(report));
      },
    );

  program
    .command('build-module')
    .description("build an out-of-tree module against the target's headers (make -C headers M=dir modules)")
    .argument('<dir>', "directory with the module's sources and Kbuild file")
    .addOption(abiOption())
    .option('--json', 'JSON output')
    .action(async (dir: string, o: { abi?: string; json?: boolean }) => {
      const r = await buildModule(await loadTarget(o.abi), dir);
      print(!!o.json, r, r.modules.join('\n'));
    });

  program
    .command('vm-test')
    .description('boot the target under qemu, load the livepatch modules, run the test, unload')
    .argument('<modules...>', 'livepatch .ko files, loaded in order')
    .option('--test <script>', 'LOADED test: exits 0 when the patch is in effect, non-zero otherwise')
    .option(
      '--load-modules <name>',
      'load this module of the target (and its dependencies) first; repeatable',
      collect,
      [],
    )
    .option('--timeout <seconds>', 'bound on the whole VM run', '300')
    .option('--test-timeout <seconds>', 'bound on each run of the test script (and of each workload)', '60')
    .option(
      '--workload <kinds>',
      `run while the patch is enabled: ${WORKLOAD_KINDS.join(', ')}, all or none (comma-separated)`,
      'none',
    )
    .option(
      '--expect-warn <text>',
      'a WARN whose report contains this text is expected, not a problem, and must be seen; repeatable',
      collect,
      [],
    )
    .addOption(abiOption())
    .option('--json', 'JSON output')
    .action(
      async (
        modules: string[],
        o: {
          test?: string;
          loadModules: string[];
          timeout: string;
          testTimeout: string;
          workload: string;
          expectWarn: string[];
          abi?: string;
          json?: boolean;
        },
      ) => {
        const report = await vmTest(await loadTarget(o.abi), {
          modules,
          testScript: o.test,
          loadModules: o.loadModules,
          workloads: parseWorkloads(o.workload),
          expectWarnings: o.expectWarn,
          timeoutSeconds: positive('--timeout', o.timeout),
          testTimeoutSeconds: positive('--test-timeout', o.testTimeout),
        });
        print(!!o.json, report, formatVmReport(report));
        if (!report.ok) process.exitCode = 1;
      },
    );

  program
    .command('demo')
    .description('make a livepatch for the bundled example (examples/proc-version) and prove it in the VM')
    .addOption(abiOption())
    .option('--json', 'JSON output')
    .action(async (o: { abi?: string; json?: boolean }) => {
      const report = await runDemo(o.abi);
      print(!!o.json, report, formatVmReport(report));
      if (!report.ok) process.exitCode = 1;
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  // A reader that stops early (`klpgen scoreboard ... | head`) is not an error of ours.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander already printed its message (help and version exit 0).
      return e.exitCode;
    }
    if (e instanceof NothingToPatch) {
      process.stderr.write(`klpgen: nothing to patch: ${e.message}\n`);
      return 0;
    }
    if (e instanceof KlpgenError) {
      process.stderr.write(`klpgen: error: ${e.message}\n`);
      return e.exitCode;
    }
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`klpgen: internal error: ${msg}\n`);
    if (process.env.KLPGEN_DEBUG && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
    return 70;
  }
}
