import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TargetManifest } from '../target/manifest.js';
import { KlpgenError } from './errors.js';
import { sha256 } from './fsutil.js';

/** A work dir named by what goes in (target and patch contents): the same inputs reuse it. */
export function defaultWorkDir(target: TargetManifest, stage: string, inputs: string[]): string {
  const h = inputs.map((p) => {
    if (!existsSync(p)) throw new KlpgenError(`${p}: no such file`);
    return sha256(readFileSync(p));
  });
  return join(target.paths.root, 'work', `${stage}-${sha256(h.join('\n')).slice(0, 12)}`);
}
