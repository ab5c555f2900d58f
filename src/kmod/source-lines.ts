import { run } from '../util/exec.js';

/** A place in an object's code: a section and an offset in it. */
export interface CodePlace {
  section: string;
  offset: number;
}

/**
 * The source lines of code places, from the object's debug line table (binutils' addr2line,
 * which reads relocatable objects section by section): for each place, its inlining chain,
 * innermost first, as `file:line` with the file's base name (the module and the analysis'
 * builds see the same headers and .c under different directories). Lines the table does not
 * know come back as `?`.
 */
export async function sourceLines(object: string, places: readonly CodePlace[]): Promise<string[]> {
  const out: string[] = places.map(() => '?');
  const bySection = new Map<string, number[]>();
  places.forEach((p, i) => {
    const list = bySection.get(p.section);
    if (list) list.push(i);
    else bySection.set(p.section, [i]);
  });
  for (const [section, indexes] of bySection) {
    const r = await run('addr2line', [
      '-e',
      object,
      '-j',
      section,
      '-i',
      '-a',
      ...indexes.map((i) => `0x${(places[i] as CodePlace).offset.toString(16)}`),
    ]);
    if (r.code !== 0) continue;
    const chains: string[][] = [];
    for (const line of r.stdout.split('\n')) {
      if (/^0x[0-9a-f]+$/.test(line)) {
        chains.push([]);
        continue;
      }
      const m = /^(.*):(\d+|\?)(?: \(discriminator \d+\))?$/.exec(line);
      if (m && chains.length)
        (chains[chains.length - 1] as string[]).push(`${(m[1] as string).split('/').pop()}:${m[2]}`);
    }
    indexes.forEach((i, k) => {
      const chain = chains[k];
      if (chain && chain.length && !chain.some((c) => c.startsWith('??:') || c.endsWith(':?') || c.endsWith(':0')))
        out[i] = chain.join('<');
    });
  }
  return out;
}
