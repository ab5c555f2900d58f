import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { compileArgv, type CompileCommand } from '../../src/target/compile-command.js';
import { parseElf } from '../../src/elf/elf64.js';
import { sha256 } from '../../src/util/fsutil.js';
import { ensureTarget, klpgen, tempDir } from '../helpers.js';

/** (path, size, mtime) of every file under dir, plus the content hash of the files named. */
function treeFingerprint(dir: string, hashFiles: string[]): string {
  const rows: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const st = statSync(p, { bigint: true });
        rows.push(`${relative(dir, p)} ${st.size} ${st.mtimeNs}`);
      }
    }
  };
  walk(dir);
  for (const f of hashFiles) rows.push(`${f} ${sha256(readFileSync(join(dir, f)))}`);
  return sha256(rows.sort().join('\n'));
}

function capture(abi: string, file: string): CompileCommand {
  const r = klpgen(['target', 'compile-command', file, '--abi', abi, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as CompileCommand;
}

test('compile-command: exact Kbuild commands, the source tree untouched', () => {
  const t = ensureTarget();
  const files = ['fs/proc/cmdline.c', 'kernel/livepatch/core.c'];
  const before = treeFingerprint(t.paths.source as string, files);
  for (const f of files) {
    const cmd = capture(t.abi, f);
    assert.equal(cmd.argv[0], 'gcc-12');
    assert.ok(cmd.argv.includes('-mfentry') && cmd.argv.includes('-pg'), 'ftrace flags missing');
    assert.ok(cmd.argv.includes(`-DKBUILD_BASENAME="${f.split('/').pop()!.replace(/\.c$/, '')}"`));
    assert.ok(cmd.source.endsWith(f));
    assert.ok(
      cmd.deps.some((d) => d.endsWith('include/linux/kconfig.h')),
      'deps list not read',
    );
    assert.ok(
      cmd.post.some((p) => p[0]?.endsWith('objtool')),
      'objtool step not captured',
    );
  }
  assert.equal(treeFingerprint(t.paths.source as string, files), before, 'the target source tree changed');
});

test("compile-command: a copy compiled in our work dir with extra flags gives Kbuild's code", () => {
  const t = ensureTarget();
  const file = 'kernel/livepatch/core.c';
  const cmd = capture(t.abi, file);
  const work = tempDir('compile');
  const copy = join(work, 'src', file);
  mkdirSync(join(copy, '..'), { recursive: true });
  copyFileSync(cmd.source, copy);
  const out = join(work, 'core.o');
  const argv = compileArgv(cmd, {
    source: copy,
    sourceRoot: join(work, 'src'),
    output: out,
    extraFlags: ['-fdump-ipa-clones', '-ffunction-sections', '-fdata-sections'],
  });
  const r = spawnSync(argv[0] as string, argv.slice(1), { cwd: cmd.cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const dumps = readdirSync(work).filter((f) => f.endsWith('ipa-clones'));
  assert.equal(dumps.length, 1, `no ipa-clones dump in ${work}: ${readdirSync(work).join(' ')}`);
  assert.match(readFileSync(join(work, dumps[0] as string), 'utf8'), /^Callgraph /m);

  // Same flags as Kbuild (no extras): the function bodies must match Kbuild's object before objtool.
  const plain = join(work, 'plain.o');
  const argv2 = compileArgv(cmd, { source: copy, sourceRoot: join(work, 'src'), output: plain });
  assert.equal(spawnSync(argv2[0] as string, argv2.slice(1), { cwd: cmd.cwd }).status, 0);
  const reference = join(work, 'kbuild.o');
  const argv3 = compileArgv(cmd, { output: reference });
  assert.equal(spawnSync(argv3[0] as string, argv3.slice(1), { cwd: cmd.cwd }).status, 0);
  const text = (p: string) => {
    const elf = parseElf(readFileSync(p));
    const sec = elf.sectionByName('.text');
    assert.ok(sec && sec.size > 0);
    return sha256(elf.sectionData(sec));
  };
  assert.equal(text(plain), text(reference), 'copy in work dir compiled to different code');
  const strings = (p: string) => {
    const elf = parseElf(readFileSync(p));
    return elf.sections
      .filter((s) => s.name.startsWith('.rodata.str'))
      .map((s) => elf.sectionData(s).toString('latin1'))
      .join('|');
  };
  // __FILE__ in WARN()s is mapped to kernel/livepatch/core.c as Kbuild maps it.
  assert.equal(strings(plain), strings(reference));
  assert.match(strings(reference), /kernel\/livepatch\/core\.c/);
});

test('compile-command: bad paths give one clear error line', () => {
  const t = ensureTarget();
  for (const [file, msg] of [
    ['kernel/no-such-file.c', /no such file in the target's source tree/],
    ['../../etc/passwd.c', /not inside the target's source tree/],
    ['Makefile', /not a \.c file/],
  ] as const) {
    const r = klpgen(['target', 'compile-command', file, '--abi', t.abi]);
    assert.equal(r.code, 1, file);
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
