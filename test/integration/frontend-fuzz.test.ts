/**
 * Mutation fuzzing of the C frontend over REAL kernel text: small TUs of the
 * target (lib/sort.c, lib/ctype.c) preprocessed with their exact Kbuild flags,
 * then mutated token-wise with a seeded PRNG. Every case must either return a
 * model or throw a FrontendError with a sane location: any other exception is
 * a bug, and so is a hang (the cases run in a worker thread with a watchdog).
 *
 * Reproduce a failing case with the seed it prints:
 *   KLPGEN_FUZZ_SEED=<seed> KLPGEN_FUZZ_CASES=1 node --test dist/test/integration/frontend-fuzz.test.js
 * KLPGEN_FUZZ_CASES sets the number of cases (default 1200).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { lex } from '../../src/frontend/lexer.js';
import { buildModel, FrontendError } from '../../src/frontend/model.js';
import { KEYWORDS, T } from '../../src/frontend/tokens.js';

interface Tu {
  file: string;
  text: string;
  sourceText: string;
  sourceRoot: string;
}

interface FuzzJob {
  tus: Tu[];
  baseSeed: number;
  cases: number;
}

type Outcome = 'model' | 'error' | 'crash';

interface CaseResult {
  type: 'done';
  index: number;
  seed: number;
  file: string;
  mutation: string;
  outcome: Outcome;
  /** The FrontendError message, or the crash's class, message and stack top. */
  message: string;
  /** The mutation must produce a FrontendError with exactly this message. */
  expectMessage?: string;
  ms: number;
}

type WorkerMessage = { type: 'start'; index: number; seed: number } | CaseResult;

// ---- seeded mutations ------------------------------------------------------------

/** mulberry32: small, fast, reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Tok {
  s: number;
  e: number;
  code: number;
}

const KEYWORD_LIST = [...KEYWORDS.keys()];
const SNIPPETS = [
  '(',
  ')',
  '{',
  '}',
  '[',
  ']',
  ';',
  ',',
  ':',
  '?',
  '*',
  '&',
  '&&',
  '=',
  '==',
  '->',
  '.',
  '...',
  '#',
  '##',
  '<<=',
  '~',
  '!',
  '@',
  '`',
  '"',
  "'",
  '\\',
  '$',
  '0x',
  '1e+',
  '08',
  '.5e',
  'L"x"',
  "u'c'",
  '__attribute__((',
  '__attribute__((unused))',
  '__attribute__(())',
  '({',
  '})',
  '(((',
  ')))',
  '{{',
  '}}',
  '[[',
  ']]',
  '__asm__ volatile goto(',
  'asm("" : "=r"(',
  '_Static_assert(',
  '_Generic(',
  '__builtin_offsetof(',
  '__builtin_va_arg(',
  'typedef',
  'struct',
  'union',
  'enum',
  'static',
  'extern',
  'int',
  '__int128',
  '__seg_gs',
  'typeof(',
  '__auto_type',
  '__label__',
  '__extension__',
  'case 1 ...',
  'default:',
  'goto *',
  '&&lbl',
  'sizeof',
  '(int)',
  '(struct x *)',
  '{ .a = ',
  '[0 ... 3] =',
  'x:',
  'return',
  'else',
  'do',
  'while (',
  'for (int i = 0;',
  '/*',
  '*/',
  '//',
  '\n#',
  '\n# 7 "lib/other.h" 1\n',
  '\n# 12 "lib/sort.c" 2\n',
  '\n# garbage\n',
  '\u00e9',
  '\u0000',
];
const OPENERS = ['(', '{', '[', '({', '*', '-', '!', '&', '(int)', 'sizeof ', '__extension__ ', 'if (1) '];
/** Each opens one more level where an expression may start. */
const EXPR_OPENERS = [
  '(',
  '({',
  '*',
  '- ',
  '!',
  '~',
  '& ',
  '++',
  '(int)',
  'sizeof ',
  '__extension__ ',
  '(struct x *)',
  '1 ? ',
  'x = ',
];
/** Each opens one more level where a statement may start. */
const STMT_OPENERS = ['{', 'if (1) ', 'while (1) ', 'for (;;) ', 'switch (1) ', 'x: ', 'case 1: ', '({ '];
const DEEP = 100_000;

interface Mutation {
  text: string;
  desc: string;
  expectMessage?: string;
}

function tokensOf(text: string): Tok[] {
  const ts = lex(text);
  const out: Tok[] = [];
  for (let i = 0; i < ts.count - 1; i++)
    out.push({ s: ts.start[i] as number, e: ts.end[i] as number, code: ts.code[i] as number });
  return out;
}

function mutate(text: string, toks: Tok[], rand: () => number, depth = 0): Mutation {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <X>(xs: readonly X[]): X => xs[int(xs.length)] as X;
  const tokAt = () => toks[int(toks.length)] as Tok;
  /** 1..8 tokens mostly, sometimes up to 300. */
  const len = () => (rand() < 0.8 ? 1 + int(8) : 1 + int(300));
  const kind = int(100);
  if (kind < 14) {
    const i = int(toks.length);
    const j = Math.min(toks.length - 1, i + len() - 1);
    const a = (toks[i] as Tok).s;
    const b = (toks[j] as Tok).e;
    return { text: text.slice(0, a) + text.slice(b), desc: `delete tokens ${i}..${j}` };
  }
  if (kind < 26) {
    const i = int(toks.length);
    const j = Math.min(toks.length - 1, i + len() - 1);
    const a = (toks[i] as Tok).s;
    const b = (toks[j] as Tok).e;
    return { text: text.slice(0, b) + ' ' + text.slice(a, b) + text.slice(b), desc: `duplicate tokens ${i}..${j}` };
  }
  if (kind < 38) {
    let x = tokAt();
    let y = tokAt();
    if (x.s > y.s) [x, y] = [y, x];
    if (x === y) return { text, desc: 'swap a token with itself' };
    const tx = text.slice(x.s, x.e);
    const ty = text.slice(y.s, y.e);
    return {
      text: text.slice(0, x.s) + ty + text.slice(x.e, y.s) + tx + text.slice(y.e),
      desc: `swap '${tx}' and '${ty}' at ${x.s}, ${y.s}`,
    };
  }
  if (kind < 56) {
    const t = tokAt();
    const at = rand() < 0.5 ? t.s : t.e;
    const snippet = rand() < 0.7 ? pick(SNIPPETS) : pick(KEYWORD_LIST);
    return {
      text: `${text.slice(0, at)} ${snippet} ${text.slice(at)}`,
      desc: `insert ${JSON.stringify(snippet)} at ${at}`,
    };
  }
  if (kind < 62) {
    const at = int(text.length);
    return { text: text.slice(0, at), desc: `truncate at ${at}` };
  }
  if (kind < 74) {
    const idents = toks.filter((t) => t.code === T.IDENT);
    const t = pick(idents);
    const k = pick(KEYWORD_LIST);
    return {
      text: text.slice(0, t.s) + k + text.slice(t.e),
      desc: `replace '${text.slice(t.s, t.e)}' at ${t.s} by keyword ${k}`,
    };
  }
  if (kind < 82) {
    // A token replaced by another token of the same file: plausible but wrong code.
    const t = tokAt();
    const u = tokAt();
    const spelling = text.slice(u.s, u.e);
    return {
      text: text.slice(0, t.s) + spelling + text.slice(t.e),
      desc: `replace '${text.slice(t.s, t.e)}' at ${t.s} by '${spelling}'`,
    };
  }
  if (kind < 86) {
    // Deep nesting at a random place: some error, never a crash.
    const t = tokAt();
    const opener = pick(OPENERS);
    return {
      text: text.slice(0, t.s) + opener.repeat(DEEP) + text.slice(t.s),
      desc: `insert ${DEEP} x '${opener}' at ${t.s}`,
    };
  }
  if (kind < 90) {
    // Deep nesting in an expression after `return`, or of statements after a
    // function body's '{': exactly 'nesting too deep'.
    const RETURN = KEYWORDS.get('return');
    const inExpr = rand() < 0.5;
    const sites = inExpr
      ? toks.filter((t) => t.code === RETURN)
      : toks.filter(
          (t, i) =>
            text.slice(t.s, t.e) === '{' && i > 0 && text.slice((toks[i - 1] as Tok).s, (toks[i - 1] as Tok).e) === ')',
        );
    if (sites.length > 0) {
      const t = pick(sites);
      const opener = pick(inExpr ? EXPR_OPENERS : STMT_OPENERS);
      return {
        text: `${text.slice(0, t.e)} ${opener.repeat(DEEP)}${text.slice(t.e)}`,
        desc: `insert ${DEEP} x '${opener}' after '${text.slice(t.s, t.e)}' at ${t.e}`,
        expectMessage: 'nesting too deep',
      };
    }
  }
  // Several mutations in a row.
  let cur: Mutation = { text, desc: '' };
  const n = 2 + int(3);
  const descs: string[] = [];
  for (let k = 0; k < n && depth < 1; k++) {
    const curToks = tokensOrNull(cur.text) ?? toks;
    const next = mutate(cur.text, curToks, rand, depth + 1);
    if (next.text.length > 4 * text.length + 2_000_000) break;
    cur = next;
    descs.push(next.desc);
  }
  return { text: cur.text, desc: `[${descs.join('; ')}]` };
}

/** Tokens of a mutated text, or null when the mutation broke the lexer (the caller keeps the old ones). */
function tokensOrNull(text: string): Tok[] | null {
  try {
    const t = tokensOf(text);
    return t.length > 0 ? t : null;
  } catch {
    return null;
  }
}

function runCase(tu: Tu, toks: Tok[], index: number, seed: number): CaseResult {
  const rand = prng(seed);
  const m = mutate(tu.text, toks, rand);
  const t0 = performance.now();
  let outcome: Outcome;
  let message = '';
  try {
    const model = buildModel({
      preprocessed: m.text,
      file: tu.file,
      sourceText: tu.sourceText,
      sourceRoot: tu.sourceRoot,
    });
    outcome = 'model';
    if (!Array.isArray(model.entities) || !Array.isArray(model.unresolved)) {
      outcome = 'crash';
      message = 'buildModel returned a malformed model';
    }
  } catch (e) {
    if (e instanceof FrontendError) {
      const loc = e.location;
      const sane =
        typeof loc.file === 'string' &&
        loc.file.length > 0 &&
        Number.isInteger(loc.line) &&
        loc.line >= 0 &&
        Number.isInteger(loc.col) &&
        loc.col >= 1;
      outcome = sane ? 'error' : 'crash';
      message = sane ? e.message : `FrontendError with a bad location ${JSON.stringify(loc)}: ${e.message}`;
    } else {
      outcome = 'crash';
      const err = e as Error;
      message = `${err?.constructor?.name ?? typeof e}: ${err?.message ?? String(e)}\n${String(err?.stack ?? '')
        .split('\n')
        .slice(1, 6)
        .join('\n')}`;
    }
  }
  const result: CaseResult = {
    type: 'done',
    index,
    seed,
    file: tu.file,
    mutation: m.desc.slice(0, 400),
    outcome,
    message,
    ms: performance.now() - t0,
  };
  if (m.expectMessage !== undefined) result.expectMessage = m.expectMessage;
  return result;
}

function workerMain(job: FuzzJob): void {
  const toks = job.tus.map((tu) => tokensOf(tu.text));
  for (let i = 0; i < job.cases; i++) {
    const seed = (job.baseSeed + i) >>> 0;
    const which = seed % job.tus.length;
    parentPort!.postMessage({ type: 'start', index: i, seed } satisfies WorkerMessage);
    parentPort!.postMessage(runCase(job.tus[which] as Tu, toks[which] as Tok[], i, seed) satisfies WorkerMessage);
  }
}

// ---- the test ---------------------------------------------------------------------------

async function realTus(): Promise<Tu[]> {
  const { ensureTarget, tempDir } = await import('../helpers.js');
  const { loadTarget } = await import('../../src/target/manifest.js');
  const { preprocess } = await import('../../src/frontend/preprocess.js');
  const target = await loadTarget(ensureTarget().abi);
  const dir = tempDir('fuzz');
  const tus: Tu[] = [];
  for (const file of ['lib/sort.c', 'lib/ctype.c']) {
    const pp = await preprocess(target, file, dir);
    tus.push({
      file,
      text: pp.text,
      sourceText: await readFile(pp.command.source, 'utf8'),
      sourceRoot: target.paths.source,
    });
  }
  return tus;
}

/** Run the cases in a worker; a case that runs longer than `stallMs` is reported as a hang. */
function runInWorker(
  job: FuzzJob,
  stallMs: number,
): Promise<{ results: CaseResult[]; hang?: { index: number; seed: number } }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: job,
      resourceLimits: { maxOldGenerationSizeMb: 2048 },
    });
    const results: CaseResult[] = [];
    let current: { index: number; seed: number } | undefined;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        void worker.terminate();
        resolve({ results, ...(current ? { hang: current } : {}) });
      }, stallMs);
    };
    arm();
    worker.on('message', (msg: WorkerMessage) => {
      arm();
      if (msg.type === 'start') current = { index: msg.index, seed: msg.seed };
      else {
        results.push(msg);
        current = undefined;
      }
    });
    worker.on('error', (e) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      reject(
        new Error(`fuzz worker died${current ? ` in case ${current.index} (seed ${current.seed})` : ''}: ${e.message}`),
      );
    });
    worker.on('exit', () => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      resolve({ results });
    });
  });
}

if (!isMainThread && parentPort) {
  workerMain(workerData as FuzzJob);
} else {
  const { test } = await import('node:test');

  const CASES = Number(process.env.KLPGEN_FUZZ_CASES ?? 1200);
  const BASE_SEED = Number(process.env.KLPGEN_FUZZ_SEED ?? 0x6b6c7067);

  test(`frontend fuzz: ${CASES} mutations of real kernel TUs give a model or a FrontendError`, async () => {
    const tus = await realTus();
    // The unmutated text parses, quickly, with nothing unresolved.
    for (const tu of tus) {
      const t0 = performance.now();
      const m = buildModel({
        preprocessed: tu.text,
        file: tu.file,
        sourceText: tu.sourceText,
        sourceRoot: tu.sourceRoot,
      });
      const ms = performance.now() - t0;
      assert.ok(
        m.entities.some((e) => e.span.file === tu.file && e.definition),
        `${tu.file}: has definitions`,
      );
      assert.deepEqual(m.unresolved, [], `${tu.file}: nothing unresolved`);
      process.stderr.write(
        `frontend fuzz: ${tu.file}: ${tu.text.length} bytes, ${m.stats.tokens} tokens, ${m.entities.length} entities, parsed in ${ms.toFixed(1)} ms\n`,
      );
    }

    const t0 = performance.now();
    const { results, hang } = await runInWorker({ tus, baseSeed: BASE_SEED, cases: CASES }, 20_000);
    const seconds = (performance.now() - t0) / 1000;
    const reproduce = (seed: number) => `KLPGEN_FUZZ_SEED=${seed} KLPGEN_FUZZ_CASES=1`;
    assert.equal(
      hang,
      undefined,
      hang ? `case ${hang.index} hangs (seed ${hang.seed}; reproduce with ${reproduce(hang.seed)})` : '',
    );
    assert.equal(results.length, CASES, 'every case ran');

    const failures: string[] = [];
    for (const r of results) {
      const where = `case ${r.index} (${r.file}, seed ${r.seed}; reproduce with ${reproduce(r.seed)}): ${r.mutation}`;
      if (r.outcome === 'crash') failures.push(`${where}\n  ${r.message}`);
      else if (r.expectMessage !== undefined && (r.outcome !== 'error' || r.message !== r.expectMessage)) {
        failures.push(
          `${where}\n  expected FrontendError '${r.expectMessage}', got ${r.outcome === 'error' ? `'${r.message}'` : 'a model'}`,
        );
      }
    }
    const count = (o: Outcome) => results.filter((r) => r.outcome === o).length;
    const slowest = results.reduce((a, b) => (b.ms > a.ms ? b : a));
    const deep = results.filter((r) => r.expectMessage !== undefined).length;
    process.stderr.write(
      `frontend fuzz: ${results.length} cases in ${seconds.toFixed(1)} s (base seed ${BASE_SEED}): ${count('model')} models, ` +
        `${count('error')} FrontendErrors, ${count('crash')} crashes, ${deep} deep-nesting cases; ` +
        `slowest ${slowest.ms.toFixed(0)} ms (seed ${slowest.seed}: ${slowest.mutation.slice(0, 80)})\n`,
    );
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} failing cases`);
    if (CASES >= 100) {
      assert.ok(count('error') >= CASES / 10, 'mutations produce errors');
      assert.ok(count('model') >= 1, 'some mutations still parse');
      assert.ok(deep >= 1, 'deep-nesting cases ran');
    }
  });
}
