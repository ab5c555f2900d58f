/**
 * A "newc" cpio archive, the format the kernel unpacks as initramfs.
 * Written here rather than by cpio(1) so the bytes depend only on the inputs
 * (fixed mtimes, owners and inode numbers).
 */
export interface CpioEntry {
  path: string;
  /** File type and permission bits, e.g. 0o100755 for an executable. */
  mode: number;
  data?: Buffer;
  /** For symlinks. */
  linkTarget?: string;
}

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(len: number): Buffer {
  return Buffer.alloc((4 - (len % 4)) % 4);
}

export function cpioArchive(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const push = (name: string, mode: number, body: Buffer) => {
    const nameBuf = Buffer.from(`${name}\0`, 'utf8');
    const header = Buffer.from(
      '070701' +
        hex8(ino++) +
        hex8(mode) +
        hex8(0) +
        hex8(0) +
        hex8((mode & 0o170000) === S_IFDIR ? 2 : 1) +
        hex8(0) +
        hex8(body.length) +
        hex8(0) +
        hex8(0) +
        hex8(0) +
        hex8(0) +
        hex8(nameBuf.length) +
        hex8(0),
      'ascii',
    );
    parts.push(header, nameBuf, pad4(header.length + nameBuf.length), body, pad4(body.length));
  };
  for (const e of entries) {
    const body = e.linkTarget !== undefined ? Buffer.from(e.linkTarget, 'utf8') : (e.data ?? Buffer.alloc(0));
    push(e.path.replace(/^\/+/, ''), e.mode, body);
  }
  push('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}
