import { KlpgenError } from './errors.js';

/**
 * Why a fix cannot become a safe livepatch. One kind per reason a reviewer would give; the
 * scoreboard counts refusals by kind, the message says the details.
 */
export type RefusalKind =
  /** An assembly source changed: klpgen replaces C functions only. */
  | 'assembly'
  /** A Makefile or Kconfig changed: a build change, not code a livepatch can carry. */
  | 'build-configuration'
  /** A file added or removed (a new TU, a new or deleted header). */
  | 'file-added-or-removed'
  /** A header included by too many TUs to analyse one by one, whose change is not purely additive. */
  | 'wide-header'
  /** A variable's declaration or initializer changed: the running kernel's data would not follow. */
  | 'data-change'
  /** A struct or union changed. */
  | 'struct-layout'
  /** An enum or enumerator changed: constants baked into unchanged code would disagree. */
  | 'constant-change'
  /** A typedef changed. */
  | 'type-change'
  /** A registration table the kernel reads from its image changed (initcalls, PCI fixups, params). */
  | 'kernel-table'
  /** A changed compiler clone nothing in its TU calls: its callers cannot be seen. */
  | 'private-clone'
  /** A changed function shares its code or address with another (ICF, alias). */
  | 'shared-address'
  /** A changed function is __init or __exit. */
  | 'init-exit'
  /** A changed function cannot be traced (notrace, noinstr) and its callers cannot all be replaced. */
  | 'untraceable'
  /** Code changed that no redirectable function covers. */
  | 'uncovered-code'
  /** A function to replace cannot be found (uniquely) in the running kernel. */
  | 'symbol-not-found'
  /** A function-local static cannot be tied to exactly one of the running kernel's. */
  | 'static-local'
  /** A function to replace is defined in a header: its out-of-line copies are not livepatched yet. */
  | 'header-function'
  /** A reference the new code needs cannot be made from a livepatch module. */
  | 'unresolvable-reference';

export interface Refusal {
  kind: RefusalKind;
  reason: string;
  file: string;
  line: number;
  /** The function the refusal is about, where there is one. */
  function?: string;
}

/** `create`'s refusal: exit code 2, the refusals typed for the scoreboard and --json. */
export class RefusedError extends KlpgenError {
  constructor(readonly refusals: Refusal[]) {
    super(`refused:\n${refusals.map((r) => `  ${r.file}${r.line ? `:${r.line}` : ''}: ${r.reason}`).join('\n')}`, 2);
  }
}

/** A refusal with no line: a whole file, or several. */
export function refuse(kind: RefusalKind, file: string, reason: string, fn?: string): never {
  throw new RefusedError([{ kind, reason, file, line: 0, ...(fn ? { function: fn } : {}) }]);
}
