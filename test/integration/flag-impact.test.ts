/**
 * `klpgen flag-impact` on the real target: the default set (kernel/sched/,
 * 4 TUs) compiled cold, the JSON shape, a real classified difference,
 * determinism, a profile, errors; and the HTML report rendered in headless
 * Chromium (table rows and chart bars exist after its script ran; the
 * screenshot is a real, non-blank PNG).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { runPostCommands } from '../../src/flagimpact/build.js';
import type { FlagImpactReport } from '../../src/flagimpact/report.js';
import { normalisePaths, planTus } from '../../src/flagimpact/kbuild.js';
import { compileCommand, type CompileCommand } from '../../src/target/compile-command.js';
import { loadTarget } from '../../src/target/manifest.js';
import { ensureTarget, klpgen, tempDir } from '../helpers.js';

const dir = tempDir('flag-impact');
const html = join(dir, 'report.html');
let first: { report: FlagImpactReport; stdout: string } | undefined;

function coldRun(): { report: FlagImpactReport; stdout: string } {
  if (first) return first;
  const t = ensureTarget();
  // No PATH: the default set, kernel/sched/. --no-cache: really compile, even if an earlier run cached it.
  const r = klpgen(['flag-impact', '--abi', t.abi, '--json', '--no-cache', '--html', html, '-j', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /\[1\/4 [\d.]+ s\] kernel\/sched\//, 'progress shows n/total and elapsed time');
  assert.match(r.stderr, /\[4\/4 /);
  first = { report: JSON.parse(r.stdout) as FlagImpactReport, stdout: r.stdout };
  return first;
}

test('flag-impact: kernel/sched/ compiled twice; JSON shape; real differences found and classified', () => {
  const t = ensureTarget();
  const { report } = coldRun();
  assert.equal(report.schema, 1);
  assert.equal(report.target.abi, t.abi);
  assert.deepEqual(report.paths, ['kernel/sched/']);
  assert.equal(report.flags.livepatch, '-flive-patching=inline-clone');
  assert.deepEqual(report.flags.added, ['-fdump-ipa-clones', '-ffunction-sections']);
  assert.equal(report.profile, null);
  assert.equal(report.attribution, 'heuristic');
  // build_policy.c, build_utility.c, core.c, fair.c; the files they #include are skipped, each with a reason.
  assert.equal(report.summary.tus, 4);
  assert.ok(
    report.skipped.some((s) => s.file === 'kernel/sched/idle.c'),
    JSON.stringify(report.skipped),
  );
  assert.equal(report.summary.skipped, report.skipped.length);
  assert.ok(report.skipped.every((s) => s.reason.length > 0));
  assert.ok(report.workDir.startsWith(join(t.paths.root!, 'work', 'flag-impact')));

  const s = report.summary;
  for (const k of ['changed', 'added', 'removed', 'callersChanged', 'sizeDelta', 'instructionDelta'] as const)
    assert.equal(typeof s[k], 'number', k);
  assert.ok(s.functions.asIs > 500 && s.functions.livepatch > 500, JSON.stringify(s.functions));
  assert.equal(report.functions.length, s.changed + s.added + s.removed);
  assert.ok(s.changed > 0, 'the flag changes some functions of kernel/sched');

  for (const [i, f] of report.functions.entries()) {
    assert.equal(f.rank, i + 1);
    assert.ok(['changed', 'added', 'removed'].includes(f.status));
    assert.ok(['self', 'caller'].includes(f.kind));
    assert.ok(/^kernel\/sched\/\w+\.c$/.test(f.file));
    assert.equal(f.size.delta, (f.size.livepatch ?? 0) - (f.size.asIs ?? 0));
    assert.equal(f.instructions.delta, (f.instructions.livepatch ?? 0) - (f.instructions.asIs ?? 0));
    assert.equal(f.profile, null);
    assert.ok(['dump', 'code', 'heuristic', 'measured', 'none'].includes(f.evidence));
    assert.equal(f.passes, null, 'no --attribute');
    assert.equal('callers' in f, false, 'internal caller lists are not part of the report');
  }
  // Sorted by |size delta| without a profile.
  for (let i = 1; i < report.functions.length; i++) {
    assert.ok(Math.abs(report.functions[i - 1]!.size.delta) >= Math.abs(report.functions[i]!.size.delta));
  }
  // At least one real difference with a cause other than the fallback, with its evidence named.
  const classified = report.functions.filter((f) => f.status === 'changed' && f.cause !== 'code changed');
  assert.ok(classified.length > 0, JSON.stringify(report.functions.slice(0, 5)));
  const inlined = report.functions.find((f) => f.cause === 'inlining');
  assert.ok(inlined && inlined.related.length > 0, 'an inlining change names the callees whose decision changed');
  assert.ok(report.functions.some((f) => f.kind === 'caller' && f.related.length > 0));
  // Decisions from the dumps.
  assert.ok(report.inlining.length > 0 && report.inlining.every((c) => c.change === 'lost' || c.change === 'gained'));
  assert.equal(s.inlining.lost + s.inlining.gained + s.inlining.callDeletedAsIs, report.inlining.length);
  assert.ok(report.clones.every((c) => c.change === 'disappeared' || c.change === 'appeared'));
  assert.ok(Array.isArray(report.objtool));
  assert.equal(s.objtool.appeared + s.objtool.disappeared, report.objtool.length);
});

test('flag-impact: the same inputs give the same bytes (second run from the cache); text and file modes', () => {
  const t = ensureTarget();
  const { stdout, report } = coldRun();
  const again = klpgen(['flag-impact', 'kernel/sched/', '--abi', t.abi, '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /4 of 4 TUs from the cache/);
  assert.equal(again.stdout, stdout);

  const text = klpgen(['flag-impact', '--abi', t.abi]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^flag-impact of -flive-patching=inline-clone on /);
  assert.match(text.stdout, new RegExp(`functions: ${report.summary.functions.asIs} as-is`));
  assert.match(text.stdout, /^\s+1\s+\S+\s+kernel\/sched\//m);

  const one = klpgen(['flag-impact', 'kernel/sched/core.c', '--abi', t.abi, '--json']);
  assert.equal(one.code, 0, one.stderr);
  const r1 = JSON.parse(one.stdout) as FlagImpactReport;
  assert.equal(r1.summary.tus, 1);
  assert.equal(r1.summary.skipped, 0);
  assert.deepEqual(
    r1.functions.map((f) => f.name).sort(),
    report.functions
      .filter((f) => f.file === 'kernel/sched/core.c')
      .map((f) => f.name)
      .sort(),
  );
});

test('flag-impact: --profile ranks by hotness (self and callers); all three formats are accepted', () => {
  const t = ensureTarget();
  const { report } = coldRun();
  const cold = report.functions[report.functions.length - 1]!;
  const plain = join(dir, 'plain.txt');
  writeFileSync(plain, `# symbol weight\n${cold.name} 50\nnot_in_the_report 1000\n`);
  const r = klpgen(['flag-impact', '--abi', t.abi, '--json', '--profile', plain]);
  assert.equal(r.code, 0, r.stderr);
  const ranked = JSON.parse(r.stdout) as FlagImpactReport;
  assert.deepEqual(ranked.profile, { format: 'plain', symbols: 2, totalWeight: 1050, matched: 1 });
  assert.equal(ranked.functions[0]!.name, cold.name);
  assert.equal(ranked.functions[0]!.profile!.self, 50);
  assert.ok(
    ranked.functions.every(
      (f) => f.profile !== null && f.profile.hotness === Math.round((f.profile.self + f.profile.callers) * 1e6) / 1e6,
    ),
  );
  assert.notEqual(ranked.workDir, report.workDir, 'the profile is an input: its own work dir');

  const perfReport = join(dir, 'perf-report.txt');
  writeFileSync(
    perfReport,
    `# Overhead  Command  Shared Object      Symbol\n    42.00%  bash     [kernel.kallsyms]  [k] ${cold.name}\n`,
  );
  const pr = JSON.parse(
    klpgen(['flag-impact', '--abi', t.abi, '--json', '--profile', perfReport]).stdout,
  ) as FlagImpactReport;
  assert.equal(pr.profile?.format, 'perf-report');
  assert.equal(pr.functions[0]!.profile!.self, 42);

  const perfScript = join(dir, 'perf-script.txt');
  writeFileSync(
    perfScript,
    `bash 1 [000] 1.000001: 1 cycles:\n\tffffffff81000000 ${cold.name}+0x4 ([kernel.kallsyms])\n\n`.repeat(3),
  );
  const ps = JSON.parse(
    klpgen(['flag-impact', '--abi', t.abi, '--json', '--profile', perfScript]).stdout,
  ) as FlagImpactReport;
  assert.equal(ps.profile?.format, 'perf-script');
  assert.equal(ps.functions[0]!.profile!.self, 3);
});

test('flag-impact: --attribute measures causes with one build per IPA pass', () => {
  const t = ensureTarget();
  const r = klpgen(['flag-impact', 'kernel/sched/core.c', '--abi', t.abi, '--json', '--attribute']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as FlagImpactReport;
  assert.equal(report.attribution, 'measured');
  const measured = report.functions.filter((f) => f.evidence === 'measured');
  assert.ok(measured.length > 0);
  const causeOfPass: Record<string, string[]> = {
    'ipa-modref': ['modref'],
    'ipa-pure-const': ['pure-const', 'noreturn'],
    'ipa-vrp': ['vrp'],
    'ipa-icf': ['icf'],
    'ipa-ra': ['ipa-ra'],
    'ipa-stack-alignment': ['stack-alignment'],
    'ipa-reference': ['ipa-reference'],
  };
  for (const f of measured) {
    assert.ok(f.passes && f.passes.length > 0, f.name);
    assert.ok(
      f.passes.some((p) => causeOfPass[p]?.includes(f.cause)),
      `${f.name}: ${f.cause} from ${f.passes.join(',')}`,
    );
  }
  // On this kernel ipa-modref is the most common single cause (docs/flag-impact.md).
  assert.ok(measured.some((f) => f.cause === 'modref'));
});

test('flag-impact: bad input is one error line and a non-zero exit', () => {
  const t = ensureTarget();
  const cases: [string[], RegExp][] = [
    [
      ['kernel/no-such-dir/'],
      /^klpgen: error: kernel\/no-such-dir\/: no such file or directory in the target's source tree\n$/,
    ],
    [['kernel/sched/sched.h'], /^klpgen: error: kernel\/sched\/sched\.h: not a \.c file or a directory\n$/],
    [['../etc'], /^klpgen: error: \.\.\/etc: not inside the target's source tree/],
    [['tools/objtool/'], /^klpgen: error: tools\/objtool\/: not kernel code built by Kbuild\n$/],
    [['-j', '0'], /^klpgen: error: -j: not a positive number: 0\n$/],
    [['--profile', join(dir, 'missing.txt')], /^klpgen: error: .*missing\.txt: cannot read the profile \(ENOENT\)\n$/],
  ];
  const garbage = join(dir, 'garbage.txt');
  writeFileSync(garbage, 'this is not a profile\n');
  cases.push([['--profile', garbage], /^klpgen: error: .*garbage\.txt:1: not a profile/]);
  for (const [args, re] of cases) {
    const r = klpgen(['flag-impact', '--abi', t.abi, ...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, re, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(r.stdout, '');
  }
});

test("flag-impact: commands from the Kbuild dry run are exactly those of Kbuild's .cmd files", async () => {
  const target = await loadTarget(ensureTarget().abi);
  const plan = await planTus(target, normalisePaths(target, ['kernel/sched/', 'kernel/fork.c']), join(dir, 'dry-run'));
  assert.deepEqual(
    plan.tus.map((c) => c.file),
    [
      'kernel/fork.c',
      'kernel/sched/build_policy.c',
      'kernel/sched/build_utility.c',
      'kernel/sched/core.c',
      'kernel/sched/fair.c',
    ],
  );
  for (const file of ['kernel/sched/core.c', 'kernel/fork.c']) {
    const real = await compileCommand(target, file); // builds the object once in the target's tree if needed
    const dry = plan.tus.find((c) => c.file === file)!;
    assert.deepEqual({ ...dry, deps: [] }, { ...real, deps: [] }, file);
  }
  assert.ok(plan.skipped.some((s) => s.file === 'kernel/sched/rt.c' && /#included by another/.test(s.reason)));
});

test("flag-impact: objtool warnings are collected from the target's objtool, named by Kbuild's object", async () => {
  const t = ensureTarget();
  const build = t.paths.build!;
  // A stack left unbalanced at the return: objtool's stack validation (--orc) must complain.
  const src = join(dir, 'unbalanced.c');
  const obj = join(dir, 'unbalanced.o');
  writeFileSync(src, 'void g(void);\nvoid f(void) { g(); asm volatile("push %rax"); }\n');
  const cc = spawnSync('gcc-12', ['-O2', '-c', '-fno-asynchronous-unwind-tables', '-mno-red-zone', '-o', obj, src], {
    encoding: 'utf8',
  });
  assert.equal(cc.status, 0, cc.stderr);
  const objtool = [
    './tools/objtool/objtool',
    '--hacks=jump_label',
    '--hacks=noinstr',
    '--orc',
    '--retpoline',
    '--rethunk',
    '--sls',
    '--static-call',
    '--uaccess',
  ];
  const cmd: CompileCommand = {
    file: 'kernel/unbalanced.c',
    cwd: build,
    argv: [],
    post: [[...objtool, 'kernel/unbalanced.o']],
    source: src,
    object: join(build, 'kernel/unbalanced.o'),
    deps: [],
  };
  const warnings = await runPostCommands(cmd, obj);
  assert.ok(
    warnings.some((w) =>
      /^kernel\/unbalanced\.o: warning: objtool: f\+0x[0-9a-f]+: return with modified stack frame$/.test(w),
    ),
    warnings.join('\n'),
  );
  assert.ok(
    warnings.every((w) => !w.includes(dir)),
    "our copy's path is replaced by Kbuild's object name",
  );
});

function findChromium(): string | undefined {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    if (spawnSync('sh', ['-c', `command -v ${name}`]).status === 0) return name;
  }
  return undefined;
}

/** Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) into rows of pixels. */
function decodePng(buf: Buffer): { width: number; height: number; channels: number; pixels: Buffer } {
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  let pos = 8;
  let width = 0,
    height = 0,
    channels = 0;
  const idat: Buffer[] = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, 'bit depth');
      assert.ok(data[9] === 2 || data[9] === 6, `colour type ${data[9]}`);
      assert.equal(data[12], 0, 'not interlaced');
      channels = data[9] === 6 ? 4 : 3;
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      break;
    }
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x]!;
      const a = x >= channels ? pixels[y * stride + x - channels]! : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels]! : 0;
      let p: number;
      switch (filter) {
        case 0:
          p = v;
          break;
        case 1:
          p = v + a;
          break;
        case 2:
          p = v + b;
          break;
        case 3:
          p = v + ((a + b) >> 1);
          break;
        case 4: {
          const pa = Math.abs(b - c),
            pb = Math.abs(a - c),
            pc = Math.abs(a + b - 2 * c);
          p = v + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
          break;
        }
        default:
          throw new Error(`bad PNG filter ${filter}`);
      }
      pixels[y * stride + x] = p & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

test('flag-impact: the HTML report renders in headless Chromium: sortable table rows, chart bars, a non-blank screenshot', (t) => {
  const chromium = findChromium();
  if (!chromium) {
    t.skip('chromium is not installed (apt-get install chromium; scripts/deps.sh installs it)');
    return;
  }
  const { report } = coldRun();
  assert.ok(existsSync(html));
  const page = readFileSync(html, 'utf8');
  assert.doesNotMatch(page, /(src|href)=["']https?:/, 'no network assets');
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--window-size=1280,1000'];
  const dom = spawnSync(chromium, [...flags, '--dump-dom', `file://${html}`], { encoding: 'utf8', timeout: 120000 });
  assert.equal(dom.status, 0, dom.stderr);
  const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(dom.stdout)?.[1] ?? '';
  assert.equal(
    (body.match(/<tr>/g) ?? []).length,
    report.functions.length,
    'one row per function, made by the page script',
  );
  assert.match(dom.stdout, /<th[^>]*class="num sorted-asc"[^>]*>#<\/th>/);
  const bars = dom.stdout.match(/<rect [^>]*class="bar /g) ?? [];
  assert.equal(bars.length, Math.min(20, report.functions.filter((f) => f.size.delta !== 0).length));
  assert.ok(bars.length > 0);

  const png = join(dir, 'report.png');
  const shot = spawnSync(chromium, [...flags, `--screenshot=${png}`, `file://${html}`], {
    encoding: 'utf8',
    timeout: 120000,
  });
  assert.equal(shot.status, 0, shot.stderr);
  const img = decodePng(readFileSync(png));
  assert.equal(img.width, 1280);
  assert.equal(img.height, 1000);
  const colours = new Set<number>();
  let white = 0;
  for (let i = 0; i < img.pixels.length; i += img.channels) {
    const rgb = (img.pixels[i]! << 16) | (img.pixels[i + 1]! << 8) | img.pixels[i + 2]!;
    colours.add(rgb);
    if (rgb === 0xffffff) white++;
  }
  const total = img.width * img.height;
  assert.ok(colours.size > 20, `${colours.size} colours`);
  assert.ok(white < total * 0.97, 'more than a blank page');
  // The chart's bar colours are there (red for growth, green for shrinking).
  assert.ok(
    [...colours].some((c) => c === 0xe0605a || c === 0x3f9f6a),
    'bar colours in the screenshot',
  );
});
