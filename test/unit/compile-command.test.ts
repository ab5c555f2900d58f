/**
 * Kbuild command lines: shell splitting and quoting (src/util/shell.ts), the
 * .cmd file Kbuild writes per object, and the argv klpgen derives from it to
 * recompile a (copied, maybe patched) source file (src/target/compile-command.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { splitShellCommands, shellQuote } from '../../src/util/shell.js';
import { parseCmdFile, compileArgv, type CompileCommand } from '../../src/target/compile-command.js';
import { compilerDiagnostics } from '../../src/kmod/build.js';
import { KlpgenError } from '../../src/util/errors.js';

// ---------------------------------------------------------------- fixture

/** The target root the .cmd file was recorded under (a string only: nothing is read from it). */
const T = '/root/.cache/klpgen/targets/6.1.0-56';
const BUILD = `${T}/build`;
const SRC = `${T}/source/kernel/sched/core.c`;

/**
 * Excerpt of build/kernel/sched/.core.o.cmd as Kbuild (Linux 6.1, O= build)
 * wrote it: the command line verbatim, the source_ line, the deps_ block
 * (trimmed: a few $(wildcard ...) and header lines, including a path with
 * "..", a generated header relative to the object tree and the trailing
 * wildcard line before the blank line), then the rules and #SYMVER lines.
 */
const CMD_LINE =
  `gcc-12 -Wp,-MMD,kernel/sched/.core.o.d -nostdinc ` +
  `-I${T}/source/arch/x86/include -I./arch/x86/include/generated -I${T}/source/include -I./include ` +
  `-I${T}/source/arch/x86/include/uapi -I./arch/x86/include/generated/uapi -I${T}/source/include/uapi ` +
  `-I./include/generated/uapi -include ${T}/source/include/linux/compiler-version.h -include ` +
  `${T}/source/include/linux/kconfig.h -include ${T}/source/include/linux/compiler_types.h ` +
  `-D__KERNEL__ -fmacro-prefix-map=${T}/source/= -Wall -Wundef -Werror=strict-prototypes ` +
  `-Wno-trigraphs -fno-strict-aliasing -fno-common -fshort-wchar -fno-PIE ` +
  `-Werror=implicit-function-declaration -Werror=implicit-int -Werror=return-type -Wno-format-security ` +
  `-std=gnu11 -mno-sse -mno-mmx -mno-sse2 -mno-3dnow -mno-avx -fcf-protection=none -m64 ` +
  `-falign-jumps=1 -falign-loops=1 -mno-80387 -mno-fp-ret-in-387 -mpreferred-stack-boundary=3 ` +
  `-mskip-rax-setup -mtune=generic -mno-red-zone -mcmodel=kernel -Wno-sign-compare ` +
  `-fno-asynchronous-unwind-tables -mindirect-branch=thunk-extern -mindirect-branch-register ` +
  `-mindirect-branch-cs-prefix -mfunction-return=thunk-extern -fno-jump-tables -mharden-sls=all ` +
  `-fno-delete-null-pointer-checks -Wno-frame-address -Wno-format-truncation -Wno-format-overflow ` +
  `-Wno-address-of-packed-member -O2 -fno-allow-store-data-races -Wframe-larger-than=2048 ` +
  `-fstack-protector-strong -Wno-main -Wno-unused-but-set-variable -Wno-unused-const-variable ` +
  `-Wno-dangling-pointer -ftrivial-auto-var-init=zero -fno-stack-clash-protection -pg -mrecord-mcount ` +
  `-mfentry -DCC_USING_FENTRY -Wvla -Wno-pointer-sign -Wcast-function-type -Wno-stringop-truncation ` +
  `-Wno-stringop-overflow -Wno-restrict -Wno-maybe-uninitialized -Wno-array-bounds ` +
  `-Wno-alloc-size-larger-than -Wimplicit-fallthrough=5 -fno-strict-overflow -fno-stack-check ` +
  `-fconserve-stack -Werror=date-time -Werror=incompatible-pointer-types -Werror=designated-init ` +
  `-fno-builtin-wcslen -Wno-packed-not-aligned -g -Wno-unused-but-set-variable -I ` +
  `${T}/source/kernel/sched -I ./kernel/sched    -DKBUILD_MODFILE='"kernel/sched/core"' ` +
  `-DKBUILD_BASENAME='"core"' -DKBUILD_MODNAME='"core"' -D__KBUILD_MODNAME=kmod_core -c -o ` +
  `kernel/sched/core.o ${T}/source/kernel/sched/core.c   ; ./tools/objtool/objtool --hacks=jump_label ` +
  `--hacks=noinstr --orc --retpoline --rethunk --sls --static-call --uaccess   kernel/sched/core.o`;

const CMD_FILE = `cmd_kernel/sched/core.o := ${CMD_LINE}

source_kernel/sched/core.o := ${T}/source/kernel/sched/core.c

deps_kernel/sched/core.o := \\
    $(wildcard include/config/PREEMPT_DYNAMIC) \\
    $(wildcard include/config/GENERIC_ENTRY) \\
    $(wildcard include/config/KGDB_KDB) \\
  ${T}/source/include/linux/compiler-version.h \\
    $(wildcard include/config/CC_VERSION_TEXT) \\
  ${T}/source/include/linux/kconfig.h \\
    $(wildcard include/config/CPU_BIG_ENDIAN) \\
  ${T}/source/include/linux/compiler_types.h \\
  arch/x86/include/generated/asm/rwonce.h \\
  ${T}/source/include/asm-generic/rwonce.h \\
  ${T}/source/kernel/sched/../../io_uring/io-wq.h \\
    $(wildcard include/config/IO_WQ) \\
  ${T}/source/kernel/sched/../smpboot.h \\
    $(wildcard include/config/GENERIC_SMP_IDLE_THREAD) \\

kernel/sched/core.o: $(deps_kernel/sched/core.o)

$(deps_kernel/sched/core.o):

kernel/sched/core.o: $(wildcard ./tools/objtool/objtool)
#SYMVER __tracepoint_pelt_cfs_tp 0x3ca22ff7
#SYMVER sched_show_task 0xb4b09709
`;

const OBJTOOL = [
  './tools/objtool/objtool',
  '--hacks=jump_label',
  '--hacks=noinstr',
  '--orc',
  '--retpoline',
  '--rethunk',
  '--sls',
  '--static-call',
  '--uaccess',
  'kernel/sched/core.o',
];

// ---------------------------------------------------------------- splitShellCommands

test("split: Kbuild's '\"...\"' quoting gives the C string literal the compiler must see", () => {
  const cmds = splitShellCommands(
    `gcc-12 -I ./kernel/sched    -DKBUILD_MODFILE='"kernel/sched/core"' -DKBUILD_BASENAME='"core"' -DKBUILD_MODNAME='"core"' -c -o kernel/sched/core.o core.c`,
  );
  assert.deepEqual(cmds, [
    [
      'gcc-12',
      '-I',
      './kernel/sched',
      '-DKBUILD_MODFILE="kernel/sched/core"',
      '-DKBUILD_BASENAME="core"',
      '-DKBUILD_MODNAME="core"',
      '-c',
      '-o',
      'kernel/sched/core.o',
      'core.c',
    ],
  ]);
});

test('split: ; && and || separate commands', () => {
  assert.deepEqual(splitShellCommands('gcc -c -o a.o a.c   ; ./tools/objtool/objtool --orc   a.o'), [
    ['gcc', '-c', '-o', 'a.o', 'a.c'],
    ['./tools/objtool/objtool', '--orc', 'a.o'],
  ]);
  assert.deepEqual(splitShellCommands('a 1 && b 2 || c 3;d'), [['a', '1'], ['b', '2'], ['c', '3'], ['d']]);
  assert.deepEqual(splitShellCommands('a&&b'), [['a'], ['b']]);
  // Empty commands disappear.
  assert.deepEqual(splitShellCommands('a ;; b ;'), [['a'], ['b']]);
  assert.deepEqual(splitShellCommands(''), []);
  assert.deepEqual(splitShellCommands('   \t '), []);
});

test('split: separators inside quotes are literal', () => {
  assert.deepEqual(splitShellCommands(`echo 'a; b && c' "d || e;"`), [['echo', 'a; b && c', 'd || e;']]);
});

test('split: double quotes with backslash escapes', () => {
  // Shell text: echo "say \"hi\" \\ \$HOME \`x\` a\nb"
  const line = 'echo "say \\"hi\\" \\\\ \\$HOME \\`x\\` a\\nb"';
  assert.deepEqual(splitShellCommands(line), [['echo', 'say "hi" \\ $HOME `x` a\\nb']]);
  // Inside single quotes a backslash is literal.
  assert.deepEqual(splitShellCommands(`printf '%s\\n' x`), [['printf', '%s\\n', 'x']]);
});

test('split: backslash outside quotes, adjacent pieces, empty words, whitespace', () => {
  assert.deepEqual(splitShellCommands('a\\ b c\\;d'), [['a b', 'c;d']]);
  assert.deepEqual(splitShellCommands(`-D'A'"B"C x`), [['-DABC', 'x']]);
  assert.deepEqual(splitShellCommands(`'it'\\''s'`), [["it's"]]);
  assert.deepEqual(splitShellCommands(`a '' "" b`), [['a', '', '', 'b']]);
  assert.deepEqual(splitShellCommands('\ta\t\tb  \n c'), [['a', 'b', 'c']]);
});

test('split: single | and & are kept as text, not separators', () => {
  assert.deepEqual(splitShellCommands('a|b c&d'), [['a|b', 'c&d']]);
});

test('split: the recorded Kbuild command gives the compiler argv and objtool as post command', () => {
  const cmds = splitShellCommands(CMD_LINE);
  assert.equal(cmds.length, 2);
  const [cc, post] = cmds;
  assert.ok(cc && post);
  assert.equal(cc[0], 'gcc-12');
  assert.deepEqual(cc.slice(-8), [
    '-DKBUILD_MODFILE="kernel/sched/core"',
    '-DKBUILD_BASENAME="core"',
    '-DKBUILD_MODNAME="core"',
    '-D__KBUILD_MODNAME=kmod_core',
    '-c',
    '-o',
    'kernel/sched/core.o',
    SRC,
  ]);
  assert.ok(
    cc.every((w) => w !== '' && !/\s/.test(w)),
    'no empty or blank words',
  );
  assert.ok(!cc.some((w) => w.includes("'")), 'no shell quote survives');
  assert.deepEqual(post, OBJTOOL);
});

// ---------------------------------------------------------------- shellQuote

test('shellQuote leaves plain words alone', () => {
  for (const w of [
    'gcc-12',
    '-O2',
    '-Wp,-MMD,kernel/sched/.core.o.d',
    '-D__KERNEL__',
    'a=b',
    '@x',
    '50%',
    'c++',
    '/a/b:c',
  ]) {
    assert.equal(shellQuote(w), w);
  }
});

test('shellQuote quotes everything else', () => {
  assert.equal(shellQuote('-DKBUILD_MODFILE="kernel/sched/core"'), `'-DKBUILD_MODFILE="kernel/sched/core"'`);
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(shellQuote(''), "''");
  assert.equal(shellQuote('a b'), "'a b'");
  assert.equal(shellQuote('$HOME'), "'$HOME'");
  assert.equal(shellQuote('~'), "'~'");
});

const AWKWARD = [
  '-DKBUILD_MODFILE="kernel/sched/core"',
  "it's",
  "''",
  '',
  'a b',
  ' lead',
  '$HOME',
  '`id`',
  '\\',
  'a\\b',
  '"',
  '*',
  '~root',
  '#x',
  'a;b',
  'a&&b',
  'a||b',
  'line1\nline2',
  'tab\there',
  '!',
  '(x)',
  '{a,b}',
  '%s\\n',
  'plain',
];

test('shellQuote round-trips through splitShellCommands', () => {
  for (const w of AWKWARD) {
    assert.deepEqual(splitShellCommands(`cmd ${shellQuote(w)} end`), [['cmd', w, 'end']], JSON.stringify(w));
  }
  assert.deepEqual(splitShellCommands(AWKWARD.map(shellQuote).join(' ')), [AWKWARD]);
});

test(
  'shellQuote round-trips through a real shell',
  { skip: spawnSync('sh', ['-c', 'true']).status === 0 ? false : 'no sh' },
  () => {
    const r = spawnSync('sh', ['-c', `printf '%s\\0' ${AWKWARD.map(shellQuote).join(' ')}`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\0').slice(0, -1), AWKWARD);
  },
);

// ---------------------------------------------------------------- parseCmdFile

test('parseCmdFile: source, object, argv, post and deps from a real .cmd file', () => {
  const c = parseCmdFile(CMD_FILE, 'kernel/sched/core.c', BUILD);
  assert.equal(c.file, 'kernel/sched/core.c');
  assert.equal(c.cwd, BUILD);
  assert.equal(c.source, SRC);
  assert.equal(c.object, `${BUILD}/kernel/sched/core.o`);
  assert.deepEqual(c.post, [OBJTOOL]);
  assert.equal(c.argv[0], 'gcc-12');
  assert.equal(c.argv[1], '-Wp,-MMD,kernel/sched/.core.o.d');
  assert.equal(c.argv.at(-1), SRC);
  assert.ok(c.argv.includes('-DKBUILD_MODFILE="kernel/sched/core"'));
  assert.ok(c.argv.includes('-DKBUILD_BASENAME="core"'));
  assert.ok(!c.argv.includes(';'));
  assert.deepEqual(c.deps, [
    `${T}/source/include/linux/compiler-version.h`,
    `${T}/source/include/linux/kconfig.h`,
    `${T}/source/include/linux/compiler_types.h`,
    'arch/x86/include/generated/asm/rwonce.h',
    `${T}/source/include/asm-generic/rwonce.h`,
    `${T}/source/kernel/sched/../../io_uring/io-wq.h`,
    `${T}/source/kernel/sched/../smpboot.h`,
  ]);
});

test('parseCmdFile: savedcmd_ (Linux >= 6.3) is read too', () => {
  const c = parseCmdFile(CMD_FILE.replace(/^cmd_/, 'savedcmd_'), 'kernel/sched/core.c', BUILD);
  assert.equal(c.source, SRC);
  assert.deepEqual(c.post, [OBJTOOL]);
  assert.equal(c.deps.length, 7);
});

test('parseCmdFile: a relative source (in-tree build) is found', () => {
  const text = `cmd_lib/sort.o := gcc -Wp,-MMD,lib/.sort.o.d -nostdinc -O2 -c -o lib/sort.o lib/sort.c\n\n`;
  const c = parseCmdFile(text, 'lib/sort.c', '/k');
  assert.equal(c.source, 'lib/sort.c');
  assert.equal(c.object, '/k/lib/sort.o');
  assert.deepEqual(c.post, []);
  assert.deepEqual(c.deps, []);
});

test('parseCmdFile: a .cmd text lacking the command is a KlpgenError', () => {
  const noCmd = CMD_FILE.split('\n').slice(1).join('\n');
  const isErr = (re: RegExp) => (e: unknown) => {
    assert.ok(e instanceof KlpgenError, String(e));
    assert.match(e.message, re);
    return true;
  };
  assert.throws(
    () => parseCmdFile(noCmd, 'kernel/sched/core.c', BUILD),
    isErr(/kernel\/sched\/core\.c: no compile command/),
  );
  assert.throws(() => parseCmdFile('', 'kernel/sched/core.c', BUILD), isErr(/no compile command/));
  // Another object's .cmd does not count ('.' in the name is not a wildcard).
  assert.throws(() => parseCmdFile(CMD_FILE, 'kernel/sched/fair.c', BUILD), isErr(/no compile command/));
  assert.throws(
    () =>
      parseCmdFile(
        CMD_FILE.replace('cmd_kernel/sched/core.o', 'cmd_kernel/sched/corexo'),
        'kernel/sched/core.c',
        BUILD,
      ),
    isErr(/no compile command/),
  );
  // A command that never names the source.
  assert.throws(
    () =>
      parseCmdFile('cmd_kernel/sched/core.o := gcc -c -o kernel/sched/core.o other.c\n', 'kernel/sched/core.c', BUILD),
    isErr(/does not name the source/),
  );
  assert.throws(
    () => parseCmdFile('cmd_kernel/sched/core.o := ;\n', 'kernel/sched/core.c', BUILD),
    isErr(/kernel\/sched\/core\.c/),
  );
});

// ---------------------------------------------------------------- compileArgv

function cmd(): CompileCommand {
  return parseCmdFile(CMD_FILE, 'kernel/sched/core.c', BUILD);
}

/** Kbuild's argv minus what compileArgv must drop, spelled out. */
function kbuildKept(c: CompileCommand): string[] {
  const dropped = ['-Wp,-MMD,kernel/sched/.core.o.d', '-c', '-o', 'kernel/sched/core.o', SRC];
  return c.argv.filter((a) => !dropped.includes(a));
}

test("compileArgv: same source, new output: Kbuild's flags, then -c -o OUT SRC", () => {
  const c = cmd();
  const out = compileArgv(c, { output: '/tmp/w/core.o' });
  assert.deepEqual(out, [...kbuildKept(c), '-c', '-o', '/tmp/w/core.o', SRC]);
  assert.equal(out[0], 'gcc-12');
  assert.ok(!out.some((a) => a.startsWith('-Wp,-MMD,')));
  assert.ok(!out.includes('kernel/sched/core.o'), "the object tree's output is gone");
  assert.equal(out.filter((a) => a === '-c').length, 1);
  assert.equal(out.filter((a) => a === '-o').length, 1);
  assert.equal(out.filter((a) => a === SRC).length, 1);
  assert.ok(!out.includes('-iquote'));
  assert.ok(out.includes('-DKBUILD_MODFILE="kernel/sched/core"'));
  assert.equal(out.length, c.argv.length - 1);
});

test('compileArgv: a copy is compiled with -iquote <original dir> and its root mapped away', () => {
  const c = cmd();
  const copy = '/tmp/w/patched/kernel/sched/core.c';
  for (const root of ['/tmp/w/patched', '/tmp/w/patched/']) {
    const out = compileArgv(c, {
      source: copy,
      sourceRoot: root,
      output: '/tmp/w/core.o',
      extraFlags: ['-fdump-ipa-clones', '-ffunction-sections'],
    });
    assert.deepEqual(
      out,
      [
        ...kbuildKept(c),
        '-iquote',
        `${T}/source/kernel/sched`,
        '-fmacro-prefix-map=/tmp/w/patched/=',
        '-fdump-ipa-clones',
        '-ffunction-sections',
        '-c',
        '-o',
        '/tmp/w/core.o',
        copy,
      ],
      root,
    );
    assert.ok(!out.includes(SRC), 'the original source is not compiled');
    // Kbuild's own prefix map stays, and ours comes after it.
    const kb = out.indexOf(`-fmacro-prefix-map=${T}/source/=`);
    assert.ok(kb >= 0 && kb < out.indexOf('-fmacro-prefix-map=/tmp/w/patched/='));
  }
});

test('compileArgv: without sourceRoot there is no extra prefix map', () => {
  const c = cmd();
  const out = compileArgv(c, { source: '/tmp/x/core.c', output: '/tmp/x/core.o' });
  assert.deepEqual(out.slice(-6), [
    '-iquote',
    `${T}/source/kernel/sched`,
    '-c',
    '-o',
    '/tmp/x/core.o',
    '/tmp/x/core.c',
  ]);
  assert.equal(out.filter((a) => a.startsWith('-fmacro-prefix-map=')).length, 1);
});

test("compileArgv: extra flags come after all of Kbuild's, so they win", () => {
  const c = cmd();
  const out = compileArgv(c, { output: 'o.o', extraFlags: ['-O0', '-g0'] });
  const lastKbuild = kbuildKept(c).length - 1;
  assert.equal(out.indexOf('-O0'), lastKbuild + 1);
  assert.equal(out.indexOf('-g0'), lastKbuild + 2);
  assert.ok(out.indexOf('-O2') < out.indexOf('-O0'));
  assert.deepEqual(out.slice(-4), ['-c', '-o', 'o.o', SRC]);
});

test('compileArgv: preprocess gives -E -o OUT SRC', () => {
  const c = cmd();
  const out = compileArgv(c, { source: '/w/core.c', sourceRoot: '/w', output: '/w/core.i', preprocess: true });
  assert.deepEqual(out.slice(-4), ['-E', '-o', '/w/core.i', '/w/core.c']);
  assert.ok(!out.includes('-c'));
});

test('compileArgv does not modify the command', () => {
  const c = cmd();
  const before = JSON.stringify(c);
  compileArgv(c, { source: '/w/core.c', sourceRoot: '/w', output: '/w/core.o', extraFlags: ['-x'] });
  assert.equal(JSON.stringify(c), before);
});

// ---------------------------------------------------------------- compilerDiagnostics (src/kmod/build.ts)

const MAKE_ERROR = `make: Entering directory '/usr/src/linux-headers-6.1.0-56-amd64'
  CC [M]  /tmp/mod/hello.o
/tmp/mod/hello.c: In function 'hello_init':
/tmp/mod/hello.c:7:9: error: 'undeclared_thing' undeclared (first use in this function)
    7 |         undeclared_thing = 1;
      |         ^~~~~~~~~~~~~~~~
/tmp/mod/hello.c:7:9: note: each undeclared identifier is reported only once for each function it appears in
make[2]: *** [/usr/src/linux-headers-6.1.0-56-common/scripts/Makefile.build:250: /tmp/mod/hello.o] Error 1
make[1]: *** [/usr/src/linux-headers-6.1.0-56-common/Makefile:2012: /tmp/mod] Error 2
make: *** [/usr/src/linux-headers-6.1.0-56-common/Makefile:238: __sub-make] Error 2
make: Leaving directory '/usr/src/linux-headers-6.1.0-56-amd64'
`;

test("compilerDiagnostics: starts at the compiler's error region, not make's chatter", () => {
  const d = compilerDiagnostics(MAKE_ERROR);
  const lines = d.split('\n');
  assert.equal(lines[0], "/tmp/mod/hello.c: In function 'hello_init':");
  assert.equal(lines[1], "/tmp/mod/hello.c:7:9: error: 'undeclared_thing' undeclared (first use in this function)");
  assert.ok(d.includes('    7 |         undeclared_thing = 1;'));
  assert.ok(!d.includes('Entering directory'));
  assert.ok(!d.includes('CC [M]'));
  assert.ok(!d.endsWith('\n'));
});

test('compilerDiagnostics: a fatal error without "In function" starts the region', () => {
  const out = `make: Entering directory '/usr/src/linux-headers-6.1.0-56-amd64'
  CC [M]  /tmp/mod/hello.o
/tmp/mod/hello.c:1:10: fatal error: nosuch.h: No such file or directory
    1 | #include <nosuch.h>
      |          ^~~~~~~~~~
compilation terminated.
make[2]: *** [scripts/Makefile.build:250: /tmp/mod/hello.o] Error 1
`;
  const d = compilerDiagnostics(out);
  assert.ok(d.startsWith('/tmp/mod/hello.c:1:10: fatal error: nosuch.h: No such file or directory\n'), d);
  assert.ok(d.includes('compilation terminated.'));
});

test('compilerDiagnostics: the region starts at the first error, even after many warnings', () => {
  const out = `  CC [M]  /tmp/mod/hello.o
/tmp/mod/hello.c:3:13: warning: 'unused' defined but not used [-Wunused-function]
    3 | static void unused(void) {}
      |             ^~~~~~
/tmp/mod/hello.c:9:1: error: expected ';' before '}' token
make[2]: *** [scripts/Makefile.build:250: /tmp/mod/hello.o] Error 1
`;
  const d = compilerDiagnostics(out);
  assert.match(d, /^\/tmp\/mod\/hello\.c:9:1: error: expected ';' before '}' token/);
  const warnings = Array.from({ length: 15 }, (_, i) => `/tmp/m/a.c:${i + 1}:1: warning: w${i}\n  x\n  ^`).join('\n');
  const many = compilerDiagnostics(`${warnings}\n/tmp/m/a.c:40:1: error: expected ';' before '}' token\n`);
  assert.match(many, /a\.c:40:1: error: expected ';'/);
});

test("compilerDiagnostics: at most 40 lines from the region's start", () => {
  const tail = Array.from({ length: 100 }, (_, i) => `note line ${i}`);
  const d = compilerDiagnostics(`make: Entering directory '/x'\n/tmp/m/a.c:1:1: error: boom\n${tail.join('\n')}\n`);
  const lines = d.split('\n');
  assert.equal(lines.length, 40);
  assert.equal(lines[0], '/tmp/m/a.c:1:1: error: boom');
  assert.equal(lines[39], 'note line 38');
});

test("compilerDiagnostics: without compiler diagnostics, make's last lines", () => {
  const lines = Array.from({ length: 30 }, (_, i) => `make line ${i}`);
  lines.push('ERROR: modpost: "undefined_fn" [/tmp/mod/hello.ko] undefined!');
  const d = compilerDiagnostics(`${lines.join('\n')}\n`);
  assert.ok(d.endsWith('ERROR: modpost: "undefined_fn" [/tmp/mod/hello.ko] undefined!'), d);
  assert.ok(d.includes('make line 29'));
  assert.ok(!d.includes('make line 5\n'));
  assert.ok(d.split('\n').length <= 20);
  assert.equal(compilerDiagnostics(''), '');
  assert.equal(compilerDiagnostics('only line'), 'only line');
});
