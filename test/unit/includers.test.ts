import { strict as assert } from 'node:assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { includersOf } from '../../src/analyze/includers.js';
import { tempDir } from '../helpers.js';

function tree(files: Record<string, string>): string {
  const root = tempDir('includers');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

test("includersOf: beside it, through another header, through <...>, and through a Makefile's own -I", async () => {
  const root = tree({
    'include/linux/thing.h': 'static inline int thing(void) { return 1; }\n',
    'drivers/wifi/trans.h': '#include <linux/thing.h>\n',
    'drivers/wifi/core.c': '#include "trans.h"\n',
    // mvm/'s Makefile adds -I for its parent: "trans.h" is not beside it.
    'drivers/wifi/mvm/tx.c': '#include "trans.h"\n',
    'drivers/wifi/mvm/ops.c': '#include "../trans.h"\n',
    'drivers/other/trans.h': '/* another header of that name */\n',
    'drivers/other/user.c': '#include "trans.h"\n',
    'fs/unrelated.c': '#include <linux/fs.h>\n',
  });
  assert.deepEqual((await includersOf(root, 'drivers/wifi/trans.h', 16)).units, [
    'drivers/wifi/core.c',
    'drivers/wifi/mvm/ops.c',
    'drivers/wifi/mvm/tx.c',
  ]);
  assert.deepEqual((await includersOf(root, 'include/linux/thing.h', 16)).units, [
    'drivers/wifi/core.c',
    'drivers/wifi/mvm/ops.c',
    'drivers/wifi/mvm/tx.c',
  ]);
  assert.equal((await includersOf(root, 'drivers/wifi/trans.h', 2)).tooMany, 3);
});
