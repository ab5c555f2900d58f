#!/usr/bin/env node
// Builds the real-fix corpus from Debian's archive: the kernel source of a
// target ABI against the linux-source-6.1 of a later Debian version, split
// into one patch per changed kernel source file (kpatch's naming: X.patch),
// a .c's patch with the header changes (and their .c definitions) it needs.
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
const cus = spawnSync(
  'sh',
  [
    '-c',
    `readelf --debug-dump=info --dwarf-depth=1 ${join(cache, 'targets', abi, 'dbg/vmlinux')} 2>/dev/null | grep -A8 DW_TAG_compile_unit | grep DW_AT_name | sed 's/.*: //'`,
  ],
  { encoding: 'utf8', maxBuffer: 1 << 28 },
).stdout;
const builtin = new Set(cus.split('\n').filter((f) => f.endsWith('.c')));
const modRoot = join(cache, 'targets', abi, 'pkg/lib/modules');
const kos = new Set(
  spawnSync('sh', ['-c', `cd ${modRoot}/* && find kernel -name '*.ko' | sed 's#^kernel/##'`], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  })
    .stdout.split('\n')
    .filter(Boolean),
);
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
  if (
    rel.endsWith('.h') &&
    (rel.startsWith('include/') || rel.startsWith('arch/x86/') || codeDirs.has(rel.slice(0, rel.lastIndexOf('/'))))
  )
    keep.add(rel);
  if (rel.endsWith('.S') && rel.startsWith('arch/x86/')) keep.add(rel);
}
files.splice(0, files.length, ...files.filter((f) => keep.has(f)));
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const diffs = new Map();
for (const rel of files) {
  const a = join(oldDir, rel);
  const b = join(resolve(newDir), rel);
  const d = spawnSync(
    'diff',
    [
      '-uN',
      '--label',
      `a/${rel}`,
      '--label',
      `b/${rel}`,
      existsSync(a) ? a : '/dev/null',
      existsSync(b) ? b : '/dev/null',
    ],
    { encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  if (d.status === 1) diffs.set(rel, { text: d.stdout, old: existsSync(a) ? readFileSync(a, 'latin1') : '' });
}

// A fix often spans a .c and a header (a new helper, macro or field used by the
// .c): a .c patch alone would not compile. Without the upstream commits, the
// link is read from the diffs: names the .c's added lines use that its old
// text never had, and that a changed header's added lines introduce (absent
// from the old header). Such headers go into the .c's patch, and so does a .c
// that defines what those headers newly declare.
const stripped = (text) => text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"/g, ' ');
const identifiers = (text) => new Set(stripped(text).match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []);
const addedLines = (diff) =>
  diff
    .split('\n')
    .filter((l) => l.startsWith('+') && !l.startsWith('+++'))
    .map((l) => l.slice(1));
/**
 * Names a file's added lines declare: macros, top-level functions and
 * variables (non-static ones only in a .c), struct members and enum constants.
 */
const declaredBy = (lines, isC) => {
  const out = new Set();
  for (const raw of lines) {
    const l = stripped(raw);
    let m = /^\s*#\s*define\s+([A-Za-z_]\w*)/.exec(l);
    if (m) {
      out.add(m[1]);
      continue;
    }
    if (/^[A-Za-z_]/.test(l) && !(isC && /^static\b/.test(l))) {
      m = /([A-Za-z_]\w*)\s*(?:\(|\[|=|;)/.exec(l);
      if (m && !/^(if|for|while|return|sizeof|switch)$/.test(m[1])) out.add(m[1]);
      continue;
    }
    if (isC) continue;
    m = /^\t+(?:[\w\s*]+?[\s*])?([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)?(?::\s*\d+\s*)?;\s*$/.exec(l);
    if (m) {
      out.add(m[1]);
      continue;
    }
    m = /^\t+([A-Z_][A-Z0-9_]*)\s*(?:=[^;]*)?,?\s*$/.exec(l);
    if (m) out.add(m[1]);
  }
  return out;
};
const newNames = new Map(); // a .c's added lines: names its old text never had
const declares = new Map(); // a file's added lines: names it newly declares
for (const [rel, d] of diffs) {
  const before = identifiers(d.old);
  const added = addedLines(d.text);
  newNames.set(rel, new Set([...identifiers(added.join('\n'))].filter((id) => !before.has(id))));
  declares.set(rel, new Set([...declaredBy(added, rel.endsWith('.c'))].filter((id) => !before.has(id))));
}
const groupOf = (rel) => {
  const needs = newNames.get(rel);
  const group = [rel];
  const declared = new Set();
  for (const [h, ids] of declares) {
    // A header new in the later release cannot be what an old .c needs from the target's tree.
    if (!h.endsWith('.h') || !diffs.get(h).old || ![...ids].some((id) => needs.has(id))) continue;
    group.push(h);
    for (const id of ids) declared.add(id);
  }
  // A .c that defines what those headers newly declare (a new helper the fix calls).
  for (const [c, ids] of declares) {
    if (c !== rel && c.endsWith('.c') && built.includes(c) && [...ids].some((id) => declared.has(id) && needs.has(id)))
      group.push(c);
  }
  return group.sort();
};

// Reviewed expectations: fixes a livepatch cannot carry become X-FAIL.patch, the reason beside them.
const expectationsFile = new URL(`./corpus-expectations/${abi}.tsv`, import.meta.url);
const expectFail = new Map(
  existsSync(expectationsFile)
    ? readFileSync(expectationsFile, 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => l.split('\t'))
    : [],
);
const manifest = [];
for (const rel of files) {
  const d = diffs.get(rel);
  if (!d) continue;
  const group = rel.endsWith('.c') ? groupOf(rel) : [rel];
  const text = group.map((f) => diffs.get(f).text).join('');
  const base = rel.replace(/\//g, '-').replace(/\.(c|h|S)$/, '_$1');
  const why = expectFail.get(base);
  const name = why === undefined ? base : `${base}-FAIL`;
  if (why !== undefined) writeFileSync(join(outDir, `${name}.reason`), `${why}\n`);
  writeFileSync(join(outDir, `${name}.patch`), text);
  const added = (text.match(/^\+(?!\+\+)/gm) ?? []).length;
  const removed = (text.match(/^-(?!--)/gm) ?? []).length;
  manifest.push(`${name}\t${group.join(',')}\t+${added}\t-${removed}`);
}
const version = (p) => {
  try {
    return readFileSync(join(p, 'Makefile'), 'utf8').match(/^SUBLEVEL = (\d+)/m)?.[1];
  } catch {
    return '?';
  }
};
writeFileSync(
  join(outDir, 'MANIFEST.tsv'),
  `# ${abi} (6.1.${version(oldDir)}) -> 6.1.${version(resolve(newDir))}\n${manifest.join('\n')}\n`,
);
console.log(`${manifest.length} patches in ${outDir}`);
