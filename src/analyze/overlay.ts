import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';

/** For `-I` directories inside the tree that an overlay also has, the overlay's copy comes first. */
export function overlayIncludes(argv: string[], tree: string, overlay: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const dir = a === '-I' ? argv[i + 1] : a.startsWith('-I') ? a.slice(2) : undefined;
    if (dir !== undefined && dir.startsWith(`${tree}/`)) {
      const mirrored = join(overlay, relative(tree, dir));
      if (existsSync(mirrored)) out.push('-I', mirrored);
    }
    out.push(a);
  }
  return out;
}
