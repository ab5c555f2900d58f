import { existsSync, readdirSync, statfsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { KlpgenError } from '../util/errors.js';
import { run, runChecked } from '../util/exec.js';
import { diskError, sha256, sha256File, withLock, writeIfChanged } from '../util/fsutil.js';
import { info, skipped, timed, type StepTiming } from '../util/progress.js';
import { resolveTarget, targetPackages, type ResolvedTarget } from './apt.js';
import { headersDirName, type TargetManifest } from './manifest.js';
import { kernelChecks } from './checks.js';
import { ARCH, CC, kernelRelease, targetLayout, type TargetLayout } from './paths.js';

/** Debian packages the setup, the module build and the VM need on the host. */
export const HOST_PACKAGES = [
  'gcc-12',
  'make',
  'flex',
  'bison',
  'libelf-dev',
  'bc',
  'libssl-dev',
  'dwarves',
  'xz-utils',
  'qemu-system-x86',
  'busybox-static',
  'cpio',
  'kmod',
];

/** Space a fresh setup needs: debs 1.1 GB, source 1.4 GB, dbg 0.7 GB, packages 0.5 GB, build. */
const NEEDED_BYTES = 5 * 1024 ** 3;

export interface SetupResult {
  manifest: TargetManifest;
  /** False when everything was already in place (a no-op re-run). */
  changed: boolean;
  timings: StepTiming[];
}

/** The make arguments that reproduce Debian's build of this target in our O= tree. */
export function kbuildArgs(layout: TargetLayout, abi: string): string[] {
  return ['-C', layout.source, `O=${layout.build}`, `ARCH=${ARCH}`, `CC=${CC}`, `KERNELRELEASE=${kernelRelease(abi)}`];
}

export function makeEnv(): NodeJS.ProcessEnv {
  // Flags from the caller's environment would change the objects we compare.
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
  for (const v of [
    'KCFLAGS',
    'KCPPFLAGS',
    'KAFLAGS',
    'CFLAGS_MODULE',
    'LDFLAGS',
    'ARCH',
    'CROSS_COMPILE',
    'O',
    'M',
    'KBUILD_OUTPUT',
    'MAKEFLAGS',
  ]) {
    delete env[v];
  }
  return env;
}

export async function setupTarget(opts: { abi?: string } = {}): Promise<SetupResult> {
  const timings: StepTiming[] = [];
  await ensureHostPackages(timings);
  const resolved = await timed('resolve ABI', () => resolveWithUpdate(opts.abi), timings);
  const layout = targetLayout(resolved.abi);
  info(`target ${resolved.abi} (Debian ${resolved.debianVersion}) in ${layout.root}`);
  return withLock(layout.lock, () => setupLocked(resolved, layout, timings));
}

async function setupLocked(t: ResolvedTarget, layout: TargetLayout, timings: StepTiming[]): Promise<SetupResult> {
  const pkgs = targetPackages(t.abi);
  const rel = kernelRelease(t.abi);
  const headers = join(layout.pkg, headersDirName(t.abi));
  let changed = false;

  // Each step leaves a stamp; redoing a step invalidates the stamps after it.
  const steps: { stamp: string; name: string; run: () => Promise<void> }[] = [
    { stamp: 'download', name: 'download packages', run: () => download(t, layout) },
    { stamp: 'unpack', name: 'unpack image and headers', run: () => unpackPackages(t, layout, headers) },
    { stamp: 'source', name: 'extract kernel source', run: () => extractSource(t, layout) },
    {
      stamp: 'configure',
      name: 'configure (headers .config + olddefconfig)',
      run: () => configure(t, layout, headers),
    },
    { stamp: 'prepare', name: 'make prepare', run: () => prepare(t, layout) },
    { stamp: 'dbg', name: 'extract vmlinux and System.map', run: () => extractDbg(t, layout, rel) },
    // modprobe in the VM needs modules.dep & co., which the image package leaves to depmod at install.
    {
      stamp: 'depmod',
      name: 'depmod',
      run: () => runChecked('depmod', ['-b', layout.pkg, rel], { what: 'depmod' }).then(() => undefined),
    },
  ];
  let redo = false;
  for (const step of steps) {
    const stampPath = join(layout.steps, `${step.stamp}.done`);
    if (!redo && existsSync(stampPath)) {
      skipped(step.name, 'already done', timings);
      continue;
    }
    if (!redo) checkDiskSpace(layout.root);
    redo = true;
    changed = true;
    await rm(stampPath, { force: true });
    try {
      await timed(step.name, step.run, timings);
      await mkdir(layout.steps, { recursive: true });
      await writeFile(stampPath, `${t.debianVersion}\n`);
    } catch (e) {
      throw diskError(e, layout.root);
    }
  }

  const manifest = await buildManifest(t, layout, headers, rel, pkgs);
  const problems = kernelChecks(await readFile(manifest.paths.config, 'utf8'), manifest.compiler.version);
  if (problems.length) {
    // Refused before the manifest exists: nothing half-set-up is taken for ready.
    throw new KlpgenError(
      `target ${t.abi} cannot be livepatched safely: ${problems.map((p) => `${p.option}: ${p.reason}`).join('; ')}`,
    );
  }
  if (await writeIfChanged(layout.manifest, `${JSON.stringify(manifest, null, 2)}\n`)) changed = true;
  return { manifest, changed, timings };
}

async function resolveWithUpdate(abi: string | undefined): Promise<ResolvedTarget> {
  try {
    return await resolveTarget(abi);
  } catch (e) {
    // A fresh machine has empty package lists: refresh once if we may.
    if (!(e instanceof KlpgenError) || process.getuid?.() !== 0) throw e;
    info('package lists may be stale: running apt-get update');
    const update = await run('apt-get', ['update'], { env: { ...process.env, LC_ALL: 'C' } });
    if (update.code !== 0) throw e;
    return resolveTarget(abi);
  }
}

async function ensureHostPackages(timings: StepTiming[]): Promise<void> {
  if (!existsSync('/usr/bin/apt-get') || !existsSync('/usr/bin/dpkg-query')) {
    throw new KlpgenError('apt and dpkg not found: klpgen needs a Debian or Ubuntu host');
  }
  const missing = await missingPackages(HOST_PACKAGES);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new KlpgenError(
      `missing host packages: ${missing.join(' ')}; run as root, or apt-get install ${missing.join(' ')}`,
    );
  }
  await timed(
    `install ${missing.join(' ')}`,
    async () => {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' };
      let r = await run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env });
      if (r.code !== 0) {
        await run('apt-get', ['update'], { env });
        r = await run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env });
      }
      if (r.code !== 0) {
        throw new KlpgenError(
          `apt-get install ${missing.join(' ')} failed: ${r.stderr.trim().split('\n').pop() ?? ''}`,
        );
      }
    },
    timings,
  );
}

export async function missingPackages(names: string[]): Promise<string[]> {
  const r = await run('dpkg-query', ['-W', '-f', '${Package} ${db:Status-Abbrev}\n', ...names]);
  const installed = new Set(
    r.stdout
      .split('\n')
      .filter((l) => /\sii\s*$/.test(l))
      .map((l) => l.split(' ')[0]),
  );
  return names.filter((n) => !installed.has(n));
}

function checkDiskSpace(dir: string): void {
  let probe = dir;
  while (!existsSync(probe)) probe = join(probe, '..');
  const st = statfsSync(probe);
  const free = st.bavail * st.bsize;
  if (free < NEEDED_BYTES) {
    throw new KlpgenError(
      `not enough disk space in ${probe}: ${(free / 1024 ** 3).toFixed(1)} GiB free, setup needs about 5 GiB; free some space or set KLPGEN_CACHE to another disk`,
    );
  }
}

function debPath(layout: TargetLayout, pkg: string): string {
  const f = readdirSync(layout.debs).find((n) => n.startsWith(`${pkg}_`) && n.endsWith('.deb'));
  if (!f) throw new KlpgenError(`${pkg}: downloaded package missing from ${layout.debs}; run setup again`);
  return join(layout.debs, f);
}

/** apt-get download into a scratch dir, check each file against apt's SHA256, then move in. */
async function download(t: ResolvedTarget, layout: TargetLayout): Promise<void> {
  const partial = `${layout.debs}.partial`;
  await mkdir(partial, { recursive: true });
  await mkdir(layout.debs, { recursive: true });
  for (const rec of Object.values(t.records)) {
    const name = `${rec.package}_`;
    if (readdirSync(layout.debs).some((n) => n.startsWith(name))) continue;
    for (const old of readdirSync(partial).filter((n) => n.startsWith(name))) await rm(join(partial, old));
    const r = await run('apt-get', ['download', `${rec.package}=${rec.version}`], {
      cwd: partial,
      env: { ...process.env, LC_ALL: 'C' },
      heartbeat: `download ${rec.package}`,
    });
    if (r.code !== 0) {
      throw new KlpgenError(
        `download of ${rec.package}=${rec.version} failed (${r.stderr.trim().split('\n').pop() ?? `exit ${r.code}`}); check the network and run setup again`,
      );
    }
    const file = readdirSync(partial).find((n) => n.startsWith(name) && n.endsWith('.deb'));
    if (!file) throw new KlpgenError(`apt-get download ${rec.package} produced no .deb file`);
    const got = await sha256File(join(partial, file));
    if (rec.sha256 && got !== rec.sha256) {
      await rm(join(partial, file));
      throw new KlpgenError(`${file}: SHA256 mismatch (download cut or corrupted); run setup again`);
    }
    await rename(join(partial, file), join(layout.debs, file));
  }
  await rm(partial, { recursive: true, force: true });
}

async function unpackPackages(t: ResolvedTarget, layout: TargetLayout, headers: string): Promise<void> {
  const pkgs = targetPackages(t.abi);
  const partial = `${layout.pkg}.partial`;
  await rm(partial, { recursive: true, force: true });
  await rm(layout.pkg, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  for (const p of [pkgs.image, pkgs.headers, pkgs.headersCommon, pkgs.kbuild]) {
    await runChecked('dpkg', ['-x', debPath(layout, p), partial], { what: `dpkg -x ${p}` });
  }
  await rename(partial, layout.pkg);
  // The headers package includes its -common part by absolute /usr/src path: point it at our copy.
  const mk = join(headers, 'Makefile');
  const text = await readFile(mk, 'utf8');
  await writeFile(mk, text.replace(/^include \/usr\/src\//m, `include ${join(layout.pkg, 'usr', 'src')}/`));
}

async function extractSource(t: ResolvedTarget, layout: TargetLayout): Promise<void> {
  const pkgs = targetPackages(t.abi);
  const partial = `${layout.source}.partial`;
  await rm(partial, { recursive: true, force: true });
  await rm(layout.source, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  await runChecked(
    'bash',
    [
      '-o',
      'pipefail',
      '-c',
      'dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/src/linux-source-6.1.tar.xz | tar -xJ -C "$2"',
      'extract',
      debPath(layout, pkgs.source),
      partial,
    ],
    { what: 'extracting linux-source-6.1', heartbeat: 'extract source' },
  );
  const top = readdirSync(partial);
  if (top.length !== 1 || !top[0]) throw new KlpgenError(`unexpected layout of linux-source-6.1: ${top.join(', ')}`);
  await rename(join(partial, top[0]), layout.source);
  await rm(partial, { recursive: true, force: true });
}

function configLines(text: string): string[] {
  return text.split('\n').filter((l) => /^(CONFIG_|# CONFIG_.* is not set)/.test(l));
}

async function configure(t: ResolvedTarget, layout: TargetLayout, headers: string): Promise<void> {
  await rm(layout.build, { recursive: true, force: true });
  await mkdir(layout.build, { recursive: true });
  await mkdir(layout.logs, { recursive: true });
  await copyFile(join(headers, '.config'), join(layout.build, '.config'));
  await runChecked('make', [...kbuildArgs(layout, t.abi), 'olddefconfig'], {
    env: makeEnv(),
    logFile: join(layout.logs, 'olddefconfig.log'),
    what: 'make olddefconfig',
  });
}

async function prepare(t: ResolvedTarget, layout: TargetLayout): Promise<void> {
  await runChecked('make', [...kbuildArgs(layout, t.abi), `-j${cpus().length}`, 'prepare'], {
    env: makeEnv(),
    logFile: join(layout.logs, 'prepare.log'),
    what: 'make prepare',
    heartbeat: 'make prepare',
  });
}

/** Only vmlinux and System.map: the rest of the -dbg package (module debug files) is not needed. */
async function extractDbg(t: ResolvedTarget, layout: TargetLayout, rel: string): Promise<void> {
  const pkgs = targetPackages(t.abi);
  const partial = `${layout.dbg}.partial`;
  await rm(partial, { recursive: true, force: true });
  await rm(layout.dbg, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  const members = [`./usr/lib/debug/boot/vmlinux-${rel}`, `./usr/lib/debug/boot/System.map-${rel}`];
  // tar stops once it has both members; dpkg-deb then dies of SIGPIPE, which is expected.
  const r = await run(
    'bash',
    [
      '-c',
      'dpkg-deb --fsys-tarfile "$1" | tar -x --occurrence=1 -C "$2" "$3" "$4"; exit ${PIPESTATUS[1]}',
      'extract',
      debPath(layout, pkgs.dbg),
      partial,
      ...members,
    ],
    { heartbeat: 'extract vmlinux' },
  );
  if (r.code !== 0) throw new KlpgenError(`extracting vmlinux from ${pkgs.dbg} failed: ${r.stderr.trim()}`);
  await rename(join(partial, 'usr/lib/debug/boot', `vmlinux-${rel}`), join(partial, 'vmlinux'));
  await rename(join(partial, 'usr/lib/debug/boot', `System.map-${rel}`), join(partial, 'System.map'));
  await rm(join(partial, 'usr'), { recursive: true, force: true });
  await rename(partial, layout.dbg);
}

async function buildManifest(
  t: ResolvedTarget,
  layout: TargetLayout,
  headers: string,
  rel: string,
  pkgs: ReturnType<typeof targetPackages>,
): Promise<TargetManifest> {
  const config = await readFile(join(layout.build, '.config'), 'utf8');
  const original = await readFile(join(headers, '.config'), 'utf8');
  const before = new Set(configLines(original));
  const after = configLines(config);
  const afterSet = new Set(after);
  const drift = [
    ...[...before].filter((l) => !afterSet.has(l)).map((l) => `- ${l}`),
    ...after.filter((l) => !before.has(l)).map((l) => `+ ${l}`),
  ];
  const ccVersion = (await run(CC, ['--version'])).stdout.split('\n')[0]?.trim() ?? '';
  const configVersion = /^CONFIG_CC_VERSION_TEXT="(.*)"$/m.exec(original)?.[1] ?? '';
  const packages: TargetManifest['packages'] = {};
  for (const name of Object.values(pkgs).sort()) {
    const rec = t.records[name];
    if (rec) packages[name] = { version: rec.version, sha256: rec.sha256 };
  }
  return {
    schema: 1,
    abi: t.abi,
    kernelRelease: rel,
    debianVersion: t.debianVersion,
    arch: 'x86',
    packages,
    paths: {
      root: layout.root,
      source: layout.source,
      build: layout.build,
      headers,
      vmlinuz: join(layout.pkg, 'boot', `vmlinuz-${rel}`),
      modules: join(layout.pkg, 'lib', 'modules', rel),
      vmlinux: join(layout.dbg, 'vmlinux'),
      systemMap: join(layout.dbg, 'System.map'),
      moduleSymvers: join(headers, 'Module.symvers'),
      config: join(layout.build, '.config'),
    },
    compiler: { cc: CC, version: ccVersion, configVersion, matches: ccVersion === configVersion },
    configSha256: sha256(config),
    configDrift: drift,
  };
}
