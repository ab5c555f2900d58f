/**
 * The real proof of klp-convert: a livepatch module that reads
 * saved_command_line, a vmlinux global that is NOT exported, is built
 * against the target's headers, converted, and loaded in the VM, where the
 * kernel's livepatch core resolves the symbol through kallsyms.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseElf, readModinfo, SHN_UNDEF } from '../../src/elf/elf64.js';
import { klpConvert, SHF_RELA_LIVEPATCH, SHN_LIVEPATCH } from '../../src/kmod/klp-convert.js';
import { makeEnv } from '../../src/target/setup.js';
import type { VmReport } from '../../src/vm/vm-test.js';
import { ROOT, ensureTarget, klpgen, tempDir } from '../helpers.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'klp-convert');
const SYMBOL = 'saved_command_line';
const KLP_SYMBOL = `.klp.sym.vmlinux.${SYMBOL},0`;

interface Built {
  unconverted: string;
  converted: string;
}
let built: Built | undefined;

/** Builds the fixture module (once) and converts it. */
function buildAndConvert(): Built {
  if (built) return built;
  const t = ensureTarget();
  const dir = tempDir('klpconv');
  copyFileSync(join(FIXTURE, 'livepatch-klp-sym.c'), join(dir, 'livepatch-klp-sym.c'));
  copyFileSync(join(FIXTURE, 'Kbuild'), join(dir, 'Kbuild'));

  // The symbol is in the target's Module.symvers only if it is exported: it must not be.
  const symvers = readFileSync(join(t.paths.headers as string, 'Module.symvers'), 'utf8');
  assert.ok(!symvers.split('\n').some((l) => l.split('\t')[1] === SYMBOL), `${SYMBOL} must not be exported`);

  let unconverted: string;
  const r = klpgen(['build-module', dir, '--abi', t.abi, '--json']);
  if (r.code === 0) {
    unconverted = (JSON.parse(r.stdout) as { modules: string[] }).modules[0]!;
  } else {
    // build-module runs plain `make modules`: modpost refuses the undefined,
    // unexported symbol. KBUILD_MODPOST_WARN=1 turns that into a warning.
    assert.match(r.stderr, /ERROR: modpost: "saved_command_line" \[.*livepatch-klp-sym\.ko\] undefined!/);
    const m = spawnSync('make', ['-C', t.paths.headers as string, `M=${dir}`, 'KBUILD_MODPOST_WARN=1', 'modules'], {
      env: makeEnv(),
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    assert.equal(m.status, 0, `${m.stdout}${m.stderr}`);
    assert.match(`${m.stdout}${m.stderr}`, /WARNING: modpost: "saved_command_line" \[.*\] undefined!/);
    unconverted = join(dir, 'livepatch-klp-sym.ko');
  }
  const outDir = tempDir('klpconv-out');
  const converted = join(outDir, 'livepatch-klp-sym.ko');
  writeFileSync(
    converted,
    klpConvert(readFileSync(unconverted), [{ name: SYMBOL, object: 'vmlinux', sympos: 0 }], unconverted),
  );
  built = { unconverted, converted };
  return built;
}

function loadedTest(): string {
  const p = join(tempDir('klpconv-test'), 'cmdline-klp-convert.sh');
  // Print the line (the report shows it) and pass only when the patch is live.
  writeFileSync(p, "#!/bin/sh\ncat /proc/cmdline\ngrep -q 'klp-convert' /proc/cmdline\n");
  return p;
}

test('klp-convert: the converted module has the livepatch symbol and relocation section the kernel expects', () => {
  const { unconverted, converted } = buildAndConvert();
  const before = parseElf(readFileSync(unconverted), unconverted);
  assert.ok(before.symbols().some((s) => s.name === SYMBOL && s.shndx === SHN_UNDEF));

  const elf = parseElf(readFileSync(converted), converted);
  const syms = elf.symbols();
  assert.ok(!syms.some((s) => s.name === SYMBOL), `no ${SYMBOL} left for the module loader to resolve`);
  const klpSym = syms.find((s) => s.name === KLP_SYMBOL);
  assert.ok(klpSym, KLP_SYMBOL);
  assert.equal(klpSym.shndx, SHN_LIVEPATCH);
  const symtab = elf.sections.find((s) => s.name === '.symtab')!;
  const text = elf.sectionByName('.text')!;
  const klpRela = elf.sectionByName('.klp.rela.vmlinux..text');
  assert.ok(klpRela, '.klp.rela.vmlinux..text');
  assert.equal(klpRela.flags, 0x2 | 0x40 | SHF_RELA_LIVEPATCH);
  assert.equal(klpRela.link, symtab.index);
  assert.equal(klpRela.info, text.index);
  const entries = elf.relocations().find((r) => r.section.index === klpRela.index)!.entries;
  assert.ok(entries.length >= 1);
  assert.ok(entries.every((e) => e.symbol?.name === KLP_SYMBOL));
  assert.deepEqual(readModinfo(elf).get('livepatch'), ['Y']);
  // Every other section is kept, in place.
  assert.deepEqual(
    elf.sections.slice(0, before.sections.length).map((s) => s.name),
    before.sections.map((s) => s.name),
  );

  const re = spawnSync('readelf', ['-W', '-a', converted], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  assert.equal(re.stderr, '');
  assert.match(re.stdout, /\.klp\.rela\.vmlinux\.\.text\s+RELA\s+0{16} [0-9a-f]+ 000018 18 AIo/);
  assert.match(re.stdout, /NOTYPE {2}GLOBAL DEFAULT OS \[0xff20\] \.klp\.sym\.vmlinux\.saved_command_line,0/);
});

test('klp-convert: the converted module loads in the VM and reads the unexported saved_command_line', () => {
  const t = ensureTarget();
  const { converted } = buildAndConvert();
  const r = klpgen(['vm-test', converted, '--test', loadedTest(), '--abi', t.abi, '--json']);
  const rep = JSON.parse(r.stdout) as VmReport;
  assert.equal(r.code, 0, `${rep.failures.join('\n')}\n${r.stderr}`);
  assert.equal(rep.ok, true);
  const p = rep.patches[0]!;
  assert.equal(p.name, 'livepatch_klp_sym');
  assert.deepEqual([p.loaded, p.enabled, p.disabled, p.unloaded], [true, true, true, true]);
  assert.notEqual(rep.test?.before.exitCode, 0);
  assert.equal(rep.test?.after.exitCode, 0);
  assert.notEqual(rep.test?.unloaded.exitCode, 0);
  // The patched function printed the real command line it read through the
  // livepatch relocation, followed by our marker.
  const cmdline = rep.test!.before.output[0]!;
  assert.match(cmdline, /console=/);
  assert.deepEqual(rep.test!.after.output, [`${cmdline} klp-convert`]);
  assert.deepEqual(rep.test!.unloaded.output, [cmdline]);
  assert.deepEqual(rep.problems, []);
  const log = readFileSync(rep.serialLog, 'utf8');
  assert.match(log, /livepatch: 'livepatch_klp_sym': patching complete/);
  assert.doesNotMatch(log, /Unknown symbol/);
});

test('klp-convert: without the conversion the kernel refuses the same module', () => {
  const t = ensureTarget();
  const { unconverted } = buildAndConvert();
  const r = klpgen(['vm-test', unconverted, '--abi', t.abi, '--json']);
  assert.equal(r.code, 1);
  const rep = JSON.parse(r.stdout) as VmReport;
  assert.equal(rep.ok, false);
  assert.equal(rep.patches[0]?.loaded, false);
  assert.match(readFileSync(rep.serialLog, 'utf8'), /livepatch_klp_sym: Unknown symbol saved_command_line/);
});
