import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { TuModel } from '../../src/frontend/model.js';
import { ensureTarget, klpgen } from '../helpers.js';

test('klpgen tu --json: the model of fs/proc/cmdline.c', () => {
  const t = ensureTarget();
  const r = klpgen(['tu', 'fs/proc/cmdline.c', '--abi', t.abi, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout) as TuModel;
  assert.equal(m.file, 'fs/proc/cmdline.c');
  assert.deepEqual(m.unresolved, []);
  const own = m.entities.filter((e) => e.span.file === 'fs/proc/cmdline.c');
  const show = own.find((e) => e.name === 'cmdline_proc_show');
  assert.ok(show, 'cmdline_proc_show missing');
  assert.equal(show.kind, 'function');
  assert.equal(show.linkage, 'internal');
  assert.equal(show.definition, true);
  assert.equal(show.span.line, 7);
  assert.ok(show.span.endLine > show.span.line);
  for (const ref of ['function:seq_puts', 'function:seq_putc', 'variable:saved_command_line', 'struct:seq_file']) {
    assert.ok(show.refs.includes(ref), `cmdline_proc_show lacks ${ref}: ${show.refs.join(' ')}`);
  }
  const init = own.find((e) => e.name === 'proc_cmdline_init');
  assert.equal(init?.flags.init, true, 'proc_cmdline_init is __init');
  assert.equal(init?.flags.section, '.init.text');
  // A declaration from a header, with its header span.
  const seqPuts = m.entities.find((e) => e.name === 'seq_puts');
  assert.equal(seqPuts?.span.file, 'include/linux/seq_file.h');
  assert.equal(seqPuts?.definition, false);
  assert.equal(seqPuts?.linkage, 'external');
});

test('klpgen tu: a macro-made function spans the macro invocation, macros of the .c are listed', () => {
  const t = ensureTarget();
  const r = klpgen(['tu', 'kernel/fork.c', '--abi', t.abi, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout) as TuModel;
  // SYSCALL_DEFINE0(fork) expands to __do_sys_fork & co. on the invocation's line.
  const source = readFileSync(`${t.paths.source}/kernel/fork.c`, 'utf8').split('\n');
  const invocation = source.findIndex((l) => l.startsWith('SYSCALL_DEFINE0(fork)')) + 1;
  assert.ok(invocation > 0);
  const doFork = m.entities.find((e) => e.name === '__do_sys_fork' && e.definition);
  assert.ok(doFork, '__do_sys_fork missing');
  assert.equal(doFork.span.file, 'kernel/fork.c');
  assert.equal(doFork.span.line, invocation);
  assert.ok(doFork.span.endLine > invocation, 'the body follows the invocation');
  // The syscall entry points are aliases gcc emits as symbols: definitions.
  const x64 = m.entities.find((e) => e.name === '__x64_sys_fork' && e.definition);
  assert.equal(x64?.flags.alias, '__do_sys_fork');
  assert.equal(x64?.linkage, 'external');
  assert.equal(x64?.span.line, invocation);
  assert.ok(m.macros.length > 0, 'no macros read from kernel/fork.c');
  assert.ok(m.macros.every((mac) => mac.kind === 'macro' && mac.line > 0));
});

test('klpgen tu: errors are one line', () => {
  const t = ensureTarget();
  const r = klpgen(['tu', 'kernel/nope.c', '--abi', t.abi]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^klpgen: error: kernel\/nope\.c: no such file/);
});
