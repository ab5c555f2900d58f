/**
 * apt-cache parsing and target resolution. The fixtures are `apt-cache show`
 * output recorded on a Debian 12 machine with bookworm and bookworm-security
 * in its sources (LC_ALL=C), trimmed to the stanzas the tests need.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAptShow, normaliseAbi, resolveTarget, targetPackages, type AptRecord } from '../../src/target/apt.js';
import { compareDebVersions } from '../../src/target/debversion.js';
import { KlpgenError } from '../../src/util/errors.js';

// ---------------------------------------------------------------- recorded apt-cache output

const HEADERS_META = `Package: linux-headers-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Installed-Size: 13
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Provides: linux-headers-generic
Depends: linux-headers-6.1.0-56-amd64 (= 6.1.192-2)
Description: Header files for Linux amd64 configuration (meta-package)
Description-md5: c3bd37fd9656f71f4133642896829a35
Homepage: https://www.kernel.org/
Built-Using: linux (= 6.1.192-2)
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux-signed-amd64/linux-headers-amd64_6.1.192-2_amd64.deb
Size: 1420
SHA256: 2ba10c8ee33ec5719563ba26e0268ae3bfa66147959083123c62a32cdb9446c7

Package: linux-headers-amd64
Source: linux-signed-amd64 (6.1.176+1)
Version: 6.1.176-1
Installed-Size: 13
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Provides: linux-headers-generic
Depends: linux-headers-6.1.0-50-amd64 (= 6.1.176-1)
Description: Header files for Linux amd64 configuration (meta-package)
Description-md5: c3bd37fd9656f71f4133642896829a35
Homepage: https://www.kernel.org/
Built-Using: linux (= 6.1.176-1)
Section: kernel
Priority: optional
Filename: pool/main/l/linux-signed-amd64/linux-headers-amd64_6.1.176-1_amd64.deb
Size: 1424
MD5sum: e04ce4a3614252386d3a328c60a23d5e
SHA256: e2c3c660ba8e57fce6ffe6b0f8047f0a34a3ea5039706e6cc6ad89a11cb037b0

`;

/** As in a Packages file (or apt-cache show --full): a long Description with continuation lines. */
const DBG_56 = `Package: linux-image-6.1.0-56-amd64-dbg
Source: linux
Version: 6.1.192-2
Installed-Size: 5618334
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Description: Debug symbols for linux-image-6.1.0-56-amd64
 This package provides the detached debug symbols for the Linux kernel and
 modules in linux-image-6.1.0-56-amd64.
 .
 Install it to use crash(8), perf or SystemTap.
Description-md5: c1c8372aa641647b9d91008940e378e3
Homepage: https://www.kernel.org/
Section: debug
Priority: optional
Filename: pool/updates/main/l/linux/linux-image-6.1.0-56-amd64-dbg_6.1.192-2_amd64.deb
Size: 858383044
SHA256: e481662ac62dbecc5fa23cc8eff199d140aea356e411ee80f8d9e34c455da7ce

`;

const IMAGE_56 = `Package: linux-image-6.1.0-56-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Installed-Size: 400652
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Replaces: linux-image-6.1.0-56-amd64-unsigned
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Suggests: linux-doc-6.1, debian-kernel-handbook, grub-pc | grub-efi-amd64 | extlinux
Conflicts: linux-image-6.1.0-56-amd64-unsigned
Breaks: fwupdate (<< 12-7), initramfs-tools (<< 0.120+deb8u2), wireless-regdb (<< 2019.06.03-1~)
Description: Linux 6.1 for 64-bit PCs (signed)
Description-md5: eaf7b81be84ec12eb25fe90a4bac0f60
Homepage: https://www.kernel.org/
Built-Using: linux (= 6.1.192-2)
Recommends: firmware-linux-free, apparmor
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux-signed-amd64/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb
Size: 70550672
SHA256: a86e2049672f52354c4536a089203b6c82639420424d31c91cf31a181fd4d8f1

`;

const HEADERS_56 = `Package: linux-headers-6.1.0-56-amd64
Source: linux
Version: 6.1.192-2
Installed-Size: 4150
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Depends: linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86
Description: Header files for Linux 6.1.0-56-amd64
Description-md5: 74167913af5ca759d76a8410f6662558
Homepage: https://www.kernel.org/
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux/linux-headers-6.1.0-56-amd64_6.1.192-2_amd64.deb
Size: 1841552
SHA256: 796a7b4584d7a57f97913e34e80a2fcce96b6c5016fa9d4fc2212a93e4868677

`;

const COMMON_56 = `Package: linux-headers-6.1.0-56-common
Source: linux
Version: 6.1.192-2
Installed-Size: 57192
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: all
Description: Common header files for Linux 6.1.0-56
Description-md5: 04e9f84b79023911f5da7e4e70f4ef5e
Homepage: https://www.kernel.org/
Multi-Arch: foreign
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux/linux-headers-6.1.0-56-common_6.1.192-2_all.deb
Size: 10533276
SHA256: 509e776de8353799a53f4b14d29e87863aac2b7ee9264544bc2821461a853930

`;

const SOURCE = ['6.1.192-2', '6.1.192-1', '6.1.190-1', '6.1.176-1']
  .map(
    (v, i) => `Package: linux-source-6.1
Source: linux
Version: ${v}
Installed-Size: 136069
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: all
Depends: binutils, xz-utils
Suggests: libncurses-dev | ncurses-dev, qtbase5-dev, pkg-config
Description: Linux kernel source for version 6.1 with Debian patches
Description-md5: d43d23de60e09bde0da59cf504ca703d
Homepage: https://www.kernel.org/
Multi-Arch: foreign
Recommends: build-essential, bc, rsync, kmod, cpio, bison, flex, libelf-dev, libssl-dev, linux-config-6.1
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux/linux-source-6.1_${v}_all.deb
Size: ${139331676 + i}
SHA256: ${String(i).repeat(64)}

`,
  )
  .join('');

const KBUILD = `Package: linux-kbuild-6.1
Source: linux
Version: 6.1.192-2
Installed-Size: 2397
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Depends: libc6 (>= 2.34), libelf1 (>= 0.142), libssl3 (>= 3.0.0)
Description: Kbuild infrastructure for Linux 6.1
Description-md5: cb2f9d9e7a9e9f15256e922653025d78
Homepage: https://www.kernel.org/
Multi-Arch: foreign
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux/linux-kbuild-6.1_6.1.192-2_amd64.deb
Size: 1568188
SHA256: 7e852381f1c455a439230ea3261e3669f2307afdbed57db0fc08ed8ffa689f60

Package: linux-kbuild-6.1
Source: linux
Version: 6.1.176-1
Installed-Size: 2248
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Depends: libc6 (>= 2.34), libelf1 (>= 0.142), libssl3 (>= 3.0.0)
Description: Kbuild infrastructure for Linux 6.1
Description-md5: cb2f9d9e7a9e9f15256e922653025d78
Multi-Arch: foreign
Homepage: https://www.kernel.org/
Section: kernel
Priority: optional
Filename: pool/main/l/linux/linux-kbuild-6.1_6.1.176-1_amd64.deb
Size: 1414900
MD5sum: 948d9667233a84d08b06cdbe9271302e
SHA256: 667d2e1e94047031c3bcefa4bb67c2520bbc3cc1cce0aa592e67b108dbbead03

`;

/** The ABI 6.1.0-50 packages, all at 6.1.176-1 (only the fields we use, as apt prints them). */
function abi50Stanza(pkg: string, arch = 'amd64'): string {
  return `Package: ${pkg}
Source: linux
Version: 6.1.176-1
Architecture: ${arch}
Description: ${pkg}
Filename: pool/main/l/linux/${pkg}_6.1.176-1_${arch}.deb
Size: 1000
SHA256: ${'5'.repeat(64)}

`;
}

/** A re-targeted copy of a stanza at another Debian version. */
function atVersion(stanza: string, from: string, to: string): string {
  return stanza.split(from).join(to);
}

type Db = Map<string, string>;

function baseDb(): Db {
  return new Map([
    ['linux-headers-amd64', HEADERS_META],
    ['linux-image-6.1.0-56-amd64', IMAGE_56],
    ['linux-headers-6.1.0-56-amd64', HEADERS_56],
    ['linux-headers-6.1.0-56-common', COMMON_56],
    ['linux-image-6.1.0-56-amd64-dbg', DBG_56],
    ['linux-source-6.1', SOURCE],
    ['linux-kbuild-6.1', KBUILD],
    ['linux-image-6.1.0-50-amd64', abi50Stanza('linux-image-6.1.0-50-amd64')],
    ['linux-headers-6.1.0-50-amd64', abi50Stanza('linux-headers-6.1.0-50-amd64')],
    ['linux-headers-6.1.0-50-common', abi50Stanza('linux-headers-6.1.0-50-common', 'all')],
    ['linux-image-6.1.0-50-amd64-dbg', abi50Stanza('linux-image-6.1.0-50-amd64-dbg')],
  ]);
}

/** Behaves as aptShow does: that package's records, newest first; the names asked are logged. */
function showFrom(db: Db, asked: string[] = []) {
  return async (pkg: string): Promise<AptRecord[]> => {
    asked.push(pkg);
    return parseAptShow(db.get(pkg) ?? '')
      .filter((r) => r.package === pkg)
      .sort((a, b) => compareDebVersions(b.version, a.version));
  };
}

// ---------------------------------------------------------------- parseAptShow

test('parseAptShow: every stanza, with the fields we use', () => {
  const recs = parseAptShow(HEADERS_META);
  assert.equal(recs.length, 2);
  assert.deepEqual(recs[0], {
    package: 'linux-headers-amd64',
    version: '6.1.192-2',
    depends: 'linux-headers-6.1.0-56-amd64 (= 6.1.192-2)',
    sha256: '2ba10c8ee33ec5719563ba26e0268ae3bfa66147959083123c62a32cdb9446c7',
    size: 1420,
    filename: 'pool/updates/main/l/linux-signed-amd64/linux-headers-amd64_6.1.192-2_amd64.deb',
  });
  assert.deepEqual(recs[1], {
    package: 'linux-headers-amd64',
    version: '6.1.176-1',
    depends: 'linux-headers-6.1.0-50-amd64 (= 6.1.176-1)',
    sha256: 'e2c3c660ba8e57fce6ffe6b0f8047f0a34a3ea5039706e6cc6ad89a11cb037b0',
    size: 1424,
    filename: 'pool/main/l/linux-signed-amd64/linux-headers-amd64_6.1.176-1_amd64.deb',
  });
});

test('parseAptShow: continuation lines stay in their field and start no new field', () => {
  const [rec, ...rest] = parseAptShow(DBG_56);
  assert.equal(rest.length, 0);
  assert.ok(rec);
  assert.equal(rec.package, 'linux-image-6.1.0-56-amd64-dbg');
  assert.equal(rec.version, '6.1.192-2');
  // Fields after the multi-line Description are still read.
  assert.equal(rec.size, 858383044);
  assert.equal(rec.sha256, 'e481662ac62dbecc5fa23cc8eff199d140aea356e411ee80f8d9e34c455da7ce');
  assert.equal(rec.filename, 'pool/updates/main/l/linux/linux-image-6.1.0-56-amd64-dbg_6.1.192-2_amd64.deb');
  assert.equal(rec.depends, '');
});

test('parseAptShow: a continued Depends field is joined, not cut', () => {
  const text = `Package: foo
Version: 1.0-1
Depends: libc6 (>= 2.34),
 libelf1 (>= 0.142)
Size: 12
SHA256: ${'a'.repeat(64)}
`;
  const [rec] = parseAptShow(text);
  assert.ok(rec);
  assert.match(rec.depends, /^libc6 \(>= 2\.34\),\s*libelf1 \(>= 0\.142\)$/);
  assert.equal(rec.size, 12);
  assert.equal(rec.sha256, 'a'.repeat(64));
});

test('parseAptShow: stanzas of several packages; version-less or name-less stanzas dropped', () => {
  const text = `${IMAGE_56}${HEADERS_56}Package: broken
Description: no version

Version: 1.0
Description: no package

${KBUILD}`;
  const recs = parseAptShow(text);
  assert.deepEqual(
    recs.map((r) => `${r.package}=${r.version}`),
    [
      'linux-image-6.1.0-56-amd64=6.1.192-2',
      'linux-headers-6.1.0-56-amd64=6.1.192-2',
      'linux-kbuild-6.1=6.1.192-2',
      'linux-kbuild-6.1=6.1.176-1',
    ],
  );
  assert.equal(
    recs[0]?.depends,
    'kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool',
  );
  assert.equal(
    recs[1]?.depends,
    'linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86',
  );
  assert.equal(recs[3]?.size, 1414900);
});

test('parseAptShow: missing fields get empty defaults; empty input gives no records', () => {
  const [rec] = parseAptShow('Package: bare\nVersion: 2\n');
  assert.deepEqual(rec, { package: 'bare', version: '2', depends: '', sha256: '', size: 0, filename: '' });
  assert.deepEqual(parseAptShow(''), []);
  assert.deepEqual(parseAptShow('\n\n\n'), []);
});

// ---------------------------------------------------------------- normaliseAbi

test('normaliseAbi accepts 6.1.0-N with or without the flavour', () => {
  assert.equal(normaliseAbi('6.1.0-56'), '6.1.0-56');
  assert.equal(normaliseAbi('6.1.0-56-amd64'), '6.1.0-56');
  assert.equal(normaliseAbi('6.1.0-9'), '6.1.0-9');
  assert.equal(normaliseAbi('6.1.0-123-amd64'), '6.1.0-123');
});

test('normaliseAbi rejects anything else with a KlpgenError naming the expected form', () => {
  for (const bad of [
    '6.2.0-1',
    'foo',
    '6.1.0-',
    '6.1.0',
    '6.1.0-56-arm64',
    '6.1.0-56-amd64-dbg',
    '',
    ' 6.1.0-56',
    '6.1.0-56a',
    '16.1.0-5',
  ]) {
    assert.throws(
      () => normaliseAbi(bad),
      (e: unknown) => {
        assert.ok(e instanceof KlpgenError, `${bad}: KlpgenError`);
        assert.match(e.message, /6\.1\.0-N/, bad);
        assert.ok(e.message.includes(`'${bad}'`), `${bad}: message quotes the input: ${e.message}`);
        return true;
      },
    );
  }
});

// ---------------------------------------------------------------- targetPackages

test('targetPackages names the six packages of one ABI', () => {
  assert.deepEqual(targetPackages('6.1.0-56'), {
    image: 'linux-image-6.1.0-56-amd64',
    headers: 'linux-headers-6.1.0-56-amd64',
    headersCommon: 'linux-headers-6.1.0-56-common',
    dbg: 'linux-image-6.1.0-56-amd64-dbg',
    source: 'linux-source-6.1',
    kbuild: 'linux-kbuild-6.1',
  });
});

// ---------------------------------------------------------------- resolveTarget

test('resolveTarget: the newest ABI named by linux-headers-amd64, all packages at one version', async () => {
  const asked: string[] = [];
  const t = await resolveTarget(undefined, showFrom(baseDb(), asked));
  assert.equal(t.abi, '6.1.0-56');
  assert.equal(t.debianVersion, '6.1.192-2');
  assert.deepEqual(Object.keys(t.records).sort(), Object.values(targetPackages('6.1.0-56')).sort());
  for (const [name, rec] of Object.entries(t.records)) {
    assert.equal(rec.package, name);
    assert.equal(rec.version, '6.1.192-2', name);
  }
  assert.equal(
    t.records['linux-image-6.1.0-56-amd64-dbg']?.sha256,
    'e481662ac62dbecc5fa23cc8eff199d140aea356e411ee80f8d9e34c455da7ce',
  );
  assert.equal(t.records['linux-image-6.1.0-56-amd64']?.size, 70550672);
  assert.equal(t.records['linux-source-6.1']?.sha256, '0'.repeat(64));
  assert.equal(asked[0], 'linux-headers-amd64');
  // The older ABI was not needed.
  assert.ok(!asked.some((p) => p.includes('6.1.0-50')), asked.join(' '));
});

test('resolveTarget: an ABI whose -dbg package is missing is skipped for the next', async () => {
  const db = baseDb();
  db.delete('linux-image-6.1.0-56-amd64-dbg');
  const t = await resolveTarget(undefined, showFrom(db));
  assert.equal(t.abi, '6.1.0-50');
  assert.equal(t.debianVersion, '6.1.176-1');
  assert.equal(t.records['linux-image-6.1.0-50-amd64-dbg']?.version, '6.1.176-1');
  assert.equal(t.records['linux-source-6.1']?.version, '6.1.176-1');
  assert.equal(t.records['linux-source-6.1']?.sha256, '3'.repeat(64));
  assert.equal(
    t.records['linux-kbuild-6.1']?.sha256,
    '667d2e1e94047031c3bcefa4bb67c2520bbc3cc1cce0aa592e67b108dbbead03',
  );
});

test("resolveTarget: an ABI whose -dbg package lacks the image's version is skipped for the next", async () => {
  const db = baseDb();
  // The mirror has the -dbg of an older upload only.
  db.set('linux-image-6.1.0-56-amd64-dbg', atVersion(DBG_56, '6.1.192-2', '6.1.192-1'));
  const t = await resolveTarget(undefined, showFrom(db));
  assert.equal(t.abi, '6.1.0-50');
  assert.equal(t.debianVersion, '6.1.176-1');
  assert.deepEqual(new Set(Object.values(t.records).map((r) => r.version)), new Set(['6.1.176-1']));
});

test('resolveTarget: within one ABI, an older upload is used when the newest is incomplete', async () => {
  const db = baseDb();
  db.set('linux-image-6.1.0-56-amd64', IMAGE_56 + atVersion(IMAGE_56, '6.1.192-2', '6.1.192-1'));
  db.set('linux-headers-6.1.0-56-amd64', HEADERS_56 + atVersion(HEADERS_56, '6.1.192-2', '6.1.192-1'));
  db.set('linux-headers-6.1.0-56-common', COMMON_56 + atVersion(COMMON_56, '6.1.192-2', '6.1.192-1'));
  db.set('linux-kbuild-6.1', KBUILD + atVersion(KBUILD.split('\n\n')[0] as string, '6.1.192-2', '6.1.192-1') + '\n\n');
  db.set('linux-image-6.1.0-56-amd64-dbg', atVersion(DBG_56, '6.1.192-2', '6.1.192-1'));
  const t = await resolveTarget(undefined, showFrom(db));
  assert.equal(t.abi, '6.1.0-56');
  assert.equal(t.debianVersion, '6.1.192-1');
  for (const rec of Object.values(t.records)) assert.equal(rec.version, '6.1.192-1', rec.package);
  assert.equal(t.records['linux-source-6.1']?.sha256, '1'.repeat(64));
});

test('resolveTarget: a pinned ABI is used even when a newer one exists', async () => {
  for (const pin of ['6.1.0-50', '6.1.0-50-amd64']) {
    const asked: string[] = [];
    const t = await resolveTarget(pin, showFrom(baseDb(), asked));
    assert.equal(t.abi, '6.1.0-50', pin);
    assert.equal(t.debianVersion, '6.1.176-1', pin);
    assert.equal(t.records['linux-image-6.1.0-50-amd64']?.version, '6.1.176-1');
    assert.ok(!asked.some((p) => p.includes('6.1.0-56')), asked.join(' '));
  }
  const t = await resolveTarget('6.1.0-56', showFrom(baseDb()));
  assert.equal(t.abi, '6.1.0-56');
  assert.equal(t.debianVersion, '6.1.192-2');
});

test('resolveTarget: an unknown pinned ABI gives a KlpgenError listing the available ABIs', async () => {
  await assert.rejects(resolveTarget('6.1.0-99', showFrom(baseDb())), (e: unknown) => {
    assert.ok(e instanceof KlpgenError);
    assert.match(e.message, /ABI 6\.1\.0-99 not found/);
    assert.match(e.message, /available: 6\.1\.0-56, 6\.1\.0-50/);
    return true;
  });
});

test('resolveTarget: a pinned ABI with an incomplete package set is refused', async () => {
  const db = baseDb();
  db.delete('linux-image-6.1.0-50-amd64-dbg');
  await assert.rejects(resolveTarget('6.1.0-50', showFrom(db)), (e: unknown) => {
    assert.ok(e instanceof KlpgenError);
    assert.match(e.message, /6\.1\.0-50 not found/);
    assert.match(e.message, /-dbg/);
    return true;
  });
});

test('resolveTarget: a malformed pinned ABI is refused before apt is asked', async () => {
  const asked: string[] = [];
  await assert.rejects(resolveTarget('6.2.0-1', showFrom(baseDb(), asked)), (e: unknown) => {
    assert.ok(e instanceof KlpgenError);
    assert.match(e.message, /expected the form 6\.1\.0-N/);
    return true;
  });
  assert.deepEqual(asked, []);
});

test('resolveTarget: empty apt lists ask for apt-get update', async () => {
  const empty = showFrom(new Map());
  await assert.rejects(resolveTarget(undefined, empty), (e: unknown) => {
    assert.ok(e instanceof KlpgenError);
    assert.match(e.message, /linux-headers-amd64/);
    assert.match(e.message, /apt-get update/);
    return true;
  });
  await assert.rejects(resolveTarget('6.1.0-56', empty), (e: unknown) => {
    assert.ok(e instanceof KlpgenError);
    assert.match(e.message, /run apt-get update first/);
    return true;
  });
});

test('resolveTarget: no complete ABI at all is a KlpgenError', async () => {
  const db = baseDb();
  db.delete('linux-source-6.1');
  await assert.rejects(resolveTarget(undefined, showFrom(db)), (e: unknown) => {
    assert.ok(e instanceof KlpgenError);
    assert.match(e.message, /no Debian 6\.1 kernel ABI/);
    return true;
  });
});
