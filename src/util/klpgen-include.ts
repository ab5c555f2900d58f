import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory holding <klpgen/livepatch.h> (callbacks and klp_state of a fix). Compiles of a
 * patched TU and of the module see it after every kernel directory, so it shadows nothing.
 */
export const KLPGEN_INCLUDE = resolve(fileURLToPath(import.meta.url), '..', '..', '..', '..', 'include');
