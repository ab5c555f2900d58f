/**
 * The C frontend (src/frontend) on small GNU C fixtures: one or more tests per
 * construct the kernel uses, each asserting the entities, their linkage and
 * their references precisely. Fixtures are gcc -E style text: a line marker
 * first, so spans map to t.c.
 *
 * Tests marked `todo` assert the correct behaviour of a known frontend bug.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel, FrontendError, type TuEntity, type TuModel } from '../../src/frontend/model.js';

const MARKER = '# 1 "t.c"\n';
/** What gcc -E really emits before the .c's own first line: the t.c marker is not the text's first line. */
const GCC_PROLOGUE = '# 0 "t.c"\n# 0 "<built-in>"\n# 0 "<command-line>"\n# 1 "t.c"\n';

/** Model a fixture of valid C: it must leave nothing unresolved. */
function model(src: string, sourceText?: string): TuModel {
  const m = buildModel({
    preprocessed: MARKER + src,
    file: 't.c',
    ...(sourceText !== undefined ? { sourceText } : {}),
  });
  assert.deepEqual(m.unresolved, [], 'valid C leaves no identifier unresolved');
  return m;
}

interface Brief {
  kind: string;
  name: string;
  storage: string;
  linkage: string;
  definition: boolean;
  inline: boolean;
  refs: string[];
}

function brief(e: TuEntity): Brief {
  return {
    kind: e.kind,
    name: e.name,
    storage: e.storage,
    linkage: e.linkage,
    definition: e.definition,
    inline: e.inline,
    refs: e.refs,
  };
}

/** A Brief with defaults: none storage and linkage, not a definition, not inline, no refs. */
function B(kind: string, name: string, o: Partial<Brief> = {}): Brief {
  return { kind, name, storage: 'none', linkage: 'none', definition: false, inline: false, refs: [], ...o };
}

/** The only entity of that kind and name. */
function one(m: TuModel, kind: string, name: string): TuEntity {
  const found = m.entities.filter((e) => e.kind === kind && e.name === name);
  assert.equal(
    found.length,
    1,
    `exactly one ${kind} ${name} (entities: ${m.entities.map((e) => `${e.kind}:${e.name}`).join(' ')})`,
  );
  return found[0] as TuEntity;
}

function refsOf(m: TuModel, kind: string, name: string): string[] {
  return one(m, kind, name).refs;
}

/** The FrontendError buildModel throws on `preprocessed`. */
function frontendError(preprocessed: string): FrontendError {
  let caught: unknown;
  try {
    buildModel({ preprocessed, file: 't.c' });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, 'expected an error');
  assert.ok(caught instanceof FrontendError, `expected a FrontendError, got ${String(caught)}`);
  return caught;
}

const noFlags = {
  init: false,
  exit: false,
  notrace: false,
  weak: false,
  used: false,
  alwaysInline: false,
  noinline: false,
  cold: false,
};

// ---- entities, linkage, definitions -----------------------------------------

test('basic entities: kinds, storage, linkage, definitions', () => {
  const m = model(
    [
      'typedef unsigned int u32;',
      'struct s { u32 a; };',
      'int counter;',
      'static int hidden = 1;',
      'extern int elsewhere;',
      'int proto(int);',
      'static u32 helper(struct s *p) { return p->a + hidden; }',
      'int api(void) { return helper(0) + counter + elsewhere + proto(1); }',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'u32', { storage: 'typedef', definition: true }),
    B('struct', 's', { definition: true, refs: ['typedef:u32'] }),
    B('variable', 'counter', { linkage: 'external', definition: true }),
    B('variable', 'hidden', { storage: 'static', linkage: 'internal', definition: true }),
    B('variable', 'elsewhere', { storage: 'extern', linkage: 'external' }),
    B('function', 'proto', { linkage: 'external' }),
    B('function', 'helper', {
      storage: 'static',
      linkage: 'internal',
      definition: true,
      refs: ['struct:s', 'typedef:u32', 'variable:hidden'],
    }),
    B('function', 'api', {
      linkage: 'external',
      definition: true,
      refs: ['function:helper', 'function:proto', 'variable:counter', 'variable:elsewhere'],
    }),
  ]);
  assert.deepEqual(one(m, 'function', 'api').span, { file: 't.c', line: 8, endLine: 8 });
  assert.deepEqual(one(m, 'function', 'api').flags, noFlags);
});

test('several declarators in one declaration', () => {
  const m = model('int ma, *mb, mc[3], md(void);\nstatic int sx, sy = 1;');
  assert.deepEqual(m.entities.map(brief), [
    B('variable', 'ma', { linkage: 'external', definition: true }),
    B('variable', 'mb', { linkage: 'external', definition: true }),
    B('variable', 'mc', { linkage: 'external', definition: true }),
    B('function', 'md', { linkage: 'external' }),
    B('variable', 'sx', { storage: 'static', linkage: 'internal', definition: true }),
    B('variable', 'sy', { storage: 'static', linkage: 'internal', definition: true }),
  ]);
});

test('static prototype then a definition without static: internal linkage', () => {
  const m = model('static int sf(int);\nint sf(int x) { return x; }\nint user(void) { return sf(2); }');
  assert.deepEqual(m.entities.map(brief), [
    B('function', 'sf', { storage: 'static', linkage: 'internal' }),
    B('function', 'sf', { linkage: 'internal', definition: true }),
    B('function', 'user', { linkage: 'external', definition: true, refs: ['function:sf'] }),
  ]);
});

test('static then extern declaration keeps internal linkage', () => {
  const m = model(
    'static int sfn(void);\nextern int sfn(void);\nint sfn(void) { return 0; }\nstatic int sv;\nextern int sv;',
  );
  assert.deepEqual(
    m.entities.map((e) => `${e.kind} ${e.name} ${e.storage} ${e.linkage} ${e.definition}`),
    [
      'function sfn static internal false',
      'function sfn extern internal false',
      'function sfn none internal true',
      'variable sv static internal true',
      'variable sv extern internal false',
    ],
  );
});

test('extern declaration then definition: external', () => {
  const m = model('extern int ev;\nint ev = 3;\nextern int ef(void);\nint ef(void) { return ev; }');
  assert.deepEqual(m.entities.map(brief), [
    B('variable', 'ev', { storage: 'extern', linkage: 'external' }),
    B('variable', 'ev', { linkage: 'external', definition: true }),
    B('function', 'ef', { storage: 'extern', linkage: 'external' }),
    B('function', 'ef', { linkage: 'external', definition: true, refs: ['variable:ev'] }),
  ]);
});

test('static inline functions in the TU', () => {
  const m = model(
    'static inline int si(void) { return 1; }\nstatic __inline__ int si2(void) { return si(); }\ninline int ei(void) { return 0; }',
  );
  assert.deepEqual(m.entities.map(brief), [
    B('function', 'si', { storage: 'static', linkage: 'internal', definition: true, inline: true }),
    B('function', 'si2', {
      storage: 'static',
      linkage: 'internal',
      definition: true,
      inline: true,
      refs: ['function:si'],
    }),
    B('function', 'ei', { linkage: 'external', definition: true, inline: true }),
  ]);
});

// ---- declarators --------------------------------------------------------------

test('void (*signal(int, void (*)(int)))(int) declares a function named signal', () => {
  const m = model('void (*signal(int sig, void (*handler)(int)))(int);\nvoid (*signal2(int, void (*)(int)))(int);');
  assert.deepEqual(m.entities.map(brief), [
    B('function', 'signal', { linkage: 'external' }),
    B('function', 'signal2', { linkage: 'external' }),
  ]);
});

test('int (*fp)(int) is a variable; arrays of and functions returning function pointers', () => {
  const m = model(
    [
      'int (*fp)(int);',
      'int (*fparr[4])(int);',
      'int *(*pfp)(void);',
      'int (*getfp(int T))(int) { return fp; }',
      'int (*fa(void))[4];',
      'typedef void (*handler_t)(int);',
      'handler_t handlers[4];',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('variable', 'fp', { linkage: 'external', definition: true }),
    B('variable', 'fparr', { linkage: 'external', definition: true }),
    B('variable', 'pfp', { linkage: 'external', definition: true }),
    B('function', 'getfp', { linkage: 'external', definition: true, refs: ['variable:fp'] }),
    B('function', 'fa', { linkage: 'external' }),
    B('typedef', 'handler_t', { storage: 'typedef', definition: true }),
    B('variable', 'handlers', { linkage: 'external', definition: true, refs: ['typedef:handler_t'] }),
  ]);
});

test('parenthesized declarator names', () => {
  const m = model('int (pn);\nint (pf)(void);\nint (pf)(void) { return pn; }');
  assert.deepEqual(m.entities.map(brief), [
    B('variable', 'pn', { linkage: 'external', definition: true }),
    B('function', 'pf', { linkage: 'external' }),
    B('function', 'pf', { linkage: 'external', definition: true, refs: ['variable:pn'] }),
  ]);
});

test('a typedef of a function type: fn_t foo; declares a function', () => {
  const m = model(
    [
      'typedef int fn_t(int);',
      'fn_t foo;',
      'fn_t *foop;',
      'typedef fn_t *fnp_t;',
      'fnp_t bar;',
      'static fn_t sfoo, *sbar;',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'fn_t', { storage: 'typedef', definition: true }),
    B('function', 'foo', { linkage: 'external', refs: ['typedef:fn_t'] }),
    B('variable', 'foop', { linkage: 'external', definition: true, refs: ['typedef:fn_t'] }),
    B('typedef', 'fnp_t', { storage: 'typedef', definition: true, refs: ['typedef:fn_t'] }),
    B('variable', 'bar', { linkage: 'external', definition: true, refs: ['typedef:fnp_t'] }),
    B('function', 'sfoo', { storage: 'static', linkage: 'internal', refs: ['typedef:fn_t'] }),
    B('variable', 'sbar', { storage: 'static', linkage: 'internal', definition: true, refs: ['typedef:fn_t'] }),
  ]);
});

test('extern typeof(fn) fn; (EXPORT_SYMBOL) redeclares the function', () => {
  const m = model('int foo(int a) { return a; }\nextern typeof(foo) foo;');
  assert.deepEqual(m.entities.map(brief), [
    B('function', 'foo', { linkage: 'external', definition: true }),
    B('function', 'foo', { storage: 'extern', linkage: 'external' }),
  ]);
});

test('typeof of a function type declares a function', () => {
  const m = model('typeof(int (int)) tf;');
  assert.deepEqual(m.entities.map(brief), [B('function', 'tf', { linkage: 'external' })]);
});

test('asm labels on declarations', () => {
  const m = model(
    'int alv __asm__("other_name");\nextern int alf(void) asm("other_fn");\nint user(void) { return alv + alf(); }',
  );
  assert.deepEqual(m.entities.map(brief), [
    B('variable', 'alv', { linkage: 'external', definition: true }),
    B('function', 'alf', { storage: 'extern', linkage: 'external' }),
    B('function', 'user', { linkage: 'external', definition: true, refs: ['function:alf', 'variable:alv'] }),
  ]);
});

// ---- attributes -----------------------------------------------------------------

test('attributes before and after declarators and in declaration specifiers', () => {
  const m = model(
    [
      '__attribute__((unused)) static int v1;',
      'static int __attribute__((unused)) v2;',
      'static int v3 __attribute__((unused));',
      'static int *__attribute__((unused)) v4;',
      'int f1(void) __attribute__((cold));',
      '__attribute__((noinline)) int f2(int x) { return x; }',
      'int x1 __attribute__((unused)) = 1;',
      'int __attribute__((aa)) x2, __attribute__((bb)) x3;',
      'int x5 __attribute__((unused, section(".data..x")));',
      'int x6 __attribute__(());',
      'int x7 __attribute__((unused)) __attribute__((weak));',
      'int __attribute__((__const__)) cf(void);',
      'void pa(int __attribute__((unused)) a, char *__attribute__((unused)) b);',
      'int ca(void) { return (int __attribute__((unused))) 1; }',
    ].join('\n'),
  );
  const attrs = (name: string) => m.entities.find((e) => e.name === name)?.attributes;
  assert.deepEqual(attrs('v1'), [{ name: 'unused', args: '' }]);
  assert.deepEqual(attrs('v2'), [{ name: 'unused', args: '' }]);
  assert.deepEqual(attrs('v3'), [{ name: 'unused', args: '' }]);
  assert.deepEqual(attrs('v4'), [{ name: 'unused', args: '' }]);
  assert.deepEqual(attrs('f1'), [{ name: 'cold', args: '' }]);
  assert.deepEqual(attrs('f2'), [{ name: 'noinline', args: '' }]);
  assert.deepEqual(attrs('x1'), [{ name: 'unused', args: '' }]);
  assert.deepEqual(attrs('x2'), [{ name: 'aa', args: '' }]);
  assert.deepEqual(attrs('x3'), [
    { name: 'aa', args: '' },
    { name: 'bb', args: '' },
  ]);
  assert.deepEqual(attrs('x5'), [
    { name: 'unused', args: '' },
    { name: 'section', args: '".data..x"' },
  ]);
  assert.deepEqual(attrs('x6'), []);
  assert.deepEqual(attrs('x7'), [
    { name: 'unused', args: '' },
    { name: 'weak', args: '' },
  ]);
  assert.deepEqual(attrs('cf'), [{ name: 'const', args: '' }]);
  assert.deepEqual(attrs('pa'), []);
  assert.deepEqual(attrs('ca'), []);
  assert.equal(one(m, 'function', 'f1').flags.cold, true);
  assert.equal(one(m, 'function', 'f2').flags.noinline, true);
  assert.equal(one(m, 'variable', 'x7').flags.weak, true);
  assert.deepEqual(
    m.entities.map((e) => `${e.kind}:${e.name}`),
    [
      'variable:v1',
      'variable:v2',
      'variable:v3',
      'variable:v4',
      'function:f1',
      'function:f2',
      'variable:x1',
      'variable:x2',
      'variable:x3',
      'variable:x5',
      'variable:x6',
      'variable:x7',
      'function:cf',
      'function:pa',
      'function:ca',
    ],
  );
  for (const e of m.entities) assert.deepEqual(e.refs, [], `${e.name} has no refs`);
});

test('attributes on struct, union and enum definitions and enumerators', () => {
  const m = model(
    [
      'struct __attribute__((packed)) sp { char c; int i; };',
      'struct sq { char c; int i __attribute__((aligned(4))); } __attribute__((aligned(8)));',
      'union __attribute__((aa)) un { int a; } __attribute__((bb));',
      'enum __attribute__((packed)) e1 { E1A, E1B __attribute__((deprecated)) = 2 };',
      'struct sr { int a; } __attribute__((packed)) svar;',
    ].join('\n'),
  );
  assert.deepEqual(one(m, 'struct', 'sp').attributes, [{ name: 'packed', args: '' }]);
  assert.deepEqual(one(m, 'struct', 'sq').attributes, [{ name: 'aligned', args: '8' }]);
  assert.deepEqual(one(m, 'union', 'un').attributes, [
    { name: 'aa', args: '' },
    { name: 'bb', args: '' },
  ]);
  assert.deepEqual(one(m, 'enum', 'e1').attributes, [{ name: 'packed', args: '' }]);
  assert.deepEqual(one(m, 'enumerator', 'E1B').attributes, [{ name: 'deprecated', args: '' }]);
  assert.deepEqual(one(m, 'enumerator', 'E1A').attributes, []);
  assert.deepEqual(one(m, 'struct', 'sr').attributes, [{ name: 'packed', args: '' }]);
  assert.deepEqual(
    brief(one(m, 'variable', 'svar')),
    B('variable', 'svar', { linkage: 'external', definition: true, refs: ['struct:sr'] }),
  );
});

test('attribute arguments: sizeof(type) and enumerators are references, plain names are not', () => {
  const m = model(
    [
      'typedef unsigned int u32;',
      'struct s { int a; };',
      'enum { AL = 8 };',
      'int printf_like;',
      'u32 v5 __attribute__((aligned(sizeof(struct s))));',
      'int v6 __attribute__((aligned(AL)));',
      'void lg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));',
      'typedef int v4si __attribute__((vector_size(4 * sizeof(u32))));',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'variable', 'v5'), ['struct:s', 'typedef:u32']);
  assert.deepEqual(refsOf(m, 'variable', 'v6'), ['enumerator:AL']);
  assert.deepEqual(refsOf(m, 'function', 'lg'), []);
  assert.deepEqual(refsOf(m, 'typedef', 'v4si'), ['typedef:u32']);
});

test('attribute on a label and attribute declarations (fallthrough)', () => {
  const m = model(
    [
      'int out;',
      'int f4(int x) {',
      '  switch (x) {',
      '  case 1: x++;',
      '    __attribute__((fallthrough));',
      '  case 2: goto out;',
      '  default: __attribute__((__fallthrough__));',
      '  }',
      'out: __attribute__((unused));',
      '  return x;',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('variable', 'out', { linkage: 'external', definition: true }),
    B('function', 'f4', { linkage: 'external', definition: true }),
  ]);
  assert.deepEqual(one(m, 'function', 'f4').span, { file: 't.c', line: 2, endLine: 11 });
});

test('livepatch flags from attributes: section, init, exit, notrace, weak, alias, used, always_inline', () => {
  const m = model(
    [
      'static int __attribute__((__section__(".init.text"))) __attribute__((__cold__)) init_fn(void) { return 0; }',
      'static void __attribute__((__section__(".exit.text"))) exit_fn(void) { }',
      'void __attribute__((no_instrument_function)) nt(void) { }',
      'void __attribute__((weak)) wk(void) { }',
      'void real(void) { }',
      'void al(void) __attribute__((alias("real")));',
      'void al2(void) __attribute__((__alias__("real")));',
      'static int __attribute__((__used__)) uv;',
      'static inline __attribute__((__always_inline__)) int ai(void) { return 0; }',
      '__attribute__((patchable_function_entry(0, 0))) void pfe(void) { }',
      'int x8 __attribute__((section(".init" ".data")));',
      'int x9 __attribute__((__section__(".exit.data")));',
    ].join('\n'),
  );
  const flags = (name: string) => m.entities.find((e) => e.name === name)?.flags;
  assert.deepEqual(flags('init_fn'), { ...noFlags, init: true, cold: true, section: '.init.text' });
  assert.deepEqual(flags('exit_fn'), { ...noFlags, exit: true, section: '.exit.text' });
  assert.deepEqual(flags('nt'), { ...noFlags, notrace: true });
  assert.deepEqual(flags('wk'), { ...noFlags, weak: true });
  assert.deepEqual(flags('real'), noFlags);
  assert.deepEqual(flags('al'), { ...noFlags, alias: 'real' });
  assert.deepEqual(flags('al2'), { ...noFlags, alias: 'real' });
  assert.deepEqual(flags('uv'), { ...noFlags, used: true });
  assert.deepEqual(flags('ai'), { ...noFlags, alwaysInline: true });
  assert.deepEqual(flags('pfe'), { ...noFlags, notrace: true });
  assert.deepEqual(flags('x8'), { ...noFlags, init: true, section: '.init.data' });
  assert.deepEqual(flags('x9'), { ...noFlags, exit: true, section: '.exit.data' });
  assert.deepEqual(one(m, 'function', 'init_fn').attributes, [
    { name: 'section', args: '".init.text"' },
    { name: 'cold', args: '' },
  ]);
  assert.deepEqual(one(m, 'function', 'al').attributes, [{ name: 'alias', args: '"real"' }]);
  // alias("target") makes gcc emit the symbol: the declaration is a definition.
  assert.deepEqual(brief(one(m, 'function', 'al')), B('function', 'al', { linkage: 'external', definition: true }));
});

test('__attribute__((cleanup(fn))): fn is a reference', () => {
  const m = model(
    [
      'static void free_it(int **p) { }',
      'int f1(void) {',
      '  int *p __attribute__((cleanup(free_it))) = 0;',
      '  int *q __attribute__((__cleanup__(free_it)));',
      '  return 0;',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f1'), ['function:free_it']);
});

// ---- GNU expressions --------------------------------------------------------------

test('statement expressions ({ ... }) with locals and references', () => {
  const m = model(
    [
      'int g;',
      'int h(int);',
      'int f1(void) {',
      '  int r = ({ int t = g; t + h(1); });',
      '  return r + ({ int g = 2; g; });',
      '}',
      'int v = sizeof(({ 1; }));',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f1'), ['function:h', 'variable:g']);
  assert.deepEqual(
    brief(one(m, 'function', 'f1')),
    B('function', 'f1', { linkage: 'external', definition: true, refs: ['function:h', 'variable:g'] }),
  );
});

test('typeof, __typeof__, __typeof and __auto_type', () => {
  const m = model(
    [
      'typedef int T;',
      'int g;',
      'int h(int);',
      'typeof(g) v1;',
      '__typeof__(T) v2;',
      '__typeof(h(0)) v3;',
      'int f2(int *p) {',
      '  __auto_type a = g;',
      '  typeof(a) b = a;',
      '  __typeof__(*p) c = *p;',
      '  for (__auto_type i = g; i < 3; i++) ;',
      '  return b + c;',
      '}',
      'typeof(struct q { int z; }) v4;',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'T', { storage: 'typedef', definition: true }),
    B('variable', 'g', { linkage: 'external', definition: true }),
    B('function', 'h', { linkage: 'external' }),
    B('variable', 'v1', { linkage: 'external', definition: true, refs: ['variable:g'] }),
    B('variable', 'v2', { linkage: 'external', definition: true, refs: ['typedef:T'] }),
    B('variable', 'v3', { linkage: 'external', definition: true, refs: ['function:h'] }),
    B('function', 'f2', { linkage: 'external', definition: true, refs: ['variable:g'] }),
    B('struct', 'q', { definition: true }),
    B('variable', 'v4', { linkage: 'external', definition: true, refs: ['struct:q'] }),
  ]);
});

test('asm with outputs, inputs and clobbers: operand names are not references, expressions are', () => {
  const m = model(
    [
      'typedef int T;',
      'int mem, g, res;',
      'static int f3(int x) {',
      '  int out;',
      '  asm volatile("mov %1, %0" : "=r"(out), [res] "=m" (mem) : "r"(x), [g] "i"(sizeof(T)) : "memory", "cc");',
      '  __asm__ __volatile__("" : [x] "+r"(x));',
      '  asm inline volatile ("nop");',
      '  asm("" ::: "memory");',
      '  return out;',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(
    brief(one(m, 'function', 'f3')),
    B('function', 'f3', {
      storage: 'static',
      linkage: 'internal',
      definition: true,
      refs: ['typedef:T', 'variable:mem'],
    }),
  );
});

test('asm goto with labels: labels are not references', () => {
  const m = model(
    [
      'int lbl, lbl2, g;',
      'static int f4(int x) {',
      '  asm volatile goto("jmp %l[lbl]" : : "r"(g), [x] "r"(x) : "memory" : lbl, lbl2);',
      '  asm goto("" :::: lbl);',
      '  return 0;',
      'lbl:',
      '  return 1;',
      'lbl2:',
      '  return 2;',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f4'), ['variable:g']);
});

test('file-scope basic asm makes no entity', () => {
  const m = model('asm(".globl x\\n\\t.previous");\nint after;');
  assert.deepEqual(m.entities.map(brief), [B('variable', 'after', { linkage: 'external', definition: true })]);
});

test('designated initializers: .member, [index], range, nested, GNU member:', () => {
  const m = model(
    [
      'struct in { int b; int c; };',
      'struct out { struct in a; int arr[8]; };',
      'enum { N = 4 };',
      'int idx, b, c, a, arr;',
      'int tbl[10] = { [0 ... 3] = 1, [N] = 2, [5 ... N + 2] = 3, };',
      'struct out o1 = { .a.b = 2, .arr[1] = 3, .arr = { [2] = N } };',
      'struct out o2 = { a: { b: 1 } };',
      'int f(void) {',
      '  int loc[4] = { [idx] = 1 };',
      '  struct in s = { .b = b, .c = c };',
      '  return loc[0] + s.b;',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'variable', 'tbl'), ['enumerator:N']);
  assert.deepEqual(refsOf(m, 'variable', 'o1'), ['enumerator:N', 'struct:out']);
  assert.deepEqual(refsOf(m, 'variable', 'o2'), ['struct:out']);
  assert.deepEqual(refsOf(m, 'function', 'f'), ['struct:in', 'variable:b', 'variable:c', 'variable:idx']);
});

test('initializers referring to functions (ops tables)', () => {
  const m = model(
    [
      'struct ops { int (*open)(int); void (*close)(void); int arr[3]; };',
      'static int my_open(int x) { return x; }',
      'static void my_close(void) { }',
      'static const struct ops fops = { .open = my_open, .close = my_close, .arr = { [0 ... 2] = 1, }, };',
      'void f(void) { static void (*fp)(void) = my_close; fp(); }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'variable', 'fops'), ['function:my_close', 'function:my_open', 'struct:ops']);
  assert.deepEqual(refsOf(m, 'function', 'f'), ['function:my_close']);
});

test('case ranges', () => {
  const m = model(
    [
      'enum { N = 4 };',
      'int f(int x) {',
      '  switch (x) {',
      '  case 1 ... 3: return 1;',
      '  case N ... N + 1: return 2;',
      "  case 'a' ... 'z': return 3;",
      '  default: return 0;',
      '  }',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f'), ['enumerator:N']);
});

test('labels as values: &&lbl and goto *p (a global named like the label is not referenced)', () => {
  const m = model(
    [
      'int l1, l2;',
      'int g(int x) {',
      '  static void *tab[] = { &&l1, &&l2 };',
      '  void *p = &&l1;',
      '  goto *p;',
      '  goto *tab[x];',
      'l1: return 1;',
      'l2: return 2;',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'g'), []);
});

test('__builtin_offsetof: member designators are not references, index expressions are', () => {
  const m = model(
    [
      'struct s { int a; struct { int b; } in; int arr[4]; };',
      'typedef struct s S;',
      'int a, b, in, arr, idx;',
      'unsigned long f1(void) { return __builtin_offsetof(struct s, in.b) + __builtin_offsetof(S, arr[2]); }',
      'unsigned long f2(void) { return __builtin_offsetof(struct s, arr[idx]); }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f1'), ['struct:s', 'typedef:S']);
  assert.deepEqual(refsOf(m, 'function', 'f2'), ['struct:s', 'variable:idx']);
});

test('__builtin_types_compatible_p, va_arg, choose_expr, constant_p, expect', () => {
  const m = model(
    [
      'struct s { int a; };',
      'typedef struct s S;',
      'typedef __builtin_va_list va_list;',
      'int a, b;',
      'int f2(void) { return __builtin_types_compatible_p(S, struct s) + __builtin_types_compatible_p(typeof(a), int); }',
      'int f3(int n, ...) {',
      '  va_list ap;',
      '  __builtin_va_start(ap, n);',
      '  int v = __builtin_va_arg(ap, int);',
      '  S *p = __builtin_va_arg(ap, S *);',
      '  __builtin_va_end(ap);',
      '  return v + p->a;',
      '}',
      'int f4(void) { return __builtin_choose_expr(1, a, b); }',
      'int f5(void) { return __builtin_constant_p(b) ? 1 : 0; }',
      'int f6(void) { return __builtin_expect(!!(a), 1); }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f2'), ['struct:s', 'typedef:S', 'variable:a']);
  assert.deepEqual(refsOf(m, 'function', 'f3'), ['typedef:S', 'typedef:va_list']);
  assert.deepEqual(refsOf(m, 'function', 'f4'), ['variable:a', 'variable:b']);
  assert.deepEqual(refsOf(m, 'function', 'f5'), ['variable:b']);
  assert.deepEqual(refsOf(m, 'function', 'f6'), ['variable:a']);
});

test("gcc's predeclared typedefs are no references", () => {
  const m = model('typedef __builtin_va_list va_list;\n__int128_t i2;\n__uint128_t u2;\ntypedef __gnuc_va_list gva;');
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'va_list', { storage: 'typedef', definition: true }),
    B('variable', 'i2', { linkage: 'external', definition: true }),
    B('variable', 'u2', { linkage: 'external', definition: true }),
    B('typedef', 'gva', { storage: 'typedef', definition: true }),
  ]);
});

test('_Static_assert at file, block and struct scope', () => {
  const m = model(
    [
      'enum { SZ = 4 };',
      'typedef int T;',
      'struct s { int a; };',
      '_Static_assert(sizeof(struct s) == SZ, "size");',
      '_Static_assert(SZ == 4);',
      'struct w { int x; _Static_assert(sizeof(T) == 4, "T"); };',
      'int f1(void) { _Static_assert(SZ > 1, "blk"); return 0; }',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('enumerator', 'SZ', { definition: true }),
    B('typedef', 'T', { storage: 'typedef', definition: true }),
    B('struct', 's', { definition: true }),
    B('struct', 'w', { definition: true, refs: ['typedef:T'] }),
    B('function', 'f1', { linkage: 'external', definition: true, refs: ['enumerator:SZ'] }),
  ]);
});

test('_Generic: associations with types and default', () => {
  const m = model(
    [
      'enum { SZ = 4 };',
      'typedef int T;',
      'struct s { int a; };',
      'int gv;',
      'int f2(void) { return _Generic(gv, int: 1, T *: 2, struct s: 3, default: SZ); }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f2'), ['enumerator:SZ', 'struct:s', 'typedef:T', 'variable:gv']);
});

test('__seg_gs / __seg_fs address spaces on pointers and variables', () => {
  const m = model(
    [
      'int __seg_gs *gp;',
      'extern int __seg_gs pcpu_var;',
      'int __seg_fs *fp;',
      'int f3(void) { return *(int __seg_gs *)&pcpu_var + *gp; }',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('variable', 'gp', { linkage: 'external', definition: true }),
    B('variable', 'pcpu_var', { storage: 'extern', linkage: 'external' }),
    B('variable', 'fp', { linkage: 'external', definition: true }),
    B('function', 'f3', { linkage: 'external', definition: true, refs: ['variable:gp', 'variable:pcpu_var'] }),
  ]);
});

test('__int128 and unsigned __int128', () => {
  const m = model(
    '__int128 i1;\nunsigned __int128 u1;\nsigned __int128 s1;\n__int128 unsigned u3;\ntypedef unsigned __int128 u128;\nu128 f(u128 x) { return x * (unsigned __int128)2; }',
  );
  assert.deepEqual(m.entities.map(brief), [
    B('variable', 'i1', { linkage: 'external', definition: true }),
    B('variable', 'u1', { linkage: 'external', definition: true }),
    B('variable', 's1', { linkage: 'external', definition: true }),
    B('variable', 'u3', { linkage: 'external', definition: true }),
    B('typedef', 'u128', { storage: 'typedef', definition: true }),
    B('function', 'f', { linkage: 'external', definition: true, refs: ['typedef:u128'] }),
  ]);
});

test('bit-fields (named, unnamed, zero width, typedef-typed), flexible and zero-length arrays', () => {
  const m = model(
    [
      'enum { SZ = 4 };',
      'typedef int T;',
      'struct bf { int a : 3; int : 3; unsigned b : SZ; int : 0; T t : 2; T : 1; };',
      'struct fl { int n; int data[]; };',
      'struct zl { int n; char data[0]; };',
      'int f(struct fl *p, struct zl *q) { return p->data[0] + q->data[1]; }',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('enumerator', 'SZ', { definition: true }),
    B('typedef', 'T', { storage: 'typedef', definition: true }),
    B('struct', 'bf', { definition: true, refs: ['enumerator:SZ', 'typedef:T'] }),
    B('struct', 'fl', { definition: true }),
    B('struct', 'zl', { definition: true }),
    B('function', 'f', { linkage: 'external', definition: true, refs: ['struct:fl', 'struct:zl'] }),
  ]);
});

test('__extension__ before declarations, expressions and struct members', () => {
  const m = model(
    [
      '__extension__ typedef unsigned long long u64;',
      '__extension__ static int v1 = 0;',
      'struct e { __extension__ union { int x; long y; }; int z; };',
      'int f2(void) {',
      '  __extension__ long long w = 0;',
      '  __extension__ (w = 1);',
      '  return __extension__ ({ 1; }) + __extension__ 2 + (int)w + v1;',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'u64', { storage: 'typedef', definition: true }),
    B('variable', 'v1', { storage: 'static', linkage: 'internal', definition: true }),
    B('struct', 'e', { definition: true }),
    B('function', 'f2', { linkage: 'external', definition: true, refs: ['variable:v1'] }),
  ]);
});

test('compound literals in functions and file-scope initializers', () => {
  const m = model(
    [
      'struct s { int a; int b; };',
      'static struct s *ps = &(struct s){ 1 };',
      'int f3(void) { struct s *p = &(struct s){ .a = 1 }; return p->a + ((struct s){ 1, 2 }).b; }',
      'int *f4(void) { return (int[]){ 1, 2, 3 }; }',
      'int f5(void) { return sizeof((int){ 1 }) + sizeof (struct s){ 2 }.a; }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'variable', 'ps'), ['struct:s']);
  assert.deepEqual(refsOf(m, 'function', 'f3'), ['struct:s']);
  assert.deepEqual(refsOf(m, 'function', 'f4'), []);
  assert.deepEqual(refsOf(m, 'function', 'f5'), ['struct:s']);
});

test('other GNU/C11 bits: _Atomic, _Complex, __real__/__imag__, _Alignas/_Alignof, ?:, string concatenation', () => {
  const m = model(
    [
      'struct s { int a; };',
      '_Atomic(int) ai;',
      '_Atomic int aj;',
      '_Complex double cd;',
      'double f3(void) { return __real__ cd + __imag__ cd; }',
      '_Alignas(8) int al8;',
      'int al9 = _Alignof(struct s);',
      'int x, y;',
      'int f13(void) { return x ?: y; }',
      'const char *f14(void) { return "a" "b" "c"; }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f3'), ['variable:cd']);
  assert.deepEqual(refsOf(m, 'variable', 'al9'), ['struct:s']);
  assert.deepEqual(refsOf(m, 'function', 'f13'), ['variable:x', 'variable:y']);
  assert.deepEqual(refsOf(m, 'function', 'f14'), []);
  assert.deepEqual(
    m.entities.filter((e) => e.kind === 'variable').map((e) => e.name),
    ['ai', 'aj', 'cd', 'al8', 'al9', 'x', 'y'],
  );
});

test('__label__ declarations, in blocks and statement expressions', () => {
  const m = model(
    [
      'int x, out, retry;',
      'int f1(void) {',
      '  __label__ out, retry;',
      '  int r = ({ __label__ out; int z = 1; if (z) goto out; z = 2; out: z; });',
      '  goto retry;',
      'retry:',
      '  return r + x;',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f1'), ['variable:x']);
});

// ---- struct, union, enum ------------------------------------------------------------

test('nested struct definitions: the inner tags are top-level entities too', () => {
  const m = model(
    [
      'typedef int T;',
      'struct outer {',
      '  struct inner { int a; } in;',
      '  union u { int b; } un;',
      '  enum ek { EK1, EK2 } e;',
      '  T T;',
      '  unsigned foo : 3;',
      '};',
      'struct inner iv;',
      'int f(void) { return EK2 + sizeof(union u); }',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'T', { storage: 'typedef', definition: true }),
    B('struct', 'outer', { definition: true, refs: ['enum:ek', 'struct:inner', 'typedef:T', 'union:u'] }),
    B('struct', 'inner', { definition: true }),
    B('union', 'u', { definition: true }),
    B('enum', 'ek', { definition: true }),
    B('enumerator', 'EK1', { definition: true }),
    B('enumerator', 'EK2', { definition: true }),
    B('variable', 'iv', { linkage: 'external', definition: true, refs: ['struct:inner'] }),
    B('function', 'f', { linkage: 'external', definition: true, refs: ['enumerator:EK2', 'union:u'] }),
  ]);
  assert.deepEqual(one(m, 'struct', 'outer').span, { file: 't.c', line: 2, endLine: 8 });
  assert.equal(one(m, 'struct', 'inner').span.line, 3);
  assert.equal(one(m, 'enumerator', 'EK1').parent, 'enum:ek');
});

test('struct, union and enum defined inside a function are not entities', () => {
  const m = model(
    [
      'int h(void) {',
      '  struct local { int z; } l = { 1 };',
      '  enum { LA = 3 } q = LA;',
      '  union lu { int a; } v;',
      '  return l.z + q;',
      '}',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [B('function', 'h', { linkage: 'external', definition: true })]);
});

test('enum constants with values from other enumerators and sizeof of types; parents', () => {
  const m = model(
    [
      'typedef int T;',
      'struct outer { int a; };',
      'enum E { EA = 1, EB = EA << 2, EC = sizeof(struct outer), ED = sizeof(T) + EB, };',
      'enum { AN };',
      'typedef enum { XA } xe;',
      'typedef enum e3 { YA = XA + 1 } e3_t;',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'T', { storage: 'typedef', definition: true }),
    B('struct', 'outer', { definition: true }),
    B('enum', 'E', { definition: true, refs: ['enumerator:EA', 'enumerator:EB', 'struct:outer', 'typedef:T'] }),
    B('enumerator', 'EA', { definition: true }),
    B('enumerator', 'EB', { definition: true, refs: ['enumerator:EA'] }),
    B('enumerator', 'EC', { definition: true, refs: ['struct:outer'] }),
    B('enumerator', 'ED', { definition: true, refs: ['enumerator:EB', 'typedef:T'] }),
    B('enumerator', 'AN', { definition: true }),
    B('enumerator', 'XA', { definition: true }),
    B('typedef', 'xe', { storage: 'typedef', definition: true }),
    B('enum', 'e3', { definition: true, refs: ['enumerator:XA'] }),
    B('enumerator', 'YA', { definition: true, refs: ['enumerator:XA'] }),
    B('typedef', 'e3_t', { storage: 'typedef', definition: true, refs: ['enum:e3', 'enumerator:XA'] }),
  ]);
  assert.deepEqual(
    m.entities.filter((e) => e.kind === 'enumerator').map((e) => [e.name, e.parent]),
    [
      ['EA', 'enum:E'],
      ['EB', 'enum:E'],
      ['EC', 'enum:E'],
      ['ED', 'enum:E'],
      ['AN', ''],
      ['XA', ''],
      ['YA', 'enum:e3'],
    ],
  );
});

test('struct members named like typedefs and globals', () => {
  const m = model(
    [
      'typedef int T;',
      'typedef struct foo foo;',
      'int x;',
      'struct m { int a; int x; int T; int foo; T t; };',
      'struct n { T T; foo *foo; unsigned T2 : 3; };',
      'int members(struct m *mp) { return mp->x + mp->T + mp->foo; }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'struct', 'm'), ['typedef:T']);
  assert.deepEqual(refsOf(m, 'struct', 'n'), ['typedef:T', 'typedef:foo']);
  assert.deepEqual(refsOf(m, 'function', 'members'), ['struct:m']);
});

test('self-referencing struct has no reference to itself', () => {
  const m = model('struct list { struct list *next, *prev; };');
  assert.deepEqual(m.entities.map(brief), [B('struct', 'list', { definition: true })]);
});

test('anonymous struct typedefs and variables', () => {
  const m = model('typedef struct { int a; } S, *PS;\nstruct { int a; } anon_var;\nPS f(S *s) { return s; }');
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'S', { storage: 'typedef', definition: true }),
    B('typedef', 'PS', { storage: 'typedef', definition: true }),
    B('variable', 'anon_var', { linkage: 'external', definition: true }),
    B('function', 'f', { linkage: 'external', definition: true, refs: ['typedef:PS', 'typedef:S'] }),
  ]);
});

test('more declarations: struct defined in a return type, member prototypes, typeof of a member, forward tags, () prototypes', () => {
  const m = model(
    [
      'typedef int T;',
      'int x;',
      'struct s { int a; };',
      'enum { N = 3, Q = (T)1 };',
      'struct r { int a; } mk(void) { struct r v = { 1 }; return v; }',
      'struct o { int (*fn)(T x, struct s *); int arr[N]; };',
      'typedef int (*cb_t)(int x);',
      'int f(void) { register int r asm("eax") = 0; return r; }',
      'typeof(((struct s *)0)->a) tv;',
      'extern int xa[];',
      'int xa[3];',
      'int g(void) { return sizeof(struct lq { int q; }); }',
      'struct fw;',
      'struct fw *fwp;',
      'struct fw { int z; };',
      'int h(void *p) { return ((cb_t)p)(x); }',
      'int k();',
      'int k() { return 0; }',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'T', { storage: 'typedef', definition: true }),
    B('variable', 'x', { linkage: 'external', definition: true }),
    B('struct', 's', { definition: true }),
    B('enumerator', 'N', { definition: true }),
    B('enumerator', 'Q', { definition: true, refs: ['typedef:T'] }),
    B('struct', 'r', { definition: true }),
    B('function', 'mk', { linkage: 'external', definition: true, refs: ['struct:r'] }),
    B('struct', 'o', { definition: true, refs: ['enumerator:N', 'struct:s', 'typedef:T'] }),
    B('typedef', 'cb_t', { storage: 'typedef', definition: true }),
    B('function', 'f', { linkage: 'external', definition: true }),
    B('variable', 'tv', { linkage: 'external', definition: true, refs: ['struct:s'] }),
    B('variable', 'xa', { storage: 'extern', linkage: 'external' }),
    B('variable', 'xa', { linkage: 'external', definition: true }),
    B('function', 'g', { linkage: 'external', definition: true }),
    B('variable', 'fwp', { linkage: 'external', definition: true, refs: ['struct:fw'] }),
    B('struct', 'fw', { definition: true }),
    B('function', 'h', { linkage: 'external', definition: true, refs: ['typedef:cb_t', 'variable:x'] }),
    B('function', 'k', { linkage: 'external' }),
    B('function', 'k', { linkage: 'external', definition: true }),
  ]);
});

// ---- scopes ---------------------------------------------------------------------------

test('scope: a local shadowing a global is not a reference; the global is one elsewhere', () => {
  const m = model(
    [
      'int x;',
      'int f_local(void) { int x = 1; return x; }',
      'int f_global(void) { return x; }',
      'int f_param(int x) { return x; }',
      'int f_inner(void) { { int x = 2; (void)x; } return x; }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f_local'), []);
  assert.deepEqual(refsOf(m, 'function', 'f_global'), ['variable:x']);
  assert.deepEqual(refsOf(m, 'function', 'f_param'), []);
  assert.deepEqual(refsOf(m, 'function', 'f_inner'), ['variable:x']);
});

test('scope: a typedef name reused as a parameter and as a local (T * 2 is a multiplication)', () => {
  const m = model(
    [
      'typedef int T;',
      'void f(int T) { T = 1; }',
      'int g(void) { int T = 2; return T * 2; }',
      'int g2(void) { T y = 0; return y; }',
      'int g3(void) { int T = 1; (T) + 1; return sizeof (T); }',
      'int g4(void) { { int T; T = 2; } T v = 3; return v; }',
      'void g5(T);',
      'T after;',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'T', { storage: 'typedef', definition: true }),
    B('function', 'f', { linkage: 'external', definition: true }),
    B('function', 'g', { linkage: 'external', definition: true }),
    B('function', 'g2', { linkage: 'external', definition: true, refs: ['typedef:T'] }),
    B('function', 'g3', { linkage: 'external', definition: true }),
    B('function', 'g4', { linkage: 'external', definition: true, refs: ['typedef:T'] }),
    B('function', 'g5', { linkage: 'external', refs: ['typedef:T'] }),
    B('variable', 'after', { linkage: 'external', definition: true, refs: ['typedef:T'] }),
  ]);
});

test('scope: T * p is a declaration when T is a typedef, x * y an expression', () => {
  const m = model(
    'typedef int T;\nint x, y;\nint f2(void) { T * p = 0; x * y; return p != 0; }\nint f7(void) { return (T)x + (T)+y; }',
  );
  assert.deepEqual(refsOf(m, 'function', 'f2'), ['typedef:T', 'variable:x', 'variable:y']);
  assert.deepEqual(refsOf(m, 'function', 'f7'), ['typedef:T', 'variable:x', 'variable:y']);
});

test('scope: a block-scope typedef ends with its block', () => {
  const m = model('void f6(void) { typedef int L; L l = 0; (void)l; }\nint L;\nint use(void) { return L * 2; }');
  assert.deepEqual(m.entities.map(brief), [
    B('function', 'f6', { linkage: 'external', definition: true }),
    B('variable', 'L', { linkage: 'external', definition: true }),
    B('function', 'use', { linkage: 'external', definition: true, refs: ['variable:L'] }),
  ]);
});

test('scope: a tag and a typedef with the same name', () => {
  const m = model(
    [
      'typedef struct foo foo;',
      'struct foo { int a; };',
      'foo *p;',
      'int uses_tag(void) { struct foo q; return q.a; }',
      'int uses_td(void) { foo q; return q.a; }',
    ].join('\n'),
  );
  assert.deepEqual(m.entities.map(brief), [
    B('typedef', 'foo', { storage: 'typedef', definition: true, refs: ['struct:foo'] }),
    B('struct', 'foo', { definition: true }),
    B('variable', 'p', { linkage: 'external', definition: true, refs: ['typedef:foo'] }),
    B('function', 'uses_tag', { linkage: 'external', definition: true, refs: ['struct:foo'] }),
    B('function', 'uses_td', { linkage: 'external', definition: true, refs: ['typedef:foo'] }),
  ]);
});

test('scope: a block-scope tag shadows the file-scope tag', () => {
  const m = model(
    [
      'struct s { int a; };',
      'void shadow_tag(void) { struct s { int b; } v; v.b = 1; }',
      'void fwd_tag(void) { struct s; struct s *p = 0; (void)p; }',
      'void uses(void) { struct s v; v.a = 1; }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'shadow_tag'), []);
  assert.deepEqual(refsOf(m, 'function', 'fwd_tag'), []);
  assert.deepEqual(refsOf(m, 'function', 'uses'), ['struct:s']);
});

test('scope: an enum constant shadowed by a local', () => {
  const m = model(
    [
      'typedef int T;',
      'enum { A = 1, B };',
      'int enum_shadow(void) { int A = 5; return A; }',
      'int enum_param(int B) { return B; }',
      'int enum_use(void) { return B; }',
      'int local_enum(void) { enum { T = 1 }; int y = T * 2; return y; }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'enum_shadow'), []);
  assert.deepEqual(refsOf(m, 'function', 'enum_param'), []);
  assert.deepEqual(refsOf(m, 'function', 'enum_use'), ['enumerator:B']);
  assert.deepEqual(refsOf(m, 'function', 'local_enum'), []);
});

test('scope: block-scope extern int g; refers to the global', () => {
  const m = model(
    [
      'int gl;',
      'int blk_extern(void) { extern int gl; return gl; }',
      'int hfun(void);',
      'int blk_fn(void) { extern int hfun(void); return hfun(); }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'blk_extern'), ['variable:gl']);
  assert.deepEqual(refsOf(m, 'function', 'blk_fn'), ['function:hfun']);
});

test('scope: labels and struct members never appear in refs', () => {
  const m = model(
    [
      'int lbl, g, x, out, member;',
      'struct st { int member; int out; };',
      'int f(struct st *p) {',
      '  int o;',
      '  asm volatile goto("" : : [g] "r"(x) : "memory" : lbl);',
      '  asm("" : [out] "=r"(o) : [member] "r"(p->member));',
      '  if (o) goto out;',
      '  return p->out + (&(struct st){ .member = 1 })->member;',
      'lbl:',
      'out:',
      '  return 0;',
      '}',
      'int lab(void) { goto x; x: return 0; }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f'), ['struct:st', 'variable:x']);
  assert.deepEqual(refsOf(m, 'function', 'lab'), []);
});

test('scope: for (int i ...) ends after the loop', () => {
  const m = model(
    [
      'typedef int T;',
      'int i;',
      'int loop(void) { int s = 0; for (int i = 0; i < 3; i++) s += i; return s + i; }',
      'int inner(void) { for (int i = 0; i < 2; i++) { int i = 5; (void)i; } return 0; }',
      'int tdloop(void) { int s = 0; for (int T = 0; T < 3; T++) s += T; T v = s; return v; }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'loop'), ['variable:i']);
  assert.deepEqual(refsOf(m, 'function', 'inner'), []);
  assert.deepEqual(refsOf(m, 'function', 'tdloop'), ['typedef:T']);
});

test('scope: prototype parameter names are not references', () => {
  const m = model(
    'int n;\nvoid pf(int n, int a[n]);\nint proto(int n);\nint f10(int m) { int vla[m]; return sizeof vla + sizeof n; }',
  );
  assert.deepEqual(refsOf(m, 'function', 'pf'), []);
  assert.deepEqual(refsOf(m, 'function', 'proto'), []);
  assert.deepEqual(refsOf(m, 'function', 'f10'), ['variable:n']);
});

test('scope: statements after labels and in switch cases', () => {
  const m = model(
    [
      'int x, y;',
      'void f11(void) { if (x) lbl: x = 1; else y = 2; }',
      'int f12(int v) { switch (v) { case 0: { int x = 3; return x; } default: break; } return 0; }',
      'int f15(void) { typedef int T; T: return 0; }',
    ].join('\n'),
  );
  assert.deepEqual(refsOf(m, 'function', 'f11'), ['variable:x', 'variable:y']);
  assert.deepEqual(refsOf(m, 'function', 'f12'), []);
  assert.deepEqual(refsOf(m, 'function', 'f15'), []);
});

// ---- spans from line markers ----------------------------------------------------------

test('SYSCALL_DEFINE-like macro-expanded functions: spans and body lines from line markers', () => {
  const m = buildModel({
    file: 't.c',
    preprocessed: [
      '# 1 "t.c"',
      '# 1 "include/linux/types.h" 1',
      'typedef unsigned long size_t;',
      'int helper(int);',
      '# 3 "t.c" 2',
      '',
      'int plain(void) { return 0; }',
      '# 20 "t.c"',
      'static inline long __do_sys_foo(int a); long __se_sys_foo(long a); long __se_sys_foo(long a) { long ret = __do_sys_foo((int) a); return ret; } static inline long __do_sys_foo(int a)',
      '# 21 "t.c"',
      '{',
      ' return helper(a);',
      '}',
    ].join('\n'),
  });
  assert.deepEqual(m.unresolved, []);
  assert.deepEqual(
    m.entities.map((e) => [e.kind, e.name, e.linkage, e.definition, e.span, e.bodyLine, e.refs]),
    [
      ['typedef', 'size_t', 'none', true, { file: 'include/linux/types.h', line: 1, endLine: 1 }, undefined, []],
      ['function', 'helper', 'external', false, { file: 'include/linux/types.h', line: 2, endLine: 2 }, undefined, []],
      ['function', 'plain', 'external', true, { file: 't.c', line: 4, endLine: 4 }, 4, []],
      ['function', '__do_sys_foo', 'internal', false, { file: 't.c', line: 20, endLine: 20 }, undefined, []],
      ['function', '__se_sys_foo', 'external', false, { file: 't.c', line: 20, endLine: 20 }, undefined, []],
      [
        'function',
        '__se_sys_foo',
        'external',
        true,
        { file: 't.c', line: 20, endLine: 20 },
        20,
        ['function:__do_sys_foo'],
      ],
      ['function', '__do_sys_foo', 'internal', true, { file: 't.c', line: 20, endLine: 23 }, 21, ['function:helper']],
    ],
  );
});

test('file names are made relative to sourceRoot', () => {
  const m = buildModel({
    file: 'lib/t.c',
    sourceRoot: '/src/linux',
    preprocessed:
      '# 1 "/src/linux/lib/t.c"\n# 1 "/src/linux/include/x.h" 1\nint hx;\n# 2 "/src/linux/lib/t.c" 2\nint tx;\n# 1 "/usr/lib/gcc/stddef.h" 1\nint ox;\n',
  });
  assert.deepEqual(
    m.entities.map((e) => [e.name, e.span]),
    [
      ['hx', { file: 'include/x.h', line: 1, endLine: 1 }],
      ['tx', { file: 'lib/t.c', line: 2, endLine: 2 }],
      ['ox', { file: '/usr/lib/gcc/stddef.h', line: 1, endLine: 1 }],
    ],
  );
});

// ---- macros of the .c -------------------------------------------------------------------

const MACRO_SOURCE = [
  '#include <linux/types.h>', // 1
  '#define SIZE 16', // 2
  '#define MAX(a, b) ((a) > (b) ? (a) : (b))', // 3
  '#define MULTI(x) \\', // 4
  '\tdo { \\', // 5
  '\t\tx++; \\', // 6
  '\t} while (0)', // 7
  '/* #define NOT_A_MACRO 1 */', // 8
  '/*', // 9
  '#define ALSO_NOT 2', // 10
  '*/', // 11
  '// #define NOR_THIS 3', // 12
  '#ifdef CONFIG_X', // 13
  '#define COND 1', // 14
  '#endif', // 15
  '#define TBL table', // 16
  'int table[SIZE];', // 17
  'int f(int v)', // 18
  '{', // 19
  '\tMULTI(v);', // 20
  '\treturn MAX(v, SIZE);', // 21
  '}', // 22
  'int g(void) { return 0; /* SIZE */ }', // 23
  '#define USES_SIZE (SIZE * 2)', // 24
  'const char *s = "SIZE";', // 25
].join('\n');

const MACRO_PREPROCESSED = [
  '# 17 "t.c"',
  'int table[16];',
  'int f(int v)',
  '{',
  ' do { v++; } while (0);',
  ' return ((v) > (16) ? (v) : (16));',
  '}',
  'int g(void) { return 0; }',
  '',
  'const char *s = "SIZE";',
].join('\n');

test('macros from sourceText: object-like, function-like, multi-line, conditional; none from comments', () => {
  const m = model(MACRO_PREPROCESSED, MACRO_SOURCE);
  assert.deepEqual(
    m.macros.map((x) => ({ ...x, body: x.body.replace(/\s+/g, ' ') })),
    [
      { kind: 'macro', name: 'SIZE', params: undefined, body: '16', line: 2, endLine: 2, conditional: false, refs: [] },
      {
        kind: 'macro',
        name: 'MAX',
        params: '(a, b)',
        body: '((a) > (b) ? (a) : (b))',
        line: 3,
        endLine: 3,
        conditional: false,
        refs: [],
      },
      {
        kind: 'macro',
        name: 'MULTI',
        params: '(x)',
        body: 'do { x++; } while (0)',
        line: 4,
        endLine: 7,
        conditional: false,
        refs: [],
      },
      { kind: 'macro', name: 'COND', params: undefined, body: '1', line: 14, endLine: 14, conditional: true, refs: [] },
      {
        kind: 'macro',
        name: 'TBL',
        params: undefined,
        body: 'table',
        line: 16,
        endLine: 16,
        conditional: false,
        refs: ['variable:table'],
      },
      {
        kind: 'macro',
        name: 'USES_SIZE',
        params: undefined,
        body: '(SIZE * 2)',
        line: 24,
        endLine: 24,
        conditional: false,
        refs: ['macro:SIZE'],
      },
    ],
  );
});

test('refs contain macro:NAME for entities whose original lines use a .c macro', () => {
  const m = model(MACRO_PREPROCESSED, MACRO_SOURCE);
  assert.deepEqual(
    m.entities.map((e) => [e.kind, e.name, e.span, e.refs]),
    [
      ['variable', 'table', { file: 't.c', line: 17, endLine: 17 }, ['macro:SIZE']],
      ['function', 'f', { file: 't.c', line: 18, endLine: 22 }, ['macro:MAX', 'macro:MULTI', 'macro:SIZE']],
      ['function', 'g', { file: 't.c', line: 23, endLine: 23 }, []],
      ['variable', 's', { file: 't.c', line: 25, endLine: 25 }, []],
    ],
  );
});

test('no sourceText: no macros', () => {
  const m = model(MACRO_PREPROCESSED);
  assert.deepEqual(m.macros, []);
  assert.deepEqual(refsOf(m, 'function', 'f'), []);
});

test('macro refs: the tail of a block comment on an entity line is not a use', () => {
  const source = ['#define SIZE 16', '/* this comment mentions', '   SIZE */ int x;'].join('\n');
  const m = model('# 3 "t.c"\n   int x;\n', source);
  assert.deepEqual(refsOf(m, 'variable', 'x'), []);
});

// ---- malformed input -----------------------------------------------------------------------

function errorAt(src: string): { message: string; file: string; line: number; col: number } {
  const e = frontendError(GCC_PROLOGUE + src);
  return { message: e.message, ...e.location };
}

test('malformed: missing ; is a FrontendError at the next token', () => {
  assert.deepEqual(errorAt('int a;\nint b\nint c;\n'), {
    message: "expected ';' after the declaration, found 'int'",
    file: 't.c',
    line: 3,
    col: 1,
  });
  assert.deepEqual(errorAt('int f(void) {\n  int x = 1\n  return x;\n}\n'), {
    message: "expected ';' after the declaration, found 'return'",
    file: 't.c',
    line: 3,
    col: 3,
  });
  assert.deepEqual(errorAt('int f(void) {\n  f()\n}\n'), {
    message: "expected ';' after the expression, found '}'",
    file: 't.c',
    line: 3,
    col: 1,
  });
  assert.deepEqual(errorAt('struct s { int a }; \n'), {
    message: "expected ';' after the member, found '}'",
    file: 't.c',
    line: 1,
    col: 18,
  });
});

test('malformed: unbalanced braces and parentheses', () => {
  const open = errorAt('int f(void) {\n  if (1) {\n    return 0;\n}\n');
  assert.equal(open.line, 5);
  assert.match(open.message, /expected '}' before end of file/);
  assert.deepEqual(errorAt('int f(void) {\n  return 0;\n}\n}\n'), {
    message: "expected a declaration, found '}'",
    file: 't.c',
    line: 4,
    col: 1,
  });
  assert.deepEqual(errorAt('int f(void) {\n  return (1 + 2;\n}\n'), {
    message: "expected ')', found ';'",
    file: 't.c',
    line: 2,
    col: 16,
  });
  assert.equal(errorAt('int a __attribute__((').file, 't.c');
});

test('malformed: a stray @ reports its t.c line and column', () => {
  assert.deepEqual(errorAt('int a;\nint b = 1 @ 2;\n'), {
    message: "stray '@' in program",
    file: 't.c',
    line: 2,
    col: 11,
  });
  assert.deepEqual(errorAt('int a;\n# 40 "t.c"\nint  @b;\n'), {
    message: "stray '@' in program",
    file: 't.c',
    line: 40,
    col: 6,
  });
  assert.deepEqual(errorAt('int a;\n# 1 "include/x.h" 1\n\n int @;\n'), {
    message: "stray '@' in program",
    file: 'include/x.h',
    line: 2,
    col: 6,
  });
});

test('malformed: an unterminated string is a FrontendError', () => {
  assert.deepEqual(errorAt('int a;\nchar *s = "abc;\n'), {
    message: 'missing terminating " character',
    file: 't.c',
    line: 2,
    col: 11,
  });
});

test('malformed: error location when the line marker is the first line of the text', () => {
  const e = frontendError(`${MARKER}int a;\nint b = 1 @ 2;\n`);
  assert.deepEqual(e.location, { file: 't.c', line: 2, col: 11 });
  const e2 = frontendError(`${MARKER}int a;\nint b\nint c;\n`);
  assert.deepEqual(e2.location, { file: 't.c', line: 3, col: 1 });
});

test('malformed: pathological nesting is a FrontendError "nesting too deep", not a crash', () => {
  for (const src of [
    `int a = ${'('.repeat(100_000)}1;`,
    `int f(void) ${'{'.repeat(100_000)}`,
    `int a[] = ${'{'.repeat(100_000)}`,
    `int a = ${'({'.repeat(50_000)}`,
    `int ${'('.repeat(100_000)}x;`,
    `int a = ${'- '.repeat(100_000)}1;`,
    `void f(void) { ${'if (1) '.repeat(100_000)}; }`,
  ]) {
    const e = frontendError(GCC_PROLOGUE + src);
    assert.equal(e.message, 'nesting too deep', src.slice(0, 30));
    assert.equal(e.location.file, 't.c');
    assert.equal(e.location.line, 1);
  }
});

test('malformed: assorted garbage always gives a FrontendError', () => {
  for (const src of [
    '@',
    'int',
    'int a',
    'int a =',
    'struct',
    'struct {',
    'enum { A',
    'int f(',
    'int f(void) { return',
    '__attribute__((',
    'int f(void) { asm("" : [x "r"(1)); }',
    'int a = ({ 1; );',
    'typedef',
    '}',
    ')',
    'int a[;',
    "char c = 'x;",
    'int f(void) { case }',
    'int f(void) { goto; }',
    'int a = 1 +;',
  ]) {
    frontendError(GCC_PROLOGUE + src);
  }
});

test('empty input and only line markers give an empty model', () => {
  const m = buildModel({ preprocessed: GCC_PROLOGUE, file: 't.c' });
  assert.deepEqual(m.entities, []);
  assert.deepEqual(m.unresolved, []);
  assert.deepEqual(buildModel({ preprocessed: '', file: 't.c' }).entities, []);
});

test('undeclared identifiers are listed in unresolved; builtins are not', () => {
  const m = buildModel({
    preprocessed: `${MARKER}int f(void) { return nowhere + __builtin_ffs(1) + __func__[0] + __sync_fetch_and_add(&f, 1); }`,
    file: 't.c',
  });
  assert.deepEqual(m.unresolved, ['nowhere']);
});
