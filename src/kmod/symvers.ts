import { readFileSync } from 'node:fs';

/** Exported symbols of the target (vmlinux and its modules), from the headers' Module.symvers. */
export function readSymvers(path: string): Map<string, { object: string; license: string }> {
  const out = new Map<string, { object: string; license: string }>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const f = line.split('\t');
    if (f.length < 4 || !f[1]) continue;
    out.set(f[1], { object: (f[2] ?? '').replace(/^.*\//, ''), license: f[3] ?? '' });
  }
  return out;
}
