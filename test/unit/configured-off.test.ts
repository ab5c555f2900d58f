import { strict as assert } from 'node:assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TargetManifest } from '../../src/target/manifest.js';
import { configuredOff } from '../../src/target/compile-command.js';
import { tempDir } from '../helpers.js';

test('configuredOff: an object every Makefile line adds under an unset CONFIG_ option is not built; otherwise unknown', () => {
  const root = tempDir('configured-off');
  mkdirSync(join(root, 'source/drivers/nvme/target'), { recursive: true });
  mkdirSync(join(root, 'build'));
  writeFileSync(
    join(root, 'source/drivers/nvme/target/Makefile'),
    [
      'obj-$(CONFIG_NVME_TARGET)\t\t+= nvmet.o',
      '# nvmet-$(CONFIG_NVME_TARGET) += auth.o (a comment)',
      'nvmet-y\t\t+= core.o configfs.o admin-cmd.o \\',
      '\t\t\tfabrics-cmd.o',
      'nvmet-$(CONFIG_NVME_TARGET_AUTH)\t+= fabrics-cmd-auth.o auth.o',
      'nvmet-$(CONFIG_NVME_TARGET_PASSTHRU) += passthru.o',
      'obj-$(CONFIG_NVME_TARGET_TCP) += tcp.o',
      'obj-$(CONFIG_NVME_TARGET_TCP) += tcp.o',
      'CFLAGS_loop.o += -DX',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(root, 'build/.config'),
    'CONFIG_NVME_TARGET=m\n# CONFIG_NVME_TARGET_AUTH is not set\nCONFIG_NVME_TARGET_PASSTHRU=y\n',
  );
  const target = { paths: { source: join(root, 'source'), build: join(root, 'build') } } as unknown as TargetManifest;
  const off = (f: string) => configuredOff(target, `drivers/nvme/target/${f}`);
  assert.equal(off('fabrics-cmd-auth.c'), 'CONFIG_NVME_TARGET_AUTH is not set');
  assert.equal(off('tcp.c'), 'CONFIG_NVME_TARGET_TCP is not set');
  assert.equal(off('passthru.c'), null);
  assert.equal(off('fabrics-cmd.c'), null, 'a continued nvmet-y line');
  assert.equal(off('loop.c'), null, 'only named by a CFLAGS_ line: unknown, left to Kbuild');
  assert.equal(off('nvmet.c'), null);
});
