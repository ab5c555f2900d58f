/**
 * The VM side without a VM: the initramfs (our cpio writer checked by GNU
 * cpio, the init script checked by busybox's parser) and the interpretation
 * of the init's result lines and the kernel console.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpioArchive, S_IFDIR, S_IFLNK, S_IFREG, type CpioEntry } from '../../src/vm/cpio.js';
import { BUSYBOX, buildInitramfs, initScript, moduleKey, type InitramfsSpec } from '../../src/vm/initramfs.js';
import { formatVmReport, interpret } from '../../src/vm/vm-test.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'klpgen-vm-'));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const HAVE_CPIO = has('cpio', ['--version']);
const HAVE_BUSYBOX = existsSync(BUSYBOX) && has(BUSYBOX, ['true']);

function sub(name: string): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  return d;
}

function cpioList(archive: Buffer): string[] {
  const r = spawnSync('cpio', ['-it', '--quiet'], { input: archive, encoding: 'utf8' });
  assert.equal(r.status, 0, `cpio -it: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

function cpioExtract(archive: Buffer, into: string): void {
  const r = spawnSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], {
    input: archive,
    cwd: into,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `cpio -idm: ${r.stderr}`);
  assert.equal(r.stderr, '', 'cpio complains about nothing');
}

// ---------------------------------------------------------------- cpio

const BINARY = Buffer.from(Array.from({ length: 1021 }, (_, i) => (i * 7) & 0xff));

function sampleEntries(): CpioEntry[] {
  return [
    { path: 'bin', mode: S_IFDIR | 0o755 },
    { path: 'etc', mode: S_IFDIR | 0o755 },
    { path: 'etc/deep', mode: S_IFDIR | 0o700 },
    { path: 'bin/run', mode: S_IFREG | 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
    { path: 'bin/sh', mode: S_IFLNK | 0o777, linkTarget: 'run' },
    { path: 'etc/hello.txt', mode: S_IFREG | 0o644, data: Buffer.from('hello\n') },
    { path: 'etc/deep/blob.bin', mode: S_IFREG | 0o600, data: BINARY },
    { path: 'etc/empty', mode: S_IFREG | 0o644 },
    { path: '/top.txt', mode: S_IFREG | 0o644, data: Buffer.from('abc') },
    { path: 'etc/a-longer-name-of-odd-length.conf', mode: S_IFREG | 0o644, data: Buffer.from('x=1\n'.repeat(3)) },
  ];
}

test('cpio: newc framing (magic, 4-byte alignment, trailer)', () => {
  const a = cpioArchive(sampleEntries());
  assert.equal(a.subarray(0, 6).toString('ascii'), '070701');
  assert.equal(a.length % 4, 0);
  assert.ok(a.includes(Buffer.from('TRAILER!!!\0')));
  // Every header starts on a 4-byte boundary: count the magics at aligned offsets.
  let headers = 0;
  for (let off = 0; off + 6 <= a.length; off += 4)
    if (a.subarray(off, off + 6).toString('latin1') === '070701') headers++;
  assert.equal(headers, sampleEntries().length + 1);
  // The first header: ino 1, mode 040755, uid/gid 0, nlink 2, mtime 0, size 0, name "bin\0" (4 bytes).
  const h = a.subarray(6, 110).toString('ascii');
  const field = (i: number) => parseInt(h.slice(i * 8, i * 8 + 8), 16);
  assert.equal(field(0), 1);
  assert.equal(field(1), S_IFDIR | 0o755);
  assert.equal(field(2), 0);
  assert.equal(field(3), 0);
  assert.equal(field(4), 2);
  assert.equal(field(5), 0);
  assert.equal(field(6), 0);
  assert.equal(field(11), 4);
  assert.equal(a.subarray(110, 114).toString('latin1'), 'bin\0');
});

test('cpio: the same input gives identical bytes', () => {
  const a = cpioArchive(sampleEntries());
  const b = cpioArchive(sampleEntries());
  assert.ok(a.equals(b));
  const c = cpioArchive(
    sampleEntries().map((e) => (e.path === 'etc/hello.txt' ? { ...e, data: Buffer.from('hellO\n') } : e)),
  );
  assert.ok(!a.equals(c), 'the contents are in the bytes');
  assert.equal(a.length, c.length);
});

test('cpio: an empty archive is just the trailer', { skip: HAVE_CPIO ? false : 'cpio not installed' }, () => {
  const a = cpioArchive([]);
  assert.equal(a.length % 4, 0);
  assert.deepEqual(cpioList(a), []);
});

test('cpio -it lists every entry in order', { skip: HAVE_CPIO ? false : 'cpio not installed' }, () => {
  assert.deepEqual(cpioList(cpioArchive(sampleEntries())), [
    'bin',
    'etc',
    'etc/deep',
    'bin/run',
    'bin/sh',
    'etc/hello.txt',
    'etc/deep/blob.bin',
    'etc/empty',
    'top.txt',
    'etc/a-longer-name-of-odd-length.conf',
  ]);
});

test('cpio -idm extracts contents, symlinks and modes', { skip: HAVE_CPIO ? false : 'cpio not installed' }, () => {
  const out = sub('extract');
  cpioExtract(cpioArchive(sampleEntries()), out);
  assert.equal(readFileSync(join(out, 'etc/hello.txt'), 'utf8'), 'hello\n');
  assert.ok(readFileSync(join(out, 'etc/deep/blob.bin')).equals(BINARY));
  assert.equal(readFileSync(join(out, 'etc/empty')).length, 0);
  assert.equal(readFileSync(join(out, 'top.txt'), 'utf8'), 'abc');
  assert.equal(readFileSync(join(out, 'etc/a-longer-name-of-odd-length.conf'), 'utf8'), 'x=1\nx=1\nx=1\n');
  assert.equal(readFileSync(join(out, 'bin/run'), 'utf8'), '#!/bin/sh\necho hi\n');

  assert.ok(lstatSync(join(out, 'bin/sh')).isSymbolicLink());
  assert.equal(readlinkSync(join(out, 'bin/sh')), 'run');
  assert.ok(statSync(join(out, 'etc/deep')).isDirectory());

  const perm = (p: string) => statSync(join(out, p)).mode & 0o777;
  assert.equal(perm('bin/run'), 0o755);
  assert.ok((perm('bin/run') & 0o111) !== 0, 'executable');
  assert.equal(perm('etc/hello.txt') & 0o111, 0, 'not executable');
  assert.equal(perm('etc/deep/blob.bin'), 0o600);
  assert.equal(perm('etc/deep'), 0o700);
  // -m: the archive's fixed mtime (0) is applied to files.
  assert.equal(statSync(join(out, 'etc/hello.txt')).mtimeMs, 0);
});

// ---------------------------------------------------------------- moduleKey

test('moduleKey: - and _ are the same, compression suffixes go', () => {
  assert.equal(moduleKey('livepatch-sample'), 'livepatch_sample');
  assert.equal(moduleKey('livepatch_sample'), 'livepatch_sample');
  assert.equal(moduleKey('livepatch-sample.ko'), 'livepatch_sample');
  assert.equal(moduleKey('snd-hda-intel.ko.xz'), 'snd_hda_intel');
  assert.equal(moduleKey('dm-mod.ko.zst'), 'dm_mod');
  assert.equal(moduleKey('nf_conntrack.ko.gz'), 'nf_conntrack');
  assert.equal(moduleKey('xfs.ko'), 'xfs');
  assert.equal(moduleKey('xfs'), 'xfs');
  // Only a suffix is removed.
  assert.equal(moduleKey('kob.ko'), 'kob');
  assert.equal(moduleKey('a.kox'), 'a.kox');
  assert.equal(moduleKey(moduleKey('a-b.ko.xz')), 'a_b');
});

// ---------------------------------------------------------------- init script

const SPEC: InitramfsSpec = {
  kernelRelease: '6.1.0-56-amd64',
  bootstrap: [
    { name: 'virtio_pci_modern_dev', path: '/m/virtio_pci_modern_dev.ko' },
    { name: 'virtio_pci', path: '/m/virtio_pci.ko' },
    { name: '9pnet', path: '/m/9pnet.ko' },
    { name: '9pnet_virtio', path: '/m/9pnet_virtio.ko' },
    { name: '9p', path: '/m/9p.ko' },
  ],
  preload: ['dm_mod', 'snd-hda-intel'],
  livepatches: [
    { name: 'livepatch_a', path: '/p/a.ko' },
    { name: 'livepatch_b', path: '/p/b.ko' },
  ],
  testScript: '/t/test.sh',
  testTimeoutSeconds: 60,
  transitionTimeoutSeconds: 30,
};

/** Index of the single line containing `s` (fails when absent or repeated). */
function lineOf(lines: string[], s: string): number {
  const hits = lines.flatMap((l, i) => (l.includes(s) ? [i] : []));
  assert.equal(hits.length, 1, `exactly one line with ${JSON.stringify(s)}: ${hits.length}`);
  return hits[0] as number;
}

test('initScript: bootstrap, mount, preload, load, test, disable in reverse, unload, done', () => {
  const script = initScript(SPEC);
  const lines = script.split('\n');
  assert.equal(lines[0], '#!/bin/busybox sh');
  assert.ok(script.endsWith('\n'));

  const booted = lineOf(lines, 'say booted $(uname -r)');
  const boot = SPEC.bootstrap.map((m) => lineOf(lines, `insmod /klpgen/boot/${m.name}.ko`));
  const mount = lineOf(
    lines,
    'mount -t 9p -o trans=virtio,version=9p2000.L,ro klpgen_modules /lib/modules/6.1.0-56-amd64; say modules $?',
  );
  const pre1 = lineOf(lines, `modprobe 'dm_mod'; say preload 'dm_mod' $?`);
  const pre2 = lineOf(lines, `modprobe 'snd-hda-intel'; say preload 'snd-hda-intel' $?`);
  const lsmod = lineOf(lines, 'say lsmod ');
  const testBefore = lines.indexOf('run_test before');
  const loadA = lineOf(lines, 'insmod /klpgen/patch/livepatch_a.ko');
  const loadB = lineOf(lines, 'insmod /klpgen/patch/livepatch_b.ko');
  const testAfter = lines.indexOf('run_test after');
  const disA = lineOf(lines, 'echo 0 > /sys/kernel/livepatch/livepatch_a/enabled');
  const disB = lineOf(lines, 'echo 0 > /sys/kernel/livepatch/livepatch_b/enabled');
  const rmA = lineOf(lines, 'rmmod livepatch_a;');
  const rmB = lineOf(lines, 'rmmod livepatch_b;');
  const testUnloaded = lines.indexOf('run_test unloaded');
  const done = lines.indexOf('say done');
  const off = lines.indexOf('poweroff -f');
  const order = [
    booted,
    ...boot,
    mount,
    pre1,
    pre2,
    lsmod,
    testBefore,
    loadA,
    loadB,
    testAfter,
    disB,
    rmB,
    disA,
    rmA,
    testUnloaded,
    done,
    off,
  ];
  assert.ok(
    order.every((i) => i >= 0),
    JSON.stringify(order),
  );
  assert.deepEqual(
    [...order].sort((x, y) => x - y),
    order,
    `order: ${JSON.stringify(order)}`,
  );

  // One insmod per bootstrap module and per livepatch, nothing else; preloads go through modprobe.
  assert.equal(lines.filter((l) => l.includes('insmod ')).length, SPEC.bootstrap.length + 2);
  assert.equal(lines.filter((l) => l.includes('modprobe ') && !l.includes('/proc/sys/kernel/modprobe')).length, 2);
  assert.equal(lines.filter((l) => l.includes('rmmod ')).length, 2);
  // Each result goes through say with the module's name and the command's status.
  assert.match(lines[loadA] as string, /say load livepatch_a \$rc/);
  assert.match(
    lines[loadA + 1] as string,
    /wait_transition \/sys\/kernel\/livepatch\/livepatch_a; say transition livepatch_a \$\?/,
  );
  assert.match(lines[disB] as string, /say disabled livepatch_b \$\?/);
  assert.match(lines[rmB] as string, /say unload livepatch_b \$\?/);
  // Results go to the second serial port.
  assert.ok(lines.includes('R=/dev/ttyS1'));
});

test('initScript: the timeouts are in the script', () => {
  const script = initScript({ ...SPEC, testTimeoutSeconds: 17, transitionTimeoutSeconds: 9 });
  assert.match(script, /timeout 17 sh \/klpgen\/test/);
  // Polled every 0.1 s: 9 s is 90 polls.
  assert.equal(script.match(/\[ \$i -gt 90 \]/g)?.length, 2);
});

test('initScript without preload modules has no modprobe of its own', () => {
  const script = initScript({ ...SPEC, preload: [], livepatches: [{ name: 'livepatch_sample', path: '/p/s.ko' }] });
  const lines = script.split('\n');
  assert.ok(!lines.some((l) => l.startsWith('modprobe ')));
  assert.ok(!script.includes('say preload'));
  assert.equal(lines.filter((l) => l.includes('insmod /klpgen/patch/')).length, 1);
  assert.equal(lines.filter((l) => l.includes('rmmod livepatch_sample')).length, 1);
});

test('initScript parses with busybox sh -n', { skip: HAVE_BUSYBOX ? false : 'busybox not installed' }, () => {
  const d = sub('init');
  const check = (name: string, text: string) => {
    const f = join(d, name);
    writeFileSync(f, text);
    return spawnSync(BUSYBOX, ['sh', '-n', f], { encoding: 'utf8' });
  };
  const specs: InitramfsSpec[] = [
    SPEC,
    { ...SPEC, preload: [], bootstrap: [] },
    { ...SPEC, livepatches: [SPEC.livepatches[0]!], preload: ["odd'name"] },
  ];
  for (const [i, spec] of specs.entries()) {
    const r = check(`init${i}`, initScript(spec));
    assert.equal(r.status, 0, `busybox sh -n: ${r.stderr}`);
    assert.equal(r.stderr, '');
  }
  // The check can fail: a script with a syntax error is refused.
  const bad = check('bad', initScript(SPEC).replace('run_test after', 'if run_test after'));
  assert.notEqual(bad.status, 0);
});

test(
  'buildInitramfs: busybox, /init and the modules, as cpio sees them',
  { skip: HAVE_CPIO && HAVE_BUSYBOX ? false : 'cpio or busybox missing' },
  () => {
    const d = sub('initramfs');
    const write = (name: string, text: string) => {
      const f = join(d, name);
      writeFileSync(f, text);
      return f;
    };
    const spec: InitramfsSpec = {
      kernelRelease: '6.1.0-56-amd64',
      bootstrap: [
        { name: '9pnet', path: write('9pnet.ko', 'fake 9pnet\n') },
        { name: '9p', path: write('9p.ko', 'fake 9p\n') },
      ],
      preload: ['dm_mod'],
      livepatches: [
        { name: 'livepatch_a', path: write('a.ko', 'fake patch a\n') },
        { name: 'livepatch_b', path: write('b.ko', 'fake patch b\n') },
      ],
      testScript: write('test.sh', '#!/bin/bash\ngrep -q patched /proc/cmdline\n'),
      testTimeoutSeconds: 5,
      transitionTimeoutSeconds: 3,
    };
    const archive = buildInitramfs(spec);
    assert.ok(archive.equals(buildInitramfs(spec)), 'deterministic');
    const names = cpioList(archive);
    for (const n of [
      'bin',
      'dev',
      'proc',
      'sys',
      'tmp',
      'bin/busybox',
      'bin/sh',
      'init',
      'klpgen/boot/9pnet.ko',
      'klpgen/boot/9p.ko',
      'klpgen/patch/livepatch_a.ko',
      'klpgen/patch/livepatch_b.ko',
      'klpgen/test',
    ]) {
      assert.ok(names.includes(n), `${n} in ${names.join(' ')}`);
    }
    // Preloaded modules come from the module tree, not the initramfs.
    assert.ok(!names.some((n) => n.includes('dm_mod')));
    // Directories come before what is inside them.
    assert.ok(names.indexOf('klpgen/patch') < names.indexOf('klpgen/patch/livepatch_a.ko'));

    const out = sub('initramfs-x');
    cpioExtract(archive, out);
    assert.equal(readFileSync(join(out, 'init'), 'utf8'), initScript(spec));
    assert.ok((statSync(join(out, 'init')).mode & 0o111) !== 0, '/init is executable');
    assert.ok((statSync(join(out, 'klpgen/test')).mode & 0o111) !== 0, 'the test is executable');
    assert.equal(readlinkSync(join(out, 'bin/sh')), 'busybox');
    assert.ok(readFileSync(join(out, 'bin/busybox')).equals(readFileSync(BUSYBOX)));
    assert.equal(readFileSync(join(out, 'klpgen/boot/9p.ko'), 'utf8'), 'fake 9p\n');
    assert.equal(readFileSync(join(out, 'klpgen/patch/livepatch_b.ko'), 'utf8'), 'fake patch b\n');
    const sh = spawnSync(BUSYBOX, ['sh', '-n', join(out, 'init')], { encoding: 'utf8' });
    assert.equal(sh.status, 0, sh.stderr);
  },
);

// ---------------------------------------------------------------- interpret

const CTX = {
  patches: [{ file: '/w/livepatch-sample.ko', name: 'livepatch_sample' }],
  preload: [] as string[],
  testScript: '/w/test.sh',
  abi: '6.1.0-56',
  kernelRelease: '6.1.0-56-amd64',
};

const GOOD = `@@ booted 6.1.0-56-amd64
@@ modules 0
@@ lsmod 9p 9pnet_virtio 9pnet virtio_pci virtio_pci_modern_dev virtio_pci_legacy_dev netfs fscache${' '}
@@ test before 1
@@ load livepatch_sample 0
@@ transition livepatch_sample 0 1.31 1.37
@@ enabled livepatch_sample 1
@@ out after hello
@@ test after 0
@@ disable livepatch_sample 0
@@ disabled livepatch_sample 0 1.39 1.43
@@ unload livepatch_sample 0
@@ test unloaded 1
@@ done
`;

/** A clean boot as the console shows it, livepatch messages included (none of them is a problem). */
const CLEAN_CONSOLE = `[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2025-01-01)
[    0.000000] Command line: console=ttyS0 panic=-1 loglevel=6
[    0.412345] Spectre V2 : Mitigation: Retpolines
[    1.100000] Freeing unused kernel image (initmem) memory: 2880K
[    1.110000] Run /init as init process
[    1.300000] livepatch_sample: loading out-of-tree module taints kernel.
[    1.300100] livepatch_sample: tainting kernel with TAINT_LIVEPATCH
[    1.301000] livepatch: enabling patch 'livepatch_sample'
[    1.302000] livepatch: 'livepatch_sample': starting patching transition
[    1.370000] livepatch: 'livepatch_sample': patching complete
[    1.390000] livepatch: 'livepatch_sample': starting unpatching transition
[    1.420000] livepatch: 'livepatch_sample': unpatching complete
[    1.500000] reboot: Power down
`;

test('interpret: a clean run', () => {
  const r = interpret(GOOD, CLEAN_CONSOLE, CTX);
  assert.deepEqual(r.failures, []);
  assert.equal(r.ok, true);
  assert.equal(r.booted, true);
  assert.equal(r.modulesAvailable, true);
  assert.deepEqual(r.loadedModules, [
    '9p',
    '9pnet',
    '9pnet_virtio',
    'fscache',
    'netfs',
    'virtio_pci',
    'virtio_pci_legacy_dev',
    'virtio_pci_modern_dev',
  ]);
  assert.deepEqual(r.preloaded, []);
  assert.deepEqual(r.problems, []);
  assert.equal(r.abi, '6.1.0-56');
  assert.equal(r.kernelRelease, '6.1.0-56-amd64');
  assert.deepEqual(r.patches, [
    {
      file: '/w/livepatch-sample.ko',
      name: 'livepatch_sample',
      loaded: true,
      enabled: true,
      transitionSeconds: 0.06,
      disabled: true,
      replaced: false,
      unloaded: true,
    },
  ]);
  assert.ok(r.test);
  assert.equal(r.test.ok, true);
  assert.equal(r.test.script, '/w/test.sh');
  assert.deepEqual(r.test.before, { exitCode: 1, output: [] });
  assert.deepEqual(r.test.after, { exitCode: 0, output: ['hello'] });
  assert.deepEqual(r.test.unloaded, { exitCode: 1, output: [] });
});

test('interpret: test output keeps its spacing; lines that are not results are ignored', () => {
  const results = GOOD.replace(
    '@@ out after hello\n',
    '@@ out after hello world\n@@ out after   indented\n@@ out after \nnoise from the port\n@@ out before not found\n',
  );
  const r = interpret(results, '', CTX);
  assert.equal(r.ok, true, r.failures.join('; '));
  assert.deepEqual(r.test?.after.output, ['hello world', '  indented', '']);
  assert.deepEqual(r.test?.before.output, ['not found']);
});

test('formatVmReport: a passing run', () => {
  const r = interpret(GOOD, CLEAN_CONSOLE, CTX);
  r.seconds = 42.5;
  r.serialLog = '/w/console.log';
  const text = formatVmReport(r);
  const lines = text.split('\n');
  assert.equal(lines[0], 'vm-test PASSED on 6.1.0-56-amd64 in 42.5 s');
  assert.ok(
    lines.includes('  livepatch_sample: loaded=true enabled=true transition=0.06 s disabled=true unloaded=true'),
    text,
  );
  assert.ok(lines.includes('  test /w/test.sh: before=1 loaded=0 unloaded=1 ok'), text);
  assert.equal(lines.at(-1), '  serial log: /w/console.log');
  assert.ok(!text.includes('failure:'));
  assert.ok(!text.includes('kernel:'));
});

test('interpret: insmod failure', () => {
  const results = `@@ booted 6.1.0-56-amd64
@@ modules 0
@@ test before 1
@@ load livepatch_sample 1
@@ out after FAIL
@@ test after 1
@@ unload livepatch_sample 1
@@ test unloaded 1
@@ done
`;
  const r = interpret(
    results,
    `${CLEAN_CONSOLE}[    1.2] livepatch_sample: Unknown symbol klp_enable_patch (err -2)\n`,
    CTX,
  );
  assert.equal(r.ok, false);
  assert.equal(r.patches[0]?.loaded, false);
  assert.equal(r.patches[0]?.transitionSeconds, null);
  assert.ok(r.failures.includes('livepatch_sample: insmod failed'), r.failures.join('; '));
  // A failed insmod is not also reported as four follow-on failures.
  assert.ok(
    !r.failures.some((f) => /transition did not finish|rmmod failed|not enabled/.test(f)),
    r.failures.join('; '),
  );
  assert.ok(
    r.failures.some((f) => /LOADED test: .*loaded exit 1 \(want 0\)/.test(f)),
    r.failures.join('; '),
  );
  const text = formatVmReport(r);
  assert.match(text, /^vm-test FAILED on 6\.1\.0-56-amd64/);
  assert.match(
    text,
    /livepatch_sample: loaded=false enabled=false transition=unfinished disabled=false unloaded=false/,
  );
  assert.match(text, /test \/w\/test\.sh: before=1 loaded=1 unloaded=1 FAILED/);
  assert.match(text, /  failure: livepatch_sample: insmod failed/);
});

test('interpret: the transition never finished', () => {
  const results = GOOD.replace(
    '@@ transition livepatch_sample 0 1.31 1.37',
    '@@ transition livepatch_sample 1 1.31 31.45',
  ).replace('@@ disabled livepatch_sample 0 1.39 1.43', '@@ disabled livepatch_sample 1 31.5 61.6');
  const r = interpret(results, CLEAN_CONSOLE, CTX);
  assert.equal(r.ok, false);
  assert.equal(r.patches[0]?.transitionSeconds, null);
  assert.equal(r.patches[0]?.loaded, true);
  assert.equal(r.patches[0]?.disabled, false);
  assert.ok(r.failures.includes('livepatch_sample: transition did not finish'), r.failures.join('; '));
  assert.ok(r.failures.includes('livepatch_sample: disabling did not finish'), r.failures.join('; '));
  assert.match(formatVmReport(r), /transition=unfinished disabled=false/);
});

test('interpret: a patch that is not enabled, or not removed', () => {
  const r = interpret(
    GOOD.replace('@@ enabled livepatch_sample 1', '@@ enabled livepatch_sample missing').replace(
      '@@ unload livepatch_sample 0',
      '@@ unload livepatch_sample 1',
    ),
    CLEAN_CONSOLE,
    CTX,
  );
  assert.equal(r.ok, false);
  assert.ok(r.failures.includes('livepatch_sample: not enabled after loading'), r.failures.join('; '));
  assert.ok(r.failures.includes('livepatch_sample: rmmod failed'), r.failures.join('; '));
});

test('interpret: a test that passes before loading violates the LOADED convention', () => {
  const r = interpret(GOOD.replace('@@ test before 1', '@@ test before 0'), CLEAN_CONSOLE, CTX);
  assert.equal(r.ok, false);
  assert.equal(r.test?.ok, false);
  assert.equal(r.test?.before.exitCode, 0);
  assert.deepEqual(r.failures, [
    'LOADED test: before exit 0 (want non-zero), loaded exit 0 (want 0), unloaded exit 1 (want non-zero)',
  ]);
  // The patch itself was fine.
  assert.equal(r.patches[0]?.transitionSeconds, 0.06);
});

test('interpret: a test that still passes after unloading, or timed out, or never ran', () => {
  const stillPasses = interpret(GOOD.replace('@@ test unloaded 1', '@@ test unloaded 0'), '', CTX);
  assert.equal(stillPasses.test?.ok, false);
  assert.match(stillPasses.failures.join('\n'), /unloaded exit 0 \(want non-zero\)/);

  const timedOut = interpret(GOOD.replace('@@ test after 0', '@@ test after 124'), '', CTX);
  assert.equal(timedOut.test?.ok, false);
  assert.match(timedOut.failures.join('\n'), /loaded timed out \(want 0\)/);

  const noTest = interpret(GOOD.replace('@@ test after 0\n', ''), '', CTX);
  assert.equal(noTest.test?.ok, false);
  assert.equal(noTest.test?.after.exitCode, null);
  assert.match(noTest.failures.join('\n'), /loaded did not run \(want 0\)/);
});

test('interpret: without a test script there is no test verdict', () => {
  const { testScript: _, ...ctx } = CTX;
  const results = GOOD.split('\n')
    .filter((l) => !l.startsWith('@@ test ') && !l.startsWith('@@ out '))
    .join('\n');
  const r = interpret(results, CLEAN_CONSOLE, ctx);
  assert.equal(r.test, null);
  assert.equal(r.ok, true, r.failures.join('; '));
  assert.ok(!/\n  test /.test(formatVmReport(r)));
});

test('interpret: a kernel panic on the console fails the run', () => {
  const console = `${CLEAN_CONSOLE.split('\n').slice(0, 9).join('\n')}
[    1.360000] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    1.360100] #PF: supervisor read access in kernel mode
[    1.360200] Oops: 0000 [#1] PREEMPT SMP NOPTI
[    1.360300] RIP: 0010:livepatch_cmdline_proc_show+0x5/0x20 [livepatch_sample]
[    1.360400] Call Trace:
[    1.360500]  <TASK>
[    1.361000] Kernel panic - not syncing: Fatal exception
[    1.361100] ---[ end Kernel panic - not syncing: Fatal exception ]---
`;
  const results = GOOD.split('\n').slice(0, 7).join('\n');
  const r = interpret(results, console, CTX);
  assert.equal(r.ok, false);
  assert.ok(r.problems.length >= 5, r.problems.join('\n'));
  assert.ok(r.problems.some((p) => p.includes('Kernel panic - not syncing: Fatal exception')));
  assert.ok(!r.problems.some((p) => p.includes('<TASK>') || p.includes('#PF')), 'only the matching lines');
  assert.ok(
    r.failures.includes(
      'kernel reported problems: [    1.360000] BUG: kernel NULL pointer dereference, address: 0000000000000000',
    ),
    r.failures.join('; '),
  );
  assert.ok(r.failures.includes('the VM stopped before the test sequence finished'), r.failures.join('; '));
  const text = formatVmReport(r);
  assert.match(text, /  kernel: \[    1\.361000\] Kernel panic - not syncing: Fatal exception/);
});

test('interpret: a WARNING on the console fails an otherwise good run', () => {
  const warn =
    '[    1.350000] WARNING: CPU: 0 PID: 1 at kernel/livepatch/transition.c:123 klp_complete_transition+0x1a/0x1f0';
  const r = interpret(GOOD, `${CLEAN_CONSOLE}${warn}\n`, CTX);
  assert.equal(r.ok, false);
  assert.deepEqual(r.problems, [warn]);
  assert.deepEqual(r.failures, [`kernel reported problems: ${warn}`]);
  // Everything else was fine.
  assert.equal(r.test?.ok, true);
  assert.equal(r.patches[0]?.transitionSeconds, 0.06);
});

test('interpret: other kernel problem reports are caught too', () => {
  for (const line of [
    '[    5.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:80]',
    '[    5.0] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP',
    '[    5.0] kernel BUG at mm/slub.c:435!',
    '[    5.0] list_add corruption. prev->next should be next (ffffffff), but was 0000. (prev=ffff).',
    '[    5.0] UBSAN: shift-out-of-bounds in kernel/sched/core.c:1000:3',
    '[  125.0] INFO: task insmod:80 blocked for more than 120 seconds.',
  ]) {
    const r = interpret(GOOD, `${CLEAN_CONSOLE}${line}\n`, CTX);
    assert.equal(r.ok, false, line);
    assert.deepEqual(r.problems, [line]);
  }
});

test('interpret: no "@@ booted" is a boot failure, and only that', () => {
  const r = interpret('', '[    0.000000] Linux version 6.1.0-56-amd64\n', CTX);
  assert.equal(r.booted, false);
  assert.equal(r.ok, false);
  assert.deepEqual(r.failures, ['the kernel did not reach our init (boot failed); see the serial log']);
  assert.equal(r.test?.ok, false);
  assert.match(formatVmReport(r), /failure: the kernel did not reach our init/);
});

test('interpret: a missing "@@ done" means the VM stopped early', () => {
  const r = interpret(GOOD.replace('@@ done\n', ''), CLEAN_CONSOLE, CTX);
  assert.equal(r.ok, false);
  assert.deepEqual(r.failures, ['the VM stopped before the test sequence finished']);
});

test('interpret: preloaded modules and several patches are tracked by name', () => {
  const ctx = {
    ...CTX,
    patches: [
      { file: '/w/a.ko', name: 'livepatch_a' },
      { file: '/w/b.ko', name: 'livepatch_b' },
    ],
    preload: ['dm_mod', 'snd-hda-intel'],
  };
  const results = `@@ booted 6.1.0-56-amd64
@@ modules 0
@@ preload dm_mod 0
@@ preload snd-hda-intel 1
@@ lsmod dm_mod 9p 9pnet_virtio 9pnet virtio_pci${' '}
@@ test before 1
@@ load livepatch_a 0
@@ transition livepatch_a 0 2.00 2.50
@@ enabled livepatch_a 1
@@ load livepatch_b 0
@@ transition livepatch_b 0 3.10 3.35
@@ enabled livepatch_b 1
@@ test after 0
@@ disable livepatch_b 0
@@ disabled livepatch_b 0 4.00 4.10
@@ unload livepatch_b 0
@@ disable livepatch_a 0
@@ disabled livepatch_a 0 4.20 4.30
@@ unload livepatch_a 1
@@ test unloaded 1
@@ done
`;
  const r = interpret(results, CLEAN_CONSOLE, ctx);
  assert.deepEqual(r.preloaded, [
    { name: 'dm_mod', loaded: true },
    { name: 'snd-hda-intel', loaded: false },
  ]);
  assert.deepEqual(r.loadedModules, ['9p', '9pnet', '9pnet_virtio', 'dm_mod', 'virtio_pci']);
  assert.equal(r.patches[0]?.transitionSeconds, 0.5);
  assert.equal(r.patches[1]?.transitionSeconds, 0.25);
  assert.equal(r.patches[0]?.unloaded, false);
  assert.equal(r.patches[1]?.unloaded, true);
  assert.deepEqual(r.failures, ['module snd-hda-intel failed to load', 'livepatch_a: rmmod failed']);
  const text = formatVmReport(r);
  assert.match(text, /  module dm_mod: loaded\n  module snd-hda-intel: NOT loaded/);
  assert.match(text, /livepatch_b: loaded=true enabled=true transition=0\.25 s/);
});

test('interpret: the module tree not mounted in the VM fails the run', () => {
  const r = interpret(GOOD.replace('@@ modules 0', '@@ modules 255'), CLEAN_CONSOLE, CTX);
  assert.equal(r.modulesAvailable, false);
  assert.equal(r.ok, false);
  assert.deepEqual(r.failures, ["could not mount the target's modules in the VM (9p)"]);
  // Results from an init that never reports the mount count as not mounted.
  const old = interpret(
    GOOD.split('\n')
      .filter((l) => !l.startsWith('@@ modules') && !l.startsWith('@@ lsmod'))
      .join('\n'),
    CLEAN_CONSOLE,
    CTX,
  );
  assert.equal(old.modulesAvailable, false);
  assert.deepEqual(old.failures, ["could not mount the target's modules in the VM (9p)"]);
  assert.deepEqual(old.loadedModules, []);
});
