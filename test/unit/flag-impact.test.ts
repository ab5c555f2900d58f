/**
 * flag-impact's pure parts: the three profile formats (detected from the
 * content), the diff of inlining and clone decisions between two
 * ipa-clones dumps, objtool warning diffs, and objdump parsing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpaClones } from '../../src/analyze/ipa-clones.js';
import { diffClones, diffInlining, diffObjtool, inliningPairs } from '../../src/flagimpact/diff.js';
import { parseObjdump } from '../../src/flagimpact/disasm.js';
import { ProfileIndex, parseProfile } from '../../src/flagimpact/profile.js';
import { KlpgenError } from '../../src/util/errors.js';

test('profile: perf report --stdio (Overhead column), kernel symbols summed over commands', () => {
  const text = [
    '# To display the perf.data header info, please use --header/--header-only options.',
    '#',
    "# Samples: 10K of event 'cycles'",
    '# Event count (approx.): 2345678',
    '#',
    '# Overhead  Command          Shared Object      Symbol',
    '# ........  ...............  .................  ..............................',
    '#',
    '    12.34%  swapper          [kernel.kallsyms]  [k] native_safe_halt',
    '     3.21%  bash             [kernel.kallsyms]  [k] copy_page',
    '     1.00%  make             [kernel.kallsyms]  [k] copy_page',
    '     0.50%  bash             libc.so.6          [.] __memmove_avx_unaligned_erms',
    '     0.25%  bash             [kernel.kallsyms]  [k] 0xffffffff81000000',
    '     0.10%  cc1              [kernel.kallsyms]  [k] update_sd_lb_stats.constprop.0',
    '            |',
    '            ---update_sd_lb_stats.constprop.0',
    '',
  ].join('\n');
  const p = parseProfile(text);
  assert.equal(p.format, 'perf-report');
  assert.equal(p.weights.get('native_safe_halt'), 12.34);
  assert.ok(Math.abs((p.weights.get('copy_page') ?? 0) - 4.21) < 1e-9);
  assert.equal(p.weights.has('__memmove_avx_unaligned_erms'), false, 'user-space symbols are not kernel functions');
  assert.equal(p.weights.has('0xffffffff81000000'), false);
  // A clone's number differs between builds: matched with numbers folded.
  assert.equal(new ProfileIndex(p).weightOf('update_sd_lb_stats.constprop.3'), 0.1);
  assert.equal(new ProfileIndex(p).weightOf('nothing_like_it'), 0);
});

test('profile: perf report --children uses the Self column', () => {
  const p = parseProfile(
    [
      '# Children      Self  Command  Shared Object      Symbol',
      '    45.00%     0.00%  bash     [kernel.kallsyms]  [k] entry_SYSCALL_64_after_hwframe',
      '    20.00%     7.50%  bash     [kernel.kallsyms]  [k] do_syscall_64',
    ].join('\n'),
  );
  assert.equal(p.format, 'perf-report');
  assert.equal(p.weights.get('do_syscall_64'), 7.5);
  assert.equal(p.weights.get('entry_SYSCALL_64_after_hwframe'), 0);
});

test('profile: perf script counts one sample per IP, with or without call chains', () => {
  const withChains = [
    'bash  1234 [001] 123.456789:     250000 cycles:',
    '\tffffffffa1234567 do_syscall_64+0x37 ([kernel.kallsyms])',
    '\tffffffffa1000123 entry_SYSCALL_64_after_hwframe+0x63 ([kernel.kallsyms])',
    '\t    7f0123456789 __GI___libc_write+0x14 (/usr/lib/x86_64-linux-gnu/libc.so.6)',
    '',
    'swapper     0 [000] 123.457000:     250000 cycles:',
    '\tffffffffa1100000 native_safe_halt+0xb ([kernel.kallsyms])',
    '\tffffffffa1100100 default_idle+0x9 ([kernel.kallsyms])',
    '',
    'swapper     0 [000] 123.458000:     250000 cycles:',
    '\tffffffffa1100000 native_safe_halt+0xb ([kernel.kallsyms])',
    '',
    'bash  1234 [001] 123.459000:     250000 cycles:',
    '\tffffffffa1999999 [unknown] ([kernel.kallsyms])',
    '',
  ].join('\n');
  const p = parseProfile(withChains);
  assert.equal(p.format, 'perf-script');
  assert.deepEqual([...p.weights].sort(), [
    ['do_syscall_64', 1],
    ['native_safe_halt', 2],
  ]);
  assert.equal(p.total, 3);

  const flat = [
    '            bash  1234 [001] 123.456789:     250000 cycles:  ffffffffa1234567 copy_page+0x7 ([kernel.kallsyms])',
    '            bash  1234 [001] 123.456999:     250000 cycles:  ffffffffa1234567 copy_page+0x10 ([kernel.kallsyms])',
    '         swapper     0 [000] 123.457000:     250000 cycles:  ffffffffa1100000 native_safe_halt+0xb ([kernel.kallsyms])',
  ].join('\n');
  const q = parseProfile(flat);
  assert.equal(q.format, 'perf-script');
  assert.deepEqual([...q.weights].sort(), [
    ['copy_page', 2],
    ['native_safe_halt', 1],
  ]);
});

test('profile: plain `symbol weight` lines; anything else is refused with its line', () => {
  const p = parseProfile('# hot paths\nschedule 120\n\ntry_to_wake_up 30.5\nschedule 5\nfoo.isra.0 1e2\n');
  assert.equal(p.format, 'plain');
  assert.equal(p.weights.get('schedule'), 125);
  assert.equal(p.weights.get('try_to_wake_up'), 30.5);
  assert.equal(p.weights.get('foo.isra.0'), 100);
  assert.equal(p.total, 255.5);
  assert.throws(
    () => parseProfile('schedule 120\nthis is not a profile line\n', 'hot.txt'),
    (e: unknown) => e instanceof KlpgenError && /^hot\.txt:2: not a profile/.test(e.message),
  );
  assert.throws(() => parseProfile('\n# only comments\n', 'empty.txt'), /empty\.txt: empty profile/);
});

const F = '/src/kernel/sched/core.c';
const clone = (from: string, fromOrder: number, to: string, toOrder: number, reason: string) =>
  `Callgraph clone;${from};${fromOrder};${F};10;1;${to};${toOrder};${F};20;1;${reason}`;

test('ipa-clones decisions: inlining lost and gained, calls deleted as-is, clones that disappear', () => {
  const asIs = parseIpaClones(
    [
      clone('helper', 1, 'caller_a', 2, 'inlining to'),
      clone('helper', 1, 'caller_b', 3, 'inlining to'),
      clone('big', 4, 'big.constprop.0', 9, 'constprop'),
      clone('split', 5, 'split.part.0', 10, 'part'),
      clone('rec', 6, 'rec', 11, 'inlining to'),
      'Callgraph removal;helper;1;/src/kernel/sched/core.c;10;1',
    ].join('\n'),
    'asis.ipa-clones',
  );
  const lp = parseIpaClones(
    [
      clone('helper', 1, 'caller_a', 2, 'inlining to'),
      // As-is, the calls to the empty stub were deleted (found const): no record there at all.
      clone('kasan_check_write', 7, 'caller_a', 2, 'inlining to'),
      clone('other', 8, 'caller_b', 3, 'inlining to'),
      clone('big', 4, 'big.constprop.3', 12, 'constprop'),
      clone('small', 13, 'small.isra.0', 14, 'isra'),
    ].join('\n'),
    'lp.ipa-clones',
  );
  // `other` is known to the as-is build (it has a body there), so gaining it is a real decision.
  const knownAsIs = new Set([
    'helper',
    'caller_a',
    'caller_b',
    'big',
    'big.constprop.*',
    'split',
    'split.part.*',
    'rec',
    'other',
  ]);
  const inlining = diffInlining('kernel/sched/core.c', inliningPairs(asIs), inliningPairs(lp), knownAsIs);
  assert.deepEqual(
    inlining.map((c) => `${c.change} ${c.callee} -> ${c.into}${c.callDeletedAsIs ? ' (deleted as-is)' : ''}`),
    ['gained kasan_check_write -> caller_a (deleted as-is)', 'lost helper -> caller_b', 'gained other -> caller_b'],
  );
  // Recursive inlining into itself is not a decision between functions.
  assert.equal(
    inlining.some((c) => c.callee === 'rec'),
    false,
  );

  const clones = diffClones('kernel/sched/core.c', asIs, lp);
  // big.constprop.0 vs big.constprop.3: the same decision, numbered differently.
  assert.deepEqual(
    clones.map((c) => `${c.change} ${c.clone} (${c.reason} of ${c.origin})`),
    ['appeared small.isra.0 (isra of small)', 'disappeared split.part.0 (part of split)'],
  );
});

test('objtool warnings: compared without offsets, as multisets', () => {
  const a = [
    'kernel/x.o: warning: objtool: foo+0x1d: unreachable instruction',
    'kernel/x.o: warning: objtool: bar()+0x40: call to baz() with UACCESS enabled',
  ];
  const l = [
    'kernel/x.o: warning: objtool: foo+0x21: unreachable instruction',
    'kernel/x.o: warning: objtool: foo+0x35: unreachable instruction',
    'kernel/x.o: warning: objtool: qux.cold+0x5: unreachable instruction',
  ];
  assert.deepEqual(
    diffObjtool('kernel/x.c', a, l).map((c) => `${c.change}: ${c.warning}`),
    [
      'disappeared: kernel/x.o: warning: objtool: bar()+0x40: call to baz() with UACCESS enabled',
      'appeared: kernel/x.o: warning: objtool: foo+0x35: unreachable instruction',
      'appeared: kernel/x.o: warning: objtool: qux.cold+0x5: unreachable instruction',
    ],
  );
});

test('objdump: instructions by section, prefixes kept in the mnemonic, comments and padding dropped', () => {
  const text = [
    '',
    'x.o:     file format elf64-x86-64',
    '',
    '',
    'Disassembly of section .text.foo:',
    '',
    '0000000000000000 <foo>:',
    '   0:\tcall   5 <foo+0x5>',
    '   5:\tlock orb $0x2,(%rbx)',
    '   9:\tbt     %r12,0x0(%rip)        # 11 <foo+0x11>',
    '  11:\tjmp    16 <foo+0x16>',
    '\t...',
    '',
    'Disassembly of section .text.unlikely.foo:',
    '',
    '0000000000000000 <foo.cold>:',
    '   0:\tud2',
  ].join('\n');
  const s = parseObjdump(text);
  assert.deepEqual([...s.keys()], ['.text.foo', '.text.unlikely.foo']);
  assert.deepEqual(s.get('.text.foo'), [
    { offset: 0, mnemonic: 'call', operands: '5 <foo+0x5>' },
    { offset: 5, mnemonic: 'lock orb', operands: '$0x2,(%rbx)' },
    { offset: 9, mnemonic: 'bt', operands: '%r12,0x0(%rip)' },
    { offset: 0x11, mnemonic: 'jmp', operands: '16 <foo+0x16>' },
  ]);
  assert.deepEqual(s.get('.text.unlikely.foo'), [{ offset: 0, mnemonic: 'ud2', operands: '' }]);
});
