/**
 * Kernel configurations klpgen cannot make safe patches for, read off the
 * target's .config at setup. Each has its reason; setup refuses the target.
 */
export interface KernelCheck {
  option: string;
  reason: string;
}

const REFUSED: { test: RegExp; option: string; reason: string }[] = [
  {
    test: /^CONFIG_LTO_CLANG(_FULL|_THIN)?=y$/m,
    option: 'CONFIG_LTO_CLANG',
    reason:
      'LTO: code of one source file is inlined and optimised across the whole kernel; per-TU analysis cannot see it',
  },
  {
    test: /^CONFIG_CC_IS_CLANG=y$/m,
    option: 'CONFIG_CC_IS_CLANG',
    reason: "a Clang-built kernel: klpgen rebuilds with gcc-12 and relies on gcc's -fdump-ipa-clones",
  },
  {
    test: /^CONFIG_RANDSTRUCT_(FULL|PERFORMANCE)=y$/m,
    option: 'CONFIG_RANDSTRUCT',
    reason: "randomized struct layout: a rebuild does not reproduce the running layout without the build's seed",
  },
  {
    test: /^CONFIG_GCC_PLUGIN_LATENT_ENTROPY=y$/m,
    option: 'CONFIG_GCC_PLUGIN_LATENT_ENTROPY',
    reason: 'the latent-entropy plugin changes code per build: objects do not rebuild identically',
  },
  {
    test: /^CONFIG_LD_DEAD_CODE_DATA_ELIMINATION=y$/m,
    option: 'CONFIG_LD_DEAD_CODE_DATA_ELIMINATION',
    reason: 'the linker drops unreferenced functions: symbols of a rebuilt object may be missing from the kernel',
  },
];

export function kernelChecks(config: string, ccVersion: string): KernelCheck[] {
  const out: KernelCheck[] = [];
  for (const r of REFUSED) if (r.test.test(config)) out.push({ option: r.option, reason: r.reason });
  if (!/^CONFIG_LIVEPATCH=y$/m.test(config))
    out.push({ option: 'CONFIG_LIVEPATCH', reason: 'the kernel has no livepatch support' });
  const built = /^CONFIG_CC_VERSION_TEXT="(.*)"$/m.exec(config)?.[1];
  if (built !== undefined && built !== ccVersion) {
    out.push({
      option: 'CONFIG_CC_VERSION_TEXT',
      reason: `built with "${built}", but this host's compiler is "${ccVersion}": objects would not match the running code`,
    });
  }
  return out;
}
