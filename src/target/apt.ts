import { KlpgenError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { compareDebVersions } from './debversion.js';
import { ABI_PATTERN, FLAVOUR } from './paths.js';

/** One stanza of `apt-cache show`: the fields we use. */
export interface AptRecord {
  package: string;
  version: string;
  depends: string;
  sha256: string;
  size: number;
  filename: string;
}

export function parseAptShow(text: string): AptRecord[] {
  const records: AptRecord[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const line of stanza.split('\n')) {
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last) ?? ''}\n${line.trim()}`);
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
      if (m && m[1] && m[2] !== undefined) {
        last = m[1].toLowerCase();
        fields.set(last, m[2]);
      }
    }
    const pkg = fields.get('package');
    const version = fields.get('version');
    if (!pkg || !version) continue;
    records.push({
      package: pkg,
      version,
      depends: fields.get('depends') ?? '',
      sha256: fields.get('sha256') ?? '',
      size: Number(fields.get('size') ?? 0),
      filename: fields.get('filename') ?? '',
    });
  }
  return records;
}

/** All records of a package known to apt, newest version first; [] if apt knows none. */
export async function aptShow(pkg: string): Promise<AptRecord[]> {
  const r = await run('apt-cache', ['show', pkg], { env: { ...process.env, LC_ALL: 'C' } });
  if (r.code !== 0) return [];
  return parseAptShow(r.stdout)
    .filter((rec) => rec.package === pkg)
    .sort((a, b) => compareDebVersions(b.version, a.version));
}

/** The packages that make one target, all at one Debian version. */
export function targetPackages(abi: string): {
  image: string;
  headers: string;
  headersCommon: string;
  dbg: string;
  source: string;
  kbuild: string;
} {
  return {
    image: `linux-image-${abi}-${FLAVOUR}`,
    headers: `linux-headers-${abi}-${FLAVOUR}`,
    headersCommon: `linux-headers-${abi}-common`,
    dbg: `linux-image-${abi}-${FLAVOUR}-dbg`,
    source: 'linux-source-6.1',
    kbuild: 'linux-kbuild-6.1',
  };
}

export interface ResolvedTarget {
  abi: string;
  debianVersion: string;
  /** package name -> apt record at debianVersion */
  records: Record<string, AptRecord>;
}

export type AptShowFn = (pkg: string) => Promise<AptRecord[]>;

/**
 * Pick the ABI: the pinned one, or the newest whose image, headers, dbg and
 * source packages all exist at one Debian version. The meta-package
 * linux-headers-amd64 names the ABI of each Debian version in its Depends.
 */
export async function resolveTarget(pinnedAbi: string | undefined, show: AptShowFn = aptShow): Promise<ResolvedTarget> {
  if (pinnedAbi !== undefined) {
    const abi = normaliseAbi(pinnedAbi);
    const candidate = await resolveAbi(abi, show);
    if (candidate) return candidate;
    const known = await knownAbis(show);
    throw new KlpgenError(
      `ABI ${abi} not found in apt's package lists (or its image, headers, -dbg and source packages do not share one version)` +
        (known.length ? `; available: ${known.join(', ')}` : '; run apt-get update first'),
    );
  }
  const metas = await show(`linux-headers-${FLAVOUR}`);
  if (metas.length === 0) {
    throw new KlpgenError(
      `apt knows no linux-headers-${FLAVOUR} package: run apt-get update (Debian 12 bookworm and bookworm-security sources are needed)`,
    );
  }
  for (const abi of abisFromMeta(metas)) {
    const candidate = await resolveAbi(abi, show);
    if (candidate) return candidate;
  }
  throw new KlpgenError(
    "no Debian 6.1 kernel ABI has image, headers, -dbg and source packages at one version in apt's lists",
  );
}

export function normaliseAbi(abi: string): string {
  const a = abi.replace(new RegExp(`-${FLAVOUR}$`), '');
  if (!ABI_PATTERN.test(a)) throw new KlpgenError(`bad ABI '${abi}': expected the form 6.1.0-N (e.g. 6.1.0-56)`);
  return a;
}

function abisFromMeta(metas: AptRecord[]): string[] {
  const abis: string[] = [];
  for (const m of metas) {
    const dep = new RegExp(`linux-headers-(6\\.1\\.0-\\d+)-${FLAVOUR}\\b`).exec(m.depends);
    if (dep?.[1] && !abis.includes(dep[1])) abis.push(dep[1]);
  }
  return abis;
}

async function knownAbis(show: AptShowFn): Promise<string[]> {
  const abis = new Set(abisFromMeta(await show(`linux-headers-${FLAVOUR}`)));
  if (show === aptShow) {
    // Older ABIs stay in the archive without the meta-package naming them.
    const r = await run('apt-cache', ['pkgnames', 'linux-image-6.1.0-']);
    for (const m of r.stdout.matchAll(new RegExp(`^linux-image-(6\\.1\\.0-\\d+)-${FLAVOUR}$`, 'gm')))
      abis.add(m[1] as string);
  }
  return [...abis].sort((a, b) => compareDebVersions(b, a));
}

async function resolveAbi(abi: string, show: AptShowFn): Promise<ResolvedTarget | undefined> {
  const pkgs = targetPackages(abi);
  const names = Object.values(pkgs);
  const all = new Map<string, AptRecord[]>();
  for (const name of names) all.set(name, await show(name));
  // Newest image version for which every other package exists at the same version.
  // linux-kbuild-6.1 (Kbuild's host tools) is kept in the archive only for a few
  // versions: an older ABI takes the newest one, which builds modules the same way.
  for (const img of all.get(pkgs.image) ?? []) {
    const records: Record<string, AptRecord> = {};
    let complete = true;
    for (const name of names) {
      const list = all.get(name) ?? [];
      const rec = list.find((r) => r.version === img.version) ?? (name === pkgs.kbuild ? list[0] : undefined);
      if (!rec) {
        complete = false;
        break;
      }
      records[name] = rec;
    }
    if (complete) return { abi, debianVersion: img.version, records };
  }
  return undefined;
}
