/**
 * A failure the user can act on. The CLI prints it as one line
 * (`klpgen: error: ...`) and exits non-zero; anything else is a bug.
 */
export class KlpgenError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'KlpgenError';
  }
}

/**
 * Not a failure: the fix changes no code the running kernel runs, so there is no module to
 * make. The CLI says so on one line and exits 0.
 */
export class NothingToPatch extends KlpgenError {
  constructor(message: string) {
    super(message, 0);
    this.name = 'NothingToPatch';
  }
}

export function fail(message: string): never {
  throw new KlpgenError(message);
}

/** Node's system errors carry a code (ENOENT, ENOSPC, ...). */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}
