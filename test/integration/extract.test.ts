import { strict as assert } from 'node:assert';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CreateReport } from '../../src/create/create.js';
import type { VmReport } from '../../src/vm/vm-test.js';
import { ElfWriter } from '../../src/elf/writer.js';
import { checkKlpSymbols, verify } from '../../src/verify/verify.js';
import { ROOT, abiArgs, ensureTarget, klpgen, tempDir } from '../helpers.js';

/**
 * A fix whose new function has an entry in each of the kernel's code-place tables: it is taken
 * from the patched build's object, verified, and proven in the VM (the jump label follows its
 * key both ways, the exception-table entry fixes a fault up). Then faults injected into the
 * extracted object each fail verify with one line.
 */
const PATCH = join(ROOT, 'test/fixtures/patches/special-sections.patch');
const LOADED = join(ROOT, 'test/fixtures/patches/special-sections-LOADED.test');

test('extract: every special section of the new function is carried, verified and works in the VM', () => {
  ensureTarget();
  const dir = tempDir('extract');
  try {
    const ko = join(dir, 'special.ko');
    const work = join(dir, 'work');
    const c = klpgen(['create', PATCH, '--name', 'special', '-o', ko, '--work-dir', work, '--json', ...abiArgs()]);
    assert.equal(c.code, 0, c.stderr);
    const r = JSON.parse(c.stdout) as CreateReport;
    assert.equal(r.verification.status, 'passed');
    assert.equal(r.code[0]?.how, 'extracted', JSON.stringify(r.code));
    const entries = r.code[0]?.specialEntries ?? {};
    for (const s of [
      '__jump_table',
      '.static_call_sites',
      '__ex_table',
      '.altinstructions',
      '__bug_table',
      '.retpoline_sites',
      '.orc_unwind_ip',
      '__mcount_loc',
    ]) {
      assert.ok((entries[s] ?? 0) > 0, `${s} not carried: ${JSON.stringify(entries)}`);
    }
    assert.ok(r.emitted.copied.every((f) => f.made === 'extracted'));

    const v = klpgen(['vm-test', ko, '--test', LOADED, '--json', ...abiArgs()]);
    const rep = JSON.parse(v.stdout) as VmReport;
    assert.equal(v.code, 0, rep.failures.join('\n'));
    const p = rep.patches[0]!;
    assert.ok(p.transitionSeconds !== null && p.transitionSeconds <= 10, `transition ${p.transitionSeconds}`);
    assert.deepEqual(rep.problems, []);

    // Fault injection on the extracted object.
    const obj = join(work, '5-kmod', 'special.o');
    const patched = join(work, '2-objects', 'fs_proc_version', 'patched', 'version.o');
    const processed = join(work, '4-extract', 'fs_proc_version', 'patched.o');
    const check = (mutate: (w: ElfWriter) => void) => {
      const w = ElfWriter.load(readFileSync(obj), obj);
      mutate(w);
      const bad = join(dir, 'bad.o');
      writeFileSync(bad, w.serialize());
      return verify({
        moduleObject: bad,
        patchedObject: patched,
        patchedProcessed: processed,
        functions: new Map([['livepatch_version_proc_show', 'version_proc_show']]),
        codeChanged: ['version_proc_show'],
        replaced: new Set(['version_proc_show']),
        coveredByCallers: new Set(),
      });
    };
    assert.equal(check(() => {}).status, 'passed', 'the unmutated object verifies');
    const text = (w: ElfWriter) => w.sectionByName('.text.livepatch_version_proc_show')!;
    const flipped = check((w) => {
      const d = Buffer.from(w.sectionData(text(w)));
      d[0x20] = (d[0x20] as number) ^ 0xff;
      w.setSectionData(text(w), d);
    });
    assert.equal(flipped.status, 'failed');
    assert.match(flipped.functions[0]?.reason ?? '', /code differs/);
    const noJump = check((w) => {
      const jt = w.sectionByName('__jump_table')!;
      w.setSectionData(jt, Buffer.alloc(0));
      w.setRelocations(w.sectionByName('.rela__jump_table')!, []);
    });
    assert.equal(noJump.status, 'failed');
    assert.match(noJump.functions[0]?.reason ?? '', /^__jump_table: 0 entries, the patched build has 1$/);
    const noOrc = check((w) => {
      const ip = w.sectionByName('.orc_unwind_ip')!;
      const orc = w.sectionByName('.orc_unwind')!;
      w.setSectionData(ip, w.sectionData(ip).subarray(0, ip.size - 4));
      w.setSectionData(orc, w.sectionData(orc).subarray(0, orc.size - 6));
      const rela = w.sectionByName('.rela.orc_unwind_ip')!;
      w.setRelocations(
        rela,
        w.relocations(rela).filter((x) => x.offset < BigInt(ip.size - 4)),
      );
    });
    assert.equal(noOrc.status, 'failed');
    assert.match(noOrc.functions[0]?.reason ?? '', /^\.orc_unwind_ip: \d+ entries, the patched build has \d+$/);

    // A KLP symbol with the wrong sympos is not the resolution's.
    const final = readFileSync(ko);
    const expected = r.symbols
      .filter((s) => s.resolution === 'klp')
      .map((s) => ({ object: s.object as string, name: s.name, sympos: s.sympos as number }));
    assert.deepEqual(checkKlpSymbols(final, expected), []);
    const w = ElfWriter.load(final, ko);
    const sym = w.symbols.find((s) => s.name === '.klp.sym.vmlinux.sched_schedstats,0');
    assert.ok(sym, 'the static key is a KLP symbol');
    w.renameSymbol(sym, '.klp.sym.vmlinux.sched_schedstats,2');
    const problems = checkKlpSymbols(w.serialize(), expected);
    assert.equal(problems.length, 1);
    assert.match(problems[0] as string, /sched_schedstats,2: not a symbol the resolution chose/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
