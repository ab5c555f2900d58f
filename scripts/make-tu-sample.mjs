// Picks the sample of real translation units the frontend is tested on:
// built-in .c files (from the compile units in the target's debug vmlinux)
// and single-file modules (from the image's .ko files), spread over the
// kernel's main directories, deterministic for one target.
//   node scripts/make-tu-sample.mjs <target-root> > test/corpus/tu-sample.txt
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2];
const source = join(root, 'source');
const dwarf = execFileSync(
  'sh',
  [
    '-c',
    `readelf --debug-dump=info --dwarf-depth=1 ${join(root, 'dbg/vmlinux')} 2>/dev/null | grep -A8 DW_TAG_compile_unit | grep DW_AT_name | sed 's/.*: //'`,
  ],
  { maxBuffer: 1 << 28 },
).toString();
// Generated files (vdso images, keymaps) live in the object tree, not the source: leave them out.
const builtin = [
  ...new Set(dwarf.split('\n').filter((f) => f.endsWith('.c') && !f.startsWith('/') && existsSync(join(source, f)))),
].sort();

const modules = [];
const walk = (d) => {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.ko')) modules.push(p);
  }
};
const modRoot = readdirSync(join(root, 'pkg/lib/modules'))[0];
walk(join(root, 'pkg/lib/modules', modRoot, 'kernel'));
const moduleSources = modules
  .map((p) => p.split('/kernel/').slice(1).join('/kernel/').replace(/\.ko$/, '.c'))
  .filter((f) => existsSync(join(source, f)))
  .sort();

const quota = {
  'kernel/': 40,
  'mm/': 30,
  'fs/': 40,
  'net/': 40,
  'drivers/': 40,
  'arch/x86/': 35,
  'lib/': 30,
  'security/': 15,
  'block/': 15,
};
const moduleQuota = { 'fs/': 8, 'net/': 10, 'drivers/': 15, 'lib/': 3, 'arch/x86/': 2, 'crypto/': 2 };
const must = [
  'kernel/sched/core.c',
  'fs/proc/base.c',
  'mm/page_alloc.c',
  'kernel/livepatch/core.c',
  'fs/proc/cmdline.c',
  'net/ipv4/tcp.c',
  'kernel/fork.c',
];

function spread(list, n) {
  if (list.length <= n) return list;
  const out = [];
  for (let i = 0; i < n; i++) out.push(list[Math.floor((i * list.length) / n)]);
  return out;
}
const picked = new Set(must);
for (const [dir, n] of Object.entries(quota))
  for (const f of spread(
    builtin.filter((f) => f.startsWith(dir)),
    n,
  ))
    picked.add(f);
for (const [dir, n] of Object.entries(moduleQuota))
  for (const f of spread(
    moduleSources.filter((f) => f.startsWith(dir)),
    n,
  ))
    picked.add(f);
process.stdout.write(`${[...picked].sort().join('\n')}\n`);
