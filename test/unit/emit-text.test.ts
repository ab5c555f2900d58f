import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { importedNamespaces, opensComment, renameIdentifiers } from '../../src/emit/emit.js';

test('opensComment: a #define whose comment runs on must be copied to the comment\'s end', () => {
  assert.equal(opensComment('#define VCNL_PS_OD\t\tBIT(3) /* start on-demand proximity'), true);
  assert.equal(opensComment('#define VCNL_PS_OD\t\tBIT(3) /* start on-demand proximity\n\t\t\t\t     * measurement */'), false);
  assert.equal(opensComment('#define S "/*" // not a comment /*'), false);
});

test('renameIdentifiers: calls renamed; struct tags, members and strings kept', () => {
  const text = 'struct tb_cfg_request *r = tb_cfg_request(ctl); r->tb_cfg_request = x.tb_cfg_request; puts("tb_cfg_request");';
  assert.equal(renameIdentifiers(text, new Set(['tb_cfg_request'])),
    'struct tb_cfg_request *r = livepatch_tb_cfg_request(ctl); r->tb_cfg_request = x.tb_cfg_request; puts("tb_cfg_request");');
});

test('importedNamespaces: the MODULE_IMPORT_NS lines of a .c', () => {
  assert.deepEqual(importedNamespaces('#include <x.h>\nMODULE_IMPORT_NS(IIO_ST_SENSORS);\n  MODULE_IMPORT_NS( CXL );\n// MODULE_IMPORT_NS(NO)\n'), ['IIO_ST_SENSORS', 'CXL']);
});
