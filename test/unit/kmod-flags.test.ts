import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { flagUnits, makeWords, tuFlags } from '../../src/kmod/flags.js';
import type { CompileCommand } from '../../src/target/compile-command.js';

const SRC = '/k/source';
const cmd = (file: string, extra: string[], drop: string[] = []): CompileCommand => {
  const dir = file.replace(/\/[^/]*$/, '');
  const common = [
    '-nostdinc',
    `-I${SRC}/include`,
    '-I./include',
    '-include',
    `${SRC}/include/linux/kconfig.h`,
    '-D__KERNEL__',
    '-O2',
    '-pg',
    '-mfentry',
    '-fno-strict-aliasing',
  ];
  return {
    file,
    cwd: '/k/build',
    source: `${SRC}/${file}`,
    object: `/k/build/${file.replace(/\.c$/, '.o')}`,
    deps: [],
    post: [],
    argv: [
      'gcc-12',
      `-Wp,-MMD,${dir}/.x.o.d`,
      ...common.filter((f) => !drop.includes(f)),
      ...extra,
      '-I',
      `${SRC}/${dir}`,
      '-I',
      `./${dir}`,
      '-DKBUILD_MODFILE="x"',
      '-DKBUILD_BASENAME="x"',
      '-DKBUILD_MODNAME="x"',
      '-D__KBUILD_MODNAME=kmod_x',
      '-c',
      '-o',
      `${dir}/x.o`,
      `${SRC}/${file}`,
    ],
  };
};
const reference = cmd('fs/proc/version.c', []);

test('flagUnits: -I pairs joined and relative directories made absolute; per-object flags dropped', () => {
  const units = flagUnits(cmd('drivers/x/y.c', []));
  assert.ok(units.includes('-I/k/build/include'));
  assert.ok(units.includes(`-I${SRC}/drivers/x`) && units.includes('-I/k/build/drivers/x'));
  assert.ok(units.includes(`-include ${SRC}/include/linux/kconfig.h`));
  assert.ok(!units.some((u) => /KBUILD|MMD|^-c$|^-o$|y\.c$/.test(u)), units.join(' '));
});

test("tuFlags: a Makefile's own -I, -D and -f flags are extra; a CFLAGS_REMOVE is removed", () => {
  const amd = cmd('drivers/gpu/drm/amd/amdgpu/amdgpu_job.c', [
    `-I${SRC}/drivers/gpu/drm/amd/amdgpu/../include`,
    '-DBUILD_FEATURE_TIMING_SYNC=0',
    '-DMODULE',
  ]);
  assert.deepEqual(tuFlags(amd, reference), {
    extra: [
      `-I${SRC}/drivers/gpu/drm/amd/include`,
      '-DBUILD_FEATURE_TIMING_SYNC=0',
      `-I${SRC}/drivers/gpu/drm/amd/amdgpu`,
      '-I/k/build/drivers/gpu/drm/amd/amdgpu',
    ],
    removed: [],
  });
  const notrace = cmd('kernel/x.c', ['-fno-omit-frame-pointer'], ['-pg', '-mfentry']);
  assert.deepEqual(tuFlags(notrace, reference).removed, ['-pg', '-mfentry']);
  assert.deepEqual(tuFlags(notrace, reference).extra, [
    '-fno-omit-frame-pointer',
    `-I${SRC}/kernel`,
    '-I/k/build/kernel',
  ]);
  // The reference's own directory is not a common flag: a TU there gets it as its own.
  assert.deepEqual(tuFlags(reference, reference), { extra: [`-I${SRC}/fs/proc`, '-I/k/build/fs/proc'], removed: [] });
});

test('makeWords: shell-quoted for a Makefile, -include pairs split, $ escaped', () => {
  assert.deepEqual(makeWords('-DFOO=1'), ['-DFOO=1']);
  assert.deepEqual(makeWords('-DNAME="x y"'), [`'-DNAME="x y"'`]);
  assert.deepEqual(makeWords('-include /a/b.h'), ['-include', '/a/b.h']);
  assert.deepEqual(makeWords("-DA='$x'"), [`'-DA='\\''$$x'\\'''`]);
});
