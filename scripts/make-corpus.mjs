#!/usr/bin/env node
// Builds the real-fix corpus from Debian's archive: the kernel source of a
// target ABI against the linux-source-6.1 of a later Debian version, split
// into one patch per changed kernel source file (kpatch's naming: X.patch).
//
//   node scripts/make-corpus.mjs OLD_ABI NEW_SOURCE_DIR OUT_DIR
//   e.g. node scripts/make-corpus.mjs 6.1.0-54 ~/.cache/klpgen/targets/6.1.0-56/source corpus/6.1.0-54
//
// OLD_ABI must be set up (`klpgen target setup --abi OLD_ABI`); NEW_SOURCE_DIR
// is any extracted linux-source-6.1 tree (a newer target's `source` dir).
// The output is deterministic: same trees, same bytes.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

const [abi, newDir, outDir] = process.argv.slice(2);
if (!abi || !newDir || !outDir) {
  console.error('usage: make-corpus.mjs OLD_ABI NEW_SOURCE_DIR OUT_DIR');
  process.exit(2);
}
const cache = process.env.KLPGEN_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'klpgen');
const oldDir = join(cache, 'targets', abi, 'source');
if (!existsSync(oldDir)) {
  console.error(`target ${abi} is not set up: run klpgen target setup --abi ${abi}`);
  process.exit(1);
}
// Kernel code only: not tools/, scripts/, Documentation/, samples/ or the Debian packaging.
const SKIP = /^(tools|scripts|Documentation|samples|usr|debian|LICENSES)\//;
const r = spawnSync('diff', ['-rq', oldDir, resolve(newDir)], { encoding: 'utf8', maxBuffer: 1 << 28 });
const files = [];
for (const line of r.stdout.split('\n')) {
  let m = /^Files (.*) and (.*) differ$/.exec(line);
  let rel;
  if (m) rel = m[1].slice(oldDir.length + 1);
  else if ((m = /^Only in (.*): (.*)$/.exec(line))) {
    const dir = m[1].startsWith(oldDir) ? m[1].slice(oldDir.length) : m[1].slice(resolve(newDir).length);
    rel = `${dir.replace(/^\//, '')}/${m[2]}`.replace(/^\//, '');
  }
  if (!rel || SKIP.test(rel) || !/\.(c|h|S)$/.test(rel)) continue;
  files.push(rel);
}
files.sort();

// Only what the target builds: built-in .c files (compile units of its debug
// vmlinux), .c files of its modules (a single-file module, or named in the
// directory's Makefile as part of a module the image ships), headers under
// include/, arch/x86/ or a directory with such a .c file, and x86 assembly.
const cus = spawnSync('sh', ['-c', `readelf --debug-dump=info --dwarf-depth=1 ${join(cache, 'targets', abi, 'dbg/vmlinux')} 2>/dev/null | grep -A8 DW_TAG_compile_unit | grep DW_AT_name | sed 's/.*: //'`], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout;
const builtin = new Set(cus.split('\n').filter((f) => f.endsWith('.c')));
const modRoot = join(cache, 'targets', abi, 'pkg/lib/modules');
const kos = new Set(spawnSync('sh', ['-c', `cd ${modRoot}/* && find kernel -name '*.ko' | sed 's#^kernel/##'`], { encoding: 'utf8', maxBuffer: 1 << 26 }).stdout.split('\n').filter(Boolean));
const moduleMember = (rel) => {
  const dir = rel.slice(0, rel.lastIndexOf('/'));
  const base = rel.slice(rel.lastIndexOf('/') + 1).replace(/\.c$/, '');
  if (kos.has(`${dir}/${base}.ko`)) return true;
  const mk = ['Makefile', 'Kbuild'].map((n) => join(oldDir, dir, n)).find((p) => existsSync(p));
  if (!mk) return false;
  const text = readFileSync(mk, 'utf8').replace(/\\\n/g, ' ');
  for (const m of text.matchAll(/^([A-Za-z0-9_-]+)-(?:y|objs|\$\([A-Z0-9_]+\))\s*[:+]?=\s*(.*)$/gm)) {
    if (m[2].split(/\s+/).includes(`${base}.o`) && kos.has(`${dir}/${m[1]}.ko`)) return true;
  }
  return false;
};
const codeDirs = new Set();
const built = files.filter((rel) => {
  if (!rel.endsWith('.c')) return false;
  const ok = builtin.has(rel) || moduleMember(rel);
  if (ok) codeDirs.add(rel.slice(0, rel.lastIndexOf('/')));
  return ok;
});
const keep = new Set(built);
for (const rel of files) {
  if (rel.endsWith('.h') && (rel.startsWith('include/') || rel.startsWith('arch/x86/') || codeDirs.has(rel.slice(0, rel.lastIndexOf('/'))))) keep.add(rel);
  if (rel.endsWith('.S') && rel.startsWith('arch/x86/')) keep.add(rel);
}
files.splice(0, files.length, ...files.filter((f) => keep.has(f)));
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const manifest = [];
for (const rel of files) {
  const a = join(oldDir, rel);
  const b = join(resolve(newDir), rel);
  const d = spawnSync('diff', ['-uN', '--label', `a/${rel}`, '--label', `b/${rel}`, existsSync(a) ? a : '/dev/null', existsSync(b) ? b : '/dev/null'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (d.status !== 1) continue;
  const name = rel.replace(/\//g, '-').replace(/\.(c|h|S)$/, '_$1');
  writeFileSync(join(outDir, `${name}.patch`), d.stdout);
  const added = (d.stdout.match(/^\+(?!\+\+)/gm) ?? []).length;
  const removed = (d.stdout.match(/^-(?!--)/gm) ?? []).length;
  manifest.push(`${name}\t${rel}\t+${added}\t-${removed}`);
}
const version = (p) => { try { return readFileSync(join(p, 'Makefile'), 'utf8').match(/^SUBLEVEL = (\d+)/m)?.[1]; } catch { return '?'; } };
writeFileSync(join(outDir, 'MANIFEST.tsv'), `# ${abi} (6.1.${version(oldDir)}) -> 6.1.${version(resolve(newDir))}\n${manifest.join('\n')}\n`);
console.log(`${manifest.length} patches in ${outDir}`);
