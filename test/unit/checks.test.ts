import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { kernelChecks } from '../../src/target/checks.js';

const GCC = 'gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0';
const BASE = `CONFIG_CC_VERSION_TEXT="${GCC}"\nCONFIG_CC_IS_GCC=y\nCONFIG_LIVEPATCH=y\nCONFIG_LTO_NONE=y\n`;

test('kernel checks: a Debian-like config passes', () => {
  assert.deepEqual(kernelChecks(BASE, GCC), []);
});

test('kernel checks: LTO, Clang, RANDSTRUCT, latent entropy, dead-code elimination, no livepatch, another compiler', () => {
  const bad = `${BASE.replace('CONFIG_LIVEPATCH=y\n', '')}CONFIG_LTO_CLANG_THIN=y\nCONFIG_CC_IS_CLANG=y\nCONFIG_RANDSTRUCT_FULL=y\nCONFIG_GCC_PLUGIN_LATENT_ENTROPY=y\nCONFIG_LD_DEAD_CODE_DATA_ELIMINATION=y\n`;
  const found = kernelChecks(bad, 'gcc-13 (Debian 13.2.0) 13.2.0').map((c) => c.option);
  assert.deepEqual(found.sort(), [
    'CONFIG_CC_IS_CLANG',
    'CONFIG_CC_VERSION_TEXT',
    'CONFIG_GCC_PLUGIN_LATENT_ENTROPY',
    'CONFIG_LD_DEAD_CODE_DATA_ELIMINATION',
    'CONFIG_LIVEPATCH',
    'CONFIG_LTO_CLANG',
    'CONFIG_RANDSTRUCT',
  ]);
  for (const c of kernelChecks(bad, GCC)) assert.ok(c.reason.length > 20, c.option);
});

test('kernel checks: a disabled option is not a problem', () => {
  assert.deepEqual(
    kernelChecks(`${BASE}# CONFIG_RANDSTRUCT_FULL is not set\n# CONFIG_LTO_CLANG is not set\n`, GCC),
    [],
  );
});
