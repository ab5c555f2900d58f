/**
 * The must-replace set on C fixtures, compiled for real with gcc-12 and the
 * kernel's code-generation flags that work in userspace.
 *
 * Each case is a directory of test/fixtures/analyze/ with orig.c and
 * patched.c (and, for duplicate-local, a.c: another TU of the "kernel").
 * The harness does what `klpgen analyze` does for one TU, minus Kbuild:
 *  - tmp/orig/fx.c is the original, line-aligned to the patched file
 *    (`diff -U0` + alignLineNumbers), tmp/patched/fx.c the patched file;
 *  - a synthetic CompileCommand stands for Kbuild's (gcc-12 + FLAGS);
 *  - the "running kernel" is the original compiled normally (fx.c → fx.o,
 *    linked with `ld -r` after a.o when the fixture has an a.c), read with
 *    loadSymbolIndex in symbol-table order as for a module;
 *  - analyzeCompiledTu fills the report.
 * Every test first checks that gcc really did what makes the case a hazard
 * (ipa-clones records, symbols, relocations, code differences), reading the
 * objects and dumps the analysis itself produced, so the test notices when a
 * compiler stops doing it. Then it asserts the exact set of symbol,sympos,
 * the reasons (kind/evidence) of each entry, and the refusals.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { analyzeCompiledTu, emptyReport, type AnalysisReport } from '../../src/analyze/analyze.js';
import { ipaClonesDumpPath, parseIpaClones, INLINING_TO, type IpaClonesDump } from '../../src/analyze/ipa-clones.js';
import { alignLineNumbers, parseUnifiedZeroHunks } from '../../src/analyze/lines.js';
import { compareCode, hasFentry, readObjectCode, referrers, type ObjectCode } from '../../src/analyze/objdiff.js';
import { loadSymbolIndex } from '../../src/analyze/symbols.js';
import { parseElf, STT_FILE, STT_FUNC, type ElfSymbol } from '../../src/elf/elf64.js';
import type { CompileCommand } from '../../src/target/compile-command.js';
import { ROOT, tempDir } from '../helpers.js';

const CC = 'gcc-12';
/** Kbuild's flags that shape code generation and work in userspace; -pg -mfentry give every traceable function its `call __fentry__`. */
const FLAGS = [
  '-O2',
  '-g',
  '-std=gnu11',
  '-fno-strict-aliasing',
  '-fno-common',
  '-fno-pic',
  '-mcmodel=kernel',
  '-mno-red-zone',
  '-fno-omit-frame-pointer',
  '-fno-stack-protector',
  '-fno-delete-null-pointer-checks',
  '-pg',
  '-mfentry',
  '-mrecord-mcount',
  '-fconserve-stack',
];
/** FLAGS without the ftrace hook (GCC turns IPA-RA off under -pg); the ipa-ra fixture spells the hook out itself. */
const FLAGS_NO_PG = [...FLAGS.filter((f) => !['-pg', '-mfentry', '-mrecord-mcount'].includes(f)), '-DSPELL_FENTRY'];

const FIXTURES = join(ROOT, 'test', 'fixtures', 'analyze');
const tmps: string[] = [];
after(() => {
  if (process.env.KLPGEN_KEEP_TEST_TMP) return;
  for (const d of tmps) rmSync(d, { recursive: true, force: true });
});

interface Build {
  obj: string;
  code: ObjectCode;
  /** Raw text of the ipa-clones dump and its parse. */
  dumpText: string;
  dump: IpaClonesDump;
  /** All ELF symbols of the object. */
  syms: ElfSymbol[];
}

interface FixtureRun {
  report: AnalysisReport;
  tmp: string;
  flags: string[];
  orig: Build;
  patched: Build;
  /** The "running kernel" object. */
  kernel: string;
}

function readBuild(dir: string): Build {
  const obj = join(dir, 'fx.o');
  const elf = parseElf(readFileSync(obj), obj);
  const dumpText = readFileSync(ipaClonesDumpPath(obj, 'fx.c'), 'utf8');
  return { obj, code: readObjectCode(elf), dumpText, dump: parseIpaClones(dumpText, dir), syms: elf.symbols() };
}

async function runFixture(name: string, opts: { flags?: string[] } = {}): Promise<FixtureRun> {
  const flags = opts.flags ?? FLAGS;
  const fx = join(FIXTURES, name);
  const origPath = join(fx, 'orig.c');
  const patchedPath = join(fx, 'patched.c');
  const original = readFileSync(origPath, 'utf8');
  const patchedText = readFileSync(patchedPath, 'utf8');
  const d = spawnSync('diff', ['-U0', origPath, patchedPath], { encoding: 'utf8' });
  assert.equal(d.status, 1, `${name}: orig.c and patched.c should differ (diff: ${d.stderr})`);
  const aligned = alignLineNumbers(original, parseUnifiedZeroHunks(d.stdout));

  const tmp = tempDir(`analyze-${name}`);
  tmps.push(tmp);
  for (const [sub, text] of [
    ['orig', aligned.text],
    ['patched', patchedText],
    ['kernel', original],
  ] as const) {
    mkdirSync(join(tmp, sub));
    writeFileSync(join(tmp, sub, 'fx.c'), text);
  }
  // The running kernel: the original as it was built (fx.c, so its STT_FILE is fx.c).
  execFileSync(CC, [...flags, '-c', '-o', join(tmp, 'kernel', 'fx.o'), join(tmp, 'kernel', 'fx.c')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let kernel = join(tmp, 'kernel', 'fx.o');
  if (existsSync(join(fx, 'a.c'))) {
    writeFileSync(join(tmp, 'kernel', 'a.c'), readFileSync(join(fx, 'a.c')));
    execFileSync(CC, [...flags, '-c', '-o', join(tmp, 'kernel', 'a.o'), join(tmp, 'kernel', 'a.c')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    kernel = join(tmp, 'kernel.o');
    execFileSync('ld', ['-r', '-o', kernel, join(tmp, 'kernel', 'a.o'), join(tmp, 'kernel', 'fx.o')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  }

  const source = join(tmp, 'orig', 'fx.c');
  const cmd: CompileCommand = {
    file: 'fx.c',
    cwd: tmp,
    argv: [CC, ...flags, '-c', '-o', join(tmp, 'kbuild.o'), source],
    post: [],
    source,
    object: join(tmp, 'kbuild.o'),
    deps: [],
  };
  const report = emptyReport('fixture', [], tmp);
  const workDir = join(tmp, 'work');
  await analyzeCompiledTu(
    {
      cmd,
      tu: { path: 'fx.c', directives: aligned.directives },
      dirs: { origRoot: join(tmp, 'orig'), patchedRoot: join(tmp, 'patched'), workDir },
      object: 'vmlinux',
      symbols: () => loadSymbolIndex(kernel, 'vmlinux', false),
    },
    report,
  );
  const objDir = join(workDir, '2-objects', 'fx');
  return {
    report,
    tmp,
    flags,
    orig: readBuild(join(objDir, 'original')),
    patched: readBuild(join(objDir, 'patched')),
    kernel,
  };
}

interface Expected {
  sympos: number;
  /** Line of the definition in patched.c. */
  line: number;
  /** `kind/evidence`, in any order. */
  reasons: string[];
}

/** The exact must-replace set: symbol → sympos, line and reason kinds with their evidence. */
function assertMustReplace(r: AnalysisReport, expected: Record<string, Expected>): void {
  const actual: Record<string, Expected> = {};
  for (const e of r.mustReplace) {
    assert.equal(e.object, 'vmlinux', `${e.symbol}: object`);
    assert.equal(e.file, 'fx.c', `${e.symbol}: file`);
    assert.ok(!(e.symbol in actual), `${e.symbol} is listed twice`);
    actual[e.symbol] = {
      sympos: e.sympos,
      line: e.line,
      reasons: e.reasons.map((x) => `${x.kind}/${x.evidence}`).sort(),
    };
  }
  const want: Record<string, Expected> = {};
  for (const [k, v] of Object.entries(expected)) want[k] = { ...v, reasons: [...v.reasons].sort() };
  assert.deepEqual(actual, want, `must-replace set:\n${JSON.stringify(r.mustReplace, null, 2)}`);
}

function reasonDetail(r: AnalysisReport, symbol: string, kind: string): string {
  const d = r.mustReplace.find((e) => e.symbol === symbol)?.reasons.find((x) => x.kind === kind)?.detail;
  assert.ok(d !== undefined, `${symbol} has no ${kind} reason`);
  return d;
}

/** The exact refusals, in order. */
function assertRefusals(r: AnalysisReport, expected: { reason: RegExp; line: number }[]): void {
  assert.equal(r.refusals.length, expected.length, `refusals:\n${JSON.stringify(r.refusals, null, 2)}`);
  expected.forEach((x, i) => {
    const got = r.refusals[i]!;
    assert.match(got.reason, x.reason);
    assert.equal(got.file, 'fx.c');
    assert.equal(got.line, x.line, `line of refusal "${got.reason}"`);
  });
}

/** Defined symbols as `nm` prints them: name → type letter. */
function nm(obj: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of execFileSync('nm', ['--defined-only', obj], { encoding: 'utf8' }).split('\n')) {
    const p = l.trim().split(/\s+/);
    if (p.length === 3) out.set(p[2]!, p[1]!);
  }
  return out;
}

function fn(b: Build, name: string) {
  const f = b.code.functions.get(name);
  assert.ok(f, `${name} is not a function of ${b.obj}`);
  return f;
}

/** Call/jump relocations of `caller` whose target is `callee` (numbers folded). */
function callsTo(b: Build, caller: string, callee: string): number {
  return fn(b, caller).relocs.filter((r) => r.target === callee && /PC32|PLT32/.test(r.type)).length;
}

/** Clone records mentioning `name` (as origin or as the function the code went to). */
function recordsNaming(d: IpaClonesDump, name: string) {
  return d.clones.filter((c) => c.origin.name === name || c.clone.name === name);
}

test('1. a changed static helper inlined into two callers: both callers, not the helper', async () => {
  const r = await runFixture('inlined-helper');
  // The hazard: the helper exists only as inline copies.
  assert.match(r.orig.dumpText, /^Callgraph clone;scaled;\d+;[^;]*;\d+;\d+;rx_budget;\d+;[^;]*;\d+;\d+;inlining to$/m);
  assert.match(r.orig.dumpText, /^Callgraph clone;scaled;\d+;[^;]*;\d+;\d+;tx_budget;\d+;[^;]*;\d+;\d+;inlining to$/m);
  assert.ok(!nm(r.orig.obj).has('scaled'));
  assert.ok(!nm(r.kernel).has('scaled'));

  assert.deepEqual(r.report.tus[0]?.sourceChanged, ['scaled']);
  assert.deepEqual(r.report.tus[0]?.noSymbol, ['scaled']);
  assertMustReplace(r.report, {
    rx_budget: { sympos: 0, line: 12, reasons: ['inlined/ipa-clones', 'code/object diff'] },
    tx_budget: { sympos: 0, line: 17, reasons: ['inlined/ipa-clones', 'code/object diff'] },
  });
  assert.equal(reasonDetail(r.report, 'rx_budget', 'inlined'), 'scaled inlined into rx_budget');
  assertRefusals(r.report, []);
});

test("2. a changed function turned into a .constprop clone: the clone's callers are replaced", async () => {
  const r = await runFixture('constprop-clone');
  assert.deepEqual(
    r.orig.dump.clones.map((c) => `${c.origin.name} -> ${c.clone.name} ${c.reason}`),
    ['scale -> scale.constprop.0 constprop'],
  );
  const syms = nm(r.orig.obj);
  assert.equal(syms.get('scale.constprop.0'), 't');
  assert.ok(!syms.has('scale'));
  assert.deepEqual(referrers(r.orig.code, 'scale.constprop.0'), ['scale_rx', 'scale_tx']);
  assert.ok(r.report.tus[0]?.codeChanged.some((c) => c.name === 'scale.constprop.0'));

  // The clone is never replaced itself (private calling convention): its callers are.
  assertMustReplace(r.report, {
    scale_rx: { sympos: 0, line: 15, reasons: ['caller-of-clone/object diff'] },
    scale_tx: { sympos: 0, line: 20, reasons: ['caller-of-clone/object diff'] },
  });
  assert.match(reasonDetail(r.report, 'scale_rx', 'caller-of-clone'), /calls scale\.constprop\.0/);
  assertRefusals(r.report, []);
});

test("3. a changed function turned into an .isra clone: the clone's callers are replaced", async () => {
  const r = await runFixture('isra-clone');
  assert.deepEqual(
    r.orig.dump.clones.map((c) => `${c.origin.name} -> ${c.clone.name} ${c.reason}`),
    ['item_cost -> item_cost.isra.0 isra'],
  );
  const syms = nm(r.orig.obj);
  assert.equal(syms.get('item_cost.isra.0'), 't');
  assert.ok(!syms.has('item_cost'));
  assert.deepEqual(referrers(r.orig.code, 'item_cost.isra.0'), ['cost_nth', 'cost_one']);

  assertMustReplace(r.report, {
    cost_one: { sympos: 0, line: 16, reasons: ['caller-of-clone/object diff'] },
    cost_nth: { sympos: 0, line: 21, reasons: ['caller-of-clone/object diff'] },
  });
  assertRefusals(r.report, []);
});

test('4. a changed function split into an inlined header and a .part: the callers are replaced', async () => {
  const r = await runFixture('part-split');
  assert.match(r.orig.dumpText, /^Callgraph clone;lookup;\d+;[^;]*;\d+;\d+;lookup\.part\.0;\d+;[^;]*;\d+;\d+;part$/m);
  for (const caller of ['find_a', 'find_b', 'find_c']) {
    assert.match(
      r.orig.dumpText,
      new RegExp(`^Callgraph clone;lookup;\\d+;[^;]*;\\d+;\\d+;${caller};\\d+;[^;]*;\\d+;\\d+;inlining to$`, 'm'),
    );
  }
  // The .part is out of line (no record inlines it anywhere) and is what the callers call.
  assert.equal(r.orig.dump.clones.filter((c) => c.origin.name === 'lookup.part.0').length, 0);
  const syms = nm(r.orig.obj);
  assert.equal(syms.get('lookup.part.0'), 't');
  assert.ok(!syms.has('lookup'));
  assert.deepEqual(referrers(r.orig.code, 'lookup.part.0'), ['find_a', 'find_b', 'find_c']);

  assertMustReplace(r.report, {
    find_a: { sympos: 0, line: 30, reasons: ['inlined/ipa-clones', 'caller-of-clone/object diff'] },
    find_b: { sympos: 0, line: 35, reasons: ['inlined/ipa-clones', 'caller-of-clone/object diff'] },
    find_c: { sympos: 0, line: 40, reasons: ['inlined/ipa-clones', 'caller-of-clone/object diff'] },
  });
  assertRefusals(r.report, []);
});

test("5a. IPA-RA is off under the kernel's -pg: a callee change leaves its caller alone", async () => {
  const r = await runFixture('ipa-ra');
  // GCC's toplev.cc: `if (profile_flag || patch_area_size || ...) flag_ipa_ra = 0;`
  // combine keeps its values in callee-saved registers either way: same code.
  assert.equal(compareCode(fn(r.orig, 'combine'), fn(r.patched, 'combine')), undefined);
  assert.ok(!r.report.tus[0]?.codeChanged.some((c) => c.name === 'combine'));
  assertMustReplace(r.report, {
    mix: { sympos: 0, line: 20, reasons: ['source/patch', 'code/object diff'] },
  });
  assertRefusals(r.report, []);
});

test('5b. an IPA-RA-only effect (no -pg): the caller whose code changed is replaced, by object diff', async () => {
  const r = await runFixture('ipa-ra', { flags: FLAGS_NO_PG });
  // The fixture's spelled-out hook makes both functions traceable, as -mfentry would.
  assert.ok(hasFentry(fn(r.orig, 'mix')) && hasFentry(fn(r.orig, 'combine')));
  // The hazard: combine's source is the same, its code is not, and ipa-clones knows nothing of it.
  assert.deepEqual(r.report.tus[0]?.sourceChanged, ['mix']);
  assert.notEqual(compareCode(fn(r.orig, 'combine'), fn(r.patched, 'combine')), undefined);
  assert.deepEqual(recordsNaming(r.orig.dump, 'combine'), []);
  assert.ok(!r.orig.dump.clones.some((c) => c.reason === INLINING_TO && c.clone.name === 'combine'));
  assert.equal(callsTo(r.orig, 'combine', 'mix'), 1);

  assertMustReplace(r.report, {
    mix: { sympos: 0, line: 20, reasons: ['source/patch', 'code/object diff'] },
    combine: { sympos: 0, line: 26, reasons: ['code/object diff'] },
  });
  assertRefusals(r.report, []);
});

test('6. a callee that stops being pure: its caller (one call becomes two) is replaced, by object diff', async () => {
  const r = await runFixture('pure-const');
  // The hazard: with over_limit pure the two calls were merged into one.
  assert.equal(callsTo(r.orig, 'check_pair', 'over_limit'), 1);
  assert.equal(callsTo(r.patched, 'check_pair', 'over_limit'), 2);
  assert.deepEqual(r.orig.dump.clones, []);
  assert.deepEqual(r.report.tus[0]?.sourceChanged, ['over_limit']);

  assertMustReplace(r.report, {
    over_limit: { sympos: 0, line: 9, reasons: ['source/patch', 'code/object diff'] },
    check_pair: { sympos: 0, line: 15, reasons: ['code/object diff'] },
  });
  assertRefusals(r.report, []);
});

test('7. a change in a .cold part: the parent is replaced, never foo.cold', async () => {
  const r = await runFixture('cold-split');
  const cold = fn(r.orig, 'fetch.cold');
  assert.equal(cold.section, '.text.unlikely.fetch');
  assert.equal(cold.bind, 'local');
  assert.ok(!hasFentry(cold));
  assert.ok(hasFentry(fn(r.orig, 'fetch')));
  assert.equal(nm(r.kernel).get('fetch.cold'), 't');
  assert.ok(r.report.tus[0]?.codeChanged.some((c) => c.name === 'fetch.cold'));

  assertMustReplace(r.report, {
    fetch: { sympos: 0, line: 8, reasons: ['source/patch', 'code/object diff', 'cold-part/object diff'] },
  });
  assert.ok(!r.report.mustReplace.some((e) => /\.cold/.test(e.symbol)));
  assertRefusals(r.report, []);
});

/*
 * ICF: gcc keeps score_read's body and makes score_write a second (local)
 * name for it, at the same address; both callers call score_read.
 *
 * From first principles: a livepatch redirects an ADDRESS (ftrace hook at
 * the function's entry). In the running kernel score_read and score_write
 * are one address, so a klp_func for either name redirects both names'
 * callers.
 *  - score_write changes (icf-alias): only on_write must behave differently.
 *    Replacing score_write would also send on_read to the new code: wrong.
 *    What must be replaced is on_write, whose code changed (it now calls a
 *    score_write of its own): set = {on_write}. The new score_write reaches
 *    the livepatch only as a function the new on_write calls.
 *  - score_read changes (icf-survivor): the shared body must change for
 *    on_read, and on_write must keep the old behaviour: set = {score_read,
 *    on_write} (on_write's new code calls a score_write of its own, which
 *    must be the livepatch's copy: the kernel's `score_write` symbol is the
 *    redirected address).
 */
function assertIcfFolded(r: FixtureRun): void {
  const at = (name: string) => {
    const s = r.orig.syms.find((x) => x.name === name && x.type === STT_FUNC);
    assert.ok(s, `no ${name} in the original object`);
    return `${s.shndx}:${s.value}`;
  };
  assert.equal(at('score_read'), at('score_write'), 'score_read and score_write should share one address');
  assert.equal(callsTo(r.orig, 'on_read', 'score_read'), 1);
  assert.equal(callsTo(r.orig, 'on_write', 'score_read'), 1);
  assert.equal(callsTo(r.patched, 'on_write', 'score_write'), 1);
  // ICF is not in the dump.
  assert.deepEqual(r.orig.dump.clones, []);
}

test('8a. ICF: the folded-away name changes → its callers, not the shared address', async () => {
  const r = await runFixture('icf-alias');
  assertIcfFolded(r);
  assertMustReplace(r.report, {
    on_write: { sympos: 0, line: 23, reasons: ['code/object diff'] },
  });
  assertRefusals(r.report, []);
});

test('8b. ICF: the kept body changes → it and the callers of the other name', async () => {
  const r = await runFixture('icf-survivor');
  assertIcfFolded(r);
  assertMustReplace(r.report, {
    // The second code/object diff reason says why redirecting the shared address is safe.
    score_read: { sympos: 0, line: 8, reasons: ['source/patch', 'code/object diff', 'code/object diff'] },
    on_write: { sympos: 0, line: 23, reasons: ['code/object diff'] },
  });
  assertRefusals(r.report, []);
});

test('9. a function using a static local: replaced, no refusal, the static local is no data change', async () => {
  const r = await runFixture('static-local');
  const o = nm(r.orig.obj);
  const p = nm(r.patched.obj);
  assert.equal(o.get('count.0'), 'b');
  assert.equal(o.get('calls.1'), 'b');
  // The patch renumbers tick's static local: tick must not look changed for that.
  assert.equal(p.get('calls.2'), 'b');
  assert.ok(!p.has('calls.1'));
  assert.ok(fn(r.orig, 'next_ticket').relocs.some((x) => x.target === 'count.*'));

  assertMustReplace(r.report, {
    next_ticket: { sympos: 0, line: 15, reasons: ['source/patch', 'code/object diff'] },
  });
  assertRefusals(r.report, []);
  assert.ok(!r.report.notes.some((n) => /\b(count|calls|wraps)\b/.test(n)), r.report.notes.join('\n'));
  assert.deepEqual(
    r.report.tus[0]?.codeChanged.map((c) => c.name),
    ['next_ticket'],
  );
});

test('10. __LINE__ shifted by lines added above: that function is not replaced', async () => {
  const r = await runFixture('line-shift');
  // The hazard: compiled as they are, checked_div differs (warn_at(17) vs warn_at(19)).
  const raw = join(r.tmp, 'raw');
  mkdirSync(raw);
  const code = (src: string, out: string) => {
    execFileSync(
      CC,
      [...r.flags, '-ffunction-sections', '-c', '-o', join(raw, out), join(FIXTURES, 'line-shift', src)],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    return readObjectCode(parseElf(readFileSync(join(raw, out)), out));
  };
  const before = code('orig.c', 'orig.o').functions.get('checked_div');
  const afterPatch = code('patched.c', 'patched.o').functions.get('checked_div');
  assert.ok(before && afterPatch);
  assert.notEqual(compareCode(before, afterPatch), undefined);
  // Aligned, it is the same code.
  assert.equal(r.report.tus[0]?.lineDirectives, 1);
  assert.equal(compareCode(fn(r.orig, 'checked_div'), fn(r.patched, 'checked_div')), undefined);

  assertMustReplace(r.report, {
    clamp_level: { sympos: 0, line: 7, reasons: ['source/patch', 'code/object diff'] },
  });
  assertRefusals(r.report, []);
});

test('11. a struct defined in the .c gains a member: refused at the struct', async () => {
  const r = await runFixture('struct-layout');
  // widget_flags' offset of ->flags moved; its source did not change.
  assert.notEqual(compareCode(fn(r.orig, 'widget_flags'), fn(r.patched, 'widget_flags')), undefined);
  assert.deepEqual(r.report.tus[0]?.sourceChanged, []);

  assertRefusals(r.report, [
    { reason: /^data layout change: struct widget changed: its size changes from 8 to 12 bytes$/, line: 3 },
  ]);
  assertMustReplace(r.report, {
    widget_flags: { sympos: 0, line: 9, reasons: ['code/object diff'] },
  });
});

test('11b. a struct changes its text but not its layout (a renamed bit field, int to unsigned): no refusal', async () => {
  const r = await runFixture('struct-same-layout');
  // The signedness change is in the code: counter_hits sign-extends before, zero-extends after.
  assert.notEqual(compareCode(fn(r.orig, 'counter_hits'), fn(r.patched, 'counter_hits')), undefined);
  assert.equal(compareCode(fn(r.orig, 'counter_mode'), fn(r.patched, 'counter_mode')), undefined);

  assertRefusals(r.report, []);
  const note = r.report.notes.find((n) => n.includes('struct counter changed but not its layout'));
  assert.ok(note, JSON.stringify(r.report.notes));
  assert.match(note, /^fx\.c:3: .*size 16.*renamed deprecated_flag -> __reserved.*retyped hits: int -> unsigned int/);
  // A struct defined in a typedef goes by the struct's layout too.
  assert.ok(
    r.report.notes.some((n) =>
      /^fx\.c:19: struct gauge changed but not its layout .*renamed old_flags -> flags/.test(n),
    ),
    JSON.stringify(r.report.notes),
  );
  assertMustReplace(r.report, {
    counter_hits: { sympos: 0, line: 9, reasons: ['code/object diff'] },
  });
});

test('11c. a pointer member changes the type it points to: refused, though no offset moves', async () => {
  const r = await runFixture('struct-retyped');
  assert.equal(compareCode(fn(r.orig, 'pipe_count'), fn(r.patched, 'pipe_count')), undefined);
  assertRefusals(r.report, [
    {
      reason:
        /^data layout change: struct pipe changed: member end changes type from struct sink \* to struct source \*/,
      line: 6,
    },
  ]);
  assert.equal(r.report.refusals[0]?.kind, 'type-change');
});

test('12. an __init function changed: refused', async () => {
  const r = await runFixture('init-function');
  assert.equal(fn(r.orig, 'setup_widgets').section, '.init.text');
  assert.deepEqual(r.report.tus[0]?.sourceChanged, ['setup_widgets']);

  assertRefusals(r.report, [{ reason: /^setup_widgets is __init code\b/, line: 6 }]);
  assertMustReplace(r.report, {});
});

test('13. notrace functions changed: the callers of one are replaced, the other (no caller) is refused', async () => {
  const r = await runFixture('notrace-function');
  assert.ok(!hasFentry(fn(r.orig, 'read_clock')));
  assert.ok(!hasFentry(fn(r.orig, 'raw_entry')));
  assert.ok(hasFentry(fn(r.orig, 'sample_a')) && hasFentry(fn(r.orig, 'sample_b')));
  assert.deepEqual(referrers(r.orig.code, 'read_clock'), ['sample_a', 'sample_b']);
  assert.deepEqual(referrers(r.orig.code, 'raw_entry'), []);
  assert.deepEqual(r.report.tus[0]?.sourceChanged, ['raw_entry', 'read_clock']);

  assertMustReplace(r.report, {
    sample_a: { sympos: 0, line: 14, reasons: ['caller-of-untraceable/object diff'] },
    sample_b: { sympos: 0, line: 19, reasons: ['caller-of-untraceable/object diff'] },
  });
  assert.match(reasonDetail(r.report, 'sample_a', 'caller-of-untraceable'), /calls read_clock/);
  // raw_entry is global: its callers may be in other files, so it is refused outright.
  assertRefusals(r.report, [{ reason: /^raw_entry changed but cannot be traced .* is global/, line: 24 }]);
});

test('14. a static name that another TU of the kernel also has: sympos is its position; a unique name gets 0', async () => {
  const r = await runFixture('duplicate-local');
  // Expected positions, read off the kernel's symbol table (ld -r a.o fx.o): among
  // the symbols named lookup_slot, the one in the STT_FILE fx.c group.
  const syms = parseElf(readFileSync(r.kernel), r.kernel).symbols();
  let file = '';
  const lookups: string[] = [];
  for (const s of syms) {
    if (s.type === STT_FILE) file = s.name;
    else if (s.name === 'lookup_slot') lookups.push(file);
  }
  assert.deepEqual(lookups, ['a.c', 'fx.c']);
  const expected = lookups.indexOf('fx.c') + 1;
  assert.equal(expected, 2);
  assert.equal(syms.filter((s) => s.name === 'hash_mix').length, 1);

  assertMustReplace(r.report, {
    lookup_slot: { sympos: expected, line: 6, reasons: ['source/patch', 'code/object diff'] },
    hash_mix: { sympos: 0, line: 11, reasons: ['source/patch', 'code/object diff'] },
  });
  assertRefusals(r.report, []);
});

test('15. a static function the fix lets GCC inline into all its callers: the callers are replaced, the old copy is left unused', async () => {
  const r = await runFixture('inlined-after-fix');
  // The hazard: the running kernel calls an out-of-line trim, the patched build has none.
  assert.equal(nm(r.orig.obj).get('trim'), 't');
  assert.ok(!nm(r.patched.obj).has('trim'));
  assert.match(
    r.patched.dumpText,
    /^Callgraph clone;trim;\d+;[^;]*;\d+;\d+;queue_push;\d+;[^;]*;\d+;\d+;inlining to$/m,
  );
  assert.deepEqual(referrers(r.orig.code, 'trim'), ['queue_pop', 'queue_push']);

  // Installing trim would leave nothing to verify it against; every call to the old copy is
  // from a replaced caller, so after the transition nothing reaches it.
  assertMustReplace(r.report, {
    queue_push: { sympos: 0, line: 14, reasons: ['code/object diff'] },
    queue_pop: { sympos: 0, line: 20, reasons: ['code/object diff'] },
  });
  assert.ok(
    r.report.notes.some((n) => /trim has no body of its own in the patched build/.test(n)),
    JSON.stringify(r.report.notes),
  );
  assertRefusals(r.report, []);
});

test('16. changed variable definitions: a table only functions read is carried, its readers replaced; the rest refused or folded', async () => {
  const r = await runFixture('changed-data');
  // The hazard: weight_of's code is the same in both builds (it reads weights through a relocation).
  assert.equal(compareCode(fn(r.orig, 'weight_of'), fn(r.patched, 'weight_of')), undefined);
  assert.ok(!nm(r.orig.obj).has('total_weight'), 'total_weight is inlined into report_total');
  assert.ok(!nm(r.orig.obj).has('scale'), 'scale is folded into scaled');

  assertRefusals(r.report, [
    { reason: /^data change: names changed and variable namer refers to it/, line: 34 },
    { reason: /^data change: threshold \(\.data\.threshold\) is writable data/, line: 49 },
    {
      reason:
        /^data change: levels \(\.bss\.levels\) is writable data.*\(its size changes from 8 to 16 bytes, though its text does not\)$/,
      line: 72,
    },
  ]);
  assertMustReplace(r.report, {
    weight_of: { sympos: 0, line: 15, reasons: ['data/object diff'] },
    report_total: { sympos: 0, line: 29, reasons: ['data/object diff'] },
    scaled: { sympos: 0, line: 60, reasons: ['code/object diff'] },
    banner: { sympos: 0, line: 82, reasons: ['data/object diff'] },
    level_up: { sympos: 0, line: 74, reasons: ['code/object diff'] },
  });
  assert.match(reasonDetail(r.report, 'weight_of', 'data'), /^reads weights, whose contents change/);
  assert.deepEqual(r.report.tus[0]?.changedData, [
    { name: 'weights', readers: ['report_total', 'weight_of'] },
    { name: 'banners', readers: ['banner'] },
  ]);
  assert.ok(
    r.report.notes.some((n) => /^fx\.c:58: scale changed but neither build has it as data/.test(n)),
    r.report.notes.join('\n'),
  );
  // The typedef itself is no refusal: what it changes is (levels' size).
  assert.ok(
    r.report.notes.some((n) => /^fx\.c:71: typedef level_t changed: judged by what uses it/.test(n)),
    r.report.notes.join('\n'),
  );
});
