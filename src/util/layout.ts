import { basename, join } from 'node:path';

/**
 * The work dir of one fix, stage by stage, as klp-build numbers its own: every stage reads and
 * writes its files through these names, none spells a path itself.
 *   1-sources/{original,patched}/  the changed files, before and after the fix
 *   2-objects/<tu>/{original,patched}/  each TU compiled both ways (.i, .o, ipa-clones)
 *   3-analysis/analysis.json  the must-replace set and the refusals
 *   4-extract/<tu>/  the patched object after objtool, and the functions taken from it
 *   4-source/  the reviewable C of the new functions, the klp_patch scaffolding, plan.json
 *   5-kmod/  the module build, before and after KLP relocations
 */
export class WorkLayout {
  constructor(readonly root: string) {}

  /** 1-sources/<variant>: copies of the target's files the fix changes, before or after it. */
  sources(variant: 'original' | 'patched'): string {
    return join(this.root, '1-sources', variant);
  }

  sourcesDir(): string {
    return join(this.root, '1-sources');
  }

  /** 2-objects/<tu>/: a TU's two builds. */
  objects(file: string): TuObjects {
    const dir = join(this.root, '2-objects', tuKey(file));
    const base = basename(file, '.c');
    const original = join(dir, 'original');
    const patched = join(dir, 'patched');
    return {
      base,
      original,
      patched,
      originalObject: join(original, `${base}.o`),
      patchedObject: join(patched, `${base}.o`),
      patchedPreprocessed: join(patched, `${base}.i`),
    };
  }

  analysisDir(): string {
    return join(this.root, '3-analysis');
  }

  analysisReport(): string {
    return join(this.analysisDir(), 'analysis.json');
  }

  /** 4-extract/<tu>/: extraction's work for one TU. */
  extractDir(file: string): string {
    return join(this.root, '4-extract', tuKey(file));
  }

  /** The patched build of a TU after Kbuild's objtool run. */
  processedObject(file: string): string {
    return join(this.extractDir(file), 'patched.o');
  }

  /** 4-source/: the C files of the new functions and the scaffolding. */
  sourceDir(): string {
    return join(this.root, '4-source');
  }

  /** What each TU's module code is made of and why (4-source/plan.json). */
  plan(): string {
    return join(this.sourceDir(), 'plan.json');
  }

  /** 5-kmod/: the module's Kbuild directory. */
  kmodDir(): string {
    return join(this.root, '5-kmod');
  }
}

export interface TuObjects {
  /** The .c's name without `.c` (the objects' file names). */
  base: string;
  original: string;
  patched: string;
  originalObject: string;
  patchedObject: string;
  patchedPreprocessed: string;
}

/** A stable directory name for one TU's files in a stage dir (`fs/proc/version.c` → `fs_proc_version`). */
export function tuKey(file: string): string {
  return file.replace(/\//g, '_').replace(/\.c$/, '');
}
