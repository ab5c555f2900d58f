import { strict as assert } from 'node:assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { checkAgainstModel, occurringNames, readAdditions } from '../../src/analyze/header-additions.js';
import { parseUnifiedZeroHunks } from '../../src/analyze/lines.js';
import { buildModel } from '../../src/frontend/model.js';
import { run } from '../../src/util/exec.js';
import { tempDir } from '../helpers.js';

const ORIGINAL = `#ifndef _THING_H
#define _THING_H
/*
 * Things.
 */
struct thing {
\tint a;
\tint b;
};
#define THING_MAX 4
#define THING_FLAGS(x) \\
\t((x) | 1)
int thing_get(struct thing *t);
void thing_put(struct thing *t);
#endif
`;

/** The change as `diff -U0` sees it, read by readAdditions. */
async function additions(patched: string) {
  const dir = tempDir('additions');
  writeFileSync(join(dir, 'a'), ORIGINAL);
  writeFileSync(join(dir, 'b'), patched);
  const r = await run('diff', ['-U0', join(dir, 'a'), join(dir, 'b')]);
  return readAdditions('include/linux/thing.h', ORIGINAL, patched, parseUnifiedZeroHunks(r.stdout));
}

const insertAfter = (anchor: string, text: string) => ORIGINAL.replace(anchor, `${anchor}${text}`);

test('readAdditions: new prototypes, macros, static inlines, types and conditionals are additive, with their names', async () => {
  const r = await additions(
    insertAfter(
      'void thing_put(struct thing *t);\n',
      [
        'int thing_get_many(struct thing *t, int n);',
        '__printf(2, 3) void thing_log(struct thing *t, const char *fmt, ...);',
        'void __thing_reset(struct thing *t);',
        '#define THING_RESET 8',
        '#ifdef CONFIG_THING_DEBUG',
        'void thing_dump(struct thing *t);',
        '#else',
        'static inline void thing_dump(struct thing *t) { if (t) thing_put(t); }',
        '#endif',
        'struct thing_stats { long hits; };',
        'typedef struct { int x; } thing_pair_t;',
        'enum { THING_RED, THING_BLUE = 2 };',
        'extern int thing_count;',
        'struct thing_future;',
        '',
      ].join('\n'),
    ),
  );
  assert.ok(r.ok, r.ok ? '' : r.why);
  assert.deepEqual(r.additions.declared, [
    'THING_BLUE',
    'THING_RED',
    '__thing_reset',
    'thing_count',
    'thing_dump',
    'thing_get_many',
    'thing_log',
    'thing_pair_t',
    'thing_stats',
  ]);
  assert.deepEqual(r.additions.macros, ['THING_RESET']);
  assert.deepEqual(r.additions.ranges, [[15, 28]]);
});

test('readAdditions: what could change another includer is not additive, with the line', async () => {
  const cases: [string, RegExp, number][] = [
    [
      ORIGINAL.replace('int thing_get(struct thing *t);', 'long thing_get(struct thing *t);'),
      /removes or rewrites/,
      13,
    ],
    [insertAfter('\tint a;\n', '\tint c;\n'), /inside an existing definition/, 8],
    [insertAfter('#define THING_FLAGS(x) \\\n', '\t(x) + \\\n'), /inside an existing definition, macro/, 12],
    [insertAfter('#define THING_MAX 4\n', '#include <linux/other.h>\n'), /#include added/, 11],
    [insertAfter('#define THING_MAX 4\n', '#undef THING_MAX\n'), /#undef added/, 11],
    [insertAfter('#define THING_MAX 4\n', '#ifdef X\n'), /not closed/, 11],
    [insertAfter('void thing_put(struct thing *t);\n', '#else\n'), /existing conditional/, 15],
    [insertAfter('void thing_put(struct thing *t);\n', 'int thing_total;\n'), /defined, not declared/, 15],
    [insertAfter('void thing_put(struct thing *t);\n', 'int thing_sum(void) { return 0; }\n'), /without static/, 15],
    [insertAfter('void thing_put(struct thing *t);\n', 'int (*thing_hook)(void);\n'), /could not be told/, 15],
  ];
  for (const [patched, why, line] of cases) {
    const r = await additions(patched);
    assert.equal(r.ok, false, `${why}: taken as additive`);
    if (!r.ok) {
      assert.match(r.why, why);
      assert.equal(r.line, line, `${why}: line`);
    }
  }
  // Words added inside a comment change nothing.
  const comment = await additions(insertAfter(' * Things.\n', ' * More things.\n'));
  assert.ok(comment.ok);
  assert.deepEqual(comment.ok && comment.additions.declared, []);
});

test('occurringNames: names already in the tree are found with a file; new ones are not', async () => {
  const root = tempDir('names');
  for (const [path, text] of Object.entries({
    'include/linux/a.h': 'int thing_get(void);\n',
    'arch/x86/b.S': 'call thing_asm\n',
    'drivers/c.c': '/* thing_getter */\n',
  })) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  const found = await occurringNames(root, ['thing_get', 'thing_asm', 'thing_new']);
  assert.deepEqual([...found].sort(), [
    ['thing_asm', 'arch/x86/b.S'],
    ['thing_get', 'include/linux/a.h'],
  ]);
});

test('checkAgainstModel: an entity on the added lines that the text reading missed is refused', () => {
  const source = 'struct thing { int a; };\nint thing_get(struct thing *t);\nint thing_new(void), thing_get2(void);\n';
  const model = buildModel({ preprocessed: `# 1 "include/linux/thing.h"\n${source}`, file: 'x.c', sourceText: '' });
  const ok = checkAgainstModel(
    { header: 'include/linux/thing.h', ranges: [[3, 3]], declared: ['thing_new', 'thing_get2'], macros: [] },
    model,
  );
  assert.equal(ok, null);
  const missed = checkAgainstModel(
    { header: 'include/linux/thing.h', ranges: [[3, 3]], declared: ['thing_new'], macros: [] },
    model,
  );
  assert.match(missed?.why ?? '', /thing_get2, which the reading of the text missed/);
  const inside = checkAgainstModel(
    { header: 'include/linux/thing.h', ranges: [[1, 1]], declared: [], macros: [] },
    model,
  );
  assert.equal(inside?.why, 'the added lines declare thing, which the reading of the text missed');
});
