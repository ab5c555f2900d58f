import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
  importedNamespaces,
  opensComment,
  renameAddressUses,
  renameIdentifiers,
  typeOnly,
  withoutTaggedBodies,
} from '../../src/emit/emit.js';

test("opensComment: a #define whose comment runs on must be copied to the comment's end", () => {
  assert.equal(opensComment('#define VCNL_PS_OD\t\tBIT(3) /* start on-demand proximity'), true);
  assert.equal(
    opensComment('#define VCNL_PS_OD\t\tBIT(3) /* start on-demand proximity\n\t\t\t\t     * measurement */'),
    false,
  );
  assert.equal(opensComment('#define S "/*" // not a comment /*'), false);
});

test('renameIdentifiers: calls renamed; struct tags, members and strings kept', () => {
  const text =
    'struct tb_cfg_request *r = tb_cfg_request(ctl); r->tb_cfg_request = x.tb_cfg_request; puts("tb_cfg_request");';
  assert.equal(
    renameIdentifiers(text, new Set(['tb_cfg_request'])),
    'struct tb_cfg_request *r = livepatch_tb_cfg_request(ctl); r->tb_cfg_request = x.tb_cfg_request; puts("tb_cfg_request");',
  );
});

test('importedNamespaces: the MODULE_IMPORT_NS lines of a .c', () => {
  assert.deepEqual(
    importedNamespaces(
      '#include <x.h>\nMODULE_IMPORT_NS(IIO_ST_SENSORS);\n  MODULE_IMPORT_NS( CXL );\n// MODULE_IMPORT_NS(NO)\n',
    ),
    ['IIO_ST_SENSORS', 'CXL'],
  );
});

test('typeOnly / withoutTaggedBodies: a struct defined with its variable is copied as the type, declared by its tag', () => {
  // igen6_edac.c: `static struct res_config { ... } *res_cfg;` must not define a second res_cfg.
  const def = 'static struct res_config {\n\tint num_imc;\n\tstruct { int b; } inner;\n} *res_cfg;';
  assert.equal(typeOnly(def), 'struct res_config {\n\tint num_imc;\n\tstruct { int b; } inner;\n};');
  assert.equal(
    withoutTaggedBodies('static struct res_config { int num_imc; struct x { int y; } z; } *res_cfg'),
    'static struct res_config *res_cfg',
  );
  // Kept whole: a typedef, a plain definition, the type's own attributes, an anonymous type.
  for (const same of [
    'typedef struct foo { int a; } foo_t;',
    'struct foo {\n\tint a;\n};',
    'struct foo { int a; } __packed;',
    'struct foo { int a; } __aligned(8) bar;',
  ]) {
    assert.equal(typeOnly(same), same);
  }
  assert.equal(withoutTaggedBodies('static struct { int a; } anon'), 'static struct { int a; } anon');
});

test("renameAddressUses: the address of a function copied for inlining stays the running kernel's; calls, members and strings are kept", () => {
  const text =
    'INIT_WORK(&w->work, flush_one);\n\tflush_one(&w->work);\n\tops.flush_one = &flush_one;\n\tp->flush_one(x); /* flush_one */ pr_info("flush_one");\n\tstruct flush_one *f;';
  assert.equal(
    renameAddressUses(text, new Set(['flush_one'])),
    'INIT_WORK(&w->work, klpgen_addr_flush_one);\n\tflush_one(&w->work);\n\tops.flush_one = &klpgen_addr_flush_one;\n\tp->flush_one(x); /* flush_one */ pr_info("flush_one");\n\tstruct flush_one *f;',
  );
  assert.equal(renameAddressUses(text, new Set()), text);
});
