import { join } from 'node:path';
import type { TargetManifest } from '../target/manifest.js';
import { KlpgenError } from '../util/errors.js';
import type { HeaderChange } from './header-change.js';
import { includingUnits, loadIncludeGraph } from './include-graph.js';
import { firstUsed, readsHeader, UsageIndex } from './index.js';
import { mentionClosure, mentioningTus } from './mentions.js';

/**
 * The translation units whose code a header change can reach: those that
 * read the header (their usage record's line markers say so) and use one of
 * the names the change touches. With a complete index every built TU's
 * record is at hand; without one, the candidates are the tree's includers
 * of the header (include-graph.ts) and only their records are made.
 */
export interface HeaderUsers {
  header: string;
  /** 'index': every built TU has a record; 'on demand': records of the header's includers only. */
  via: 'index' | 'on demand';
  /** Built TUs that read the header. */
  includers: number;
  /** TUs whose code can change, each with the first touched name it uses (null: the change is unbounded). */
  users: { file: string; name: string | null }[];
  /** Records made for this query (the rest came from the cache). */
  made: number;
  seconds: number;
}

export async function headerUsers(target: TargetManifest, change: HeaderChange): Promise<HeaderUsers> {
  const started = Date.now();
  const index = await UsageIndex.open(target);
  const complete = index.meta()?.complete === true;
  let candidates: string[];
  let textIncluders: number | undefined;
  if (complete) candidates = index.files;
  else {
    const graph = await loadIncludeGraph(
      target.paths.source,
      target.paths.build,
      join(index.dir, 'include-graph.json.gz'),
    );
    const builtIncluders = (h: string) => includingUnits(graph, h).filter((f) => index.isBuilt(f));
    candidates = builtIncluders(change.header);
    textIncluders = candidates.length;
    if (change.names !== null) {
      // Only those whose text can name what changed are preprocessed.
      const closure = await mentionClosure(target.paths.source, change.names);
      if (closure) candidates = await mentioningTus(target.paths.source, graph, candidates, closure, builtIncluders);
    }
  }
  const label = `users of ${change.header}`;
  const { records, failed, made } = await index.ensure(candidates, { label });
  const [f, why] = [...failed][0] ?? [];
  if (f !== undefined) throw new KlpgenError(`${change.header}: cannot tell whether ${f} uses it: ${why}`);
  const users: HeaderUsers['users'] = [];
  let includers = 0;
  for (const f of [...records.keys()].sort()) {
    const r = records.get(f);
    if (!r || !readsHeader(r, change.header)) continue;
    includers++;
    if (change.names === null) users.push({ file: f, name: null });
    else {
      const name = firstUsed(r, change.names);
      if (name !== undefined) users.push({ file: f, name });
    }
  }
  return {
    header: change.header,
    via: complete ? 'index' : 'on demand',
    // On demand, the TUs that include it by the tree's #include lines (not all are preprocessed).
    includers: textIncluders ?? includers,
    users,
    made,
    seconds: (Date.now() - started) / 1000,
  };
}
