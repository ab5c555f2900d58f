import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
  baseFunction,
  coldParent,
  isCloneOf,
  isColdPart,
  isCompilerLocal,
  isNumberedLocal,
  isPieceOf,
  isPrivateClone,
  staticLocalBase,
} from '../../src/gcc/names.js';

test('gcc names: the function a piece was made from', () => {
  assert.equal(baseFunction('foo.part.0.cold'), 'foo');
  assert.equal(baseFunction('foo.constprop.0.isra.0'), 'foo');
  assert.equal(baseFunction('foo.isra.*.cold'), 'foo', 'a folded name');
  assert.equal(baseFunction('foo.localalias'), 'foo');
  assert.equal(baseFunction('foo'), 'foo');
  // A numbered static local is not a piece of a function.
  assert.equal(baseFunction('count.3'), 'count.3');
  assert.equal(isCompilerLocal('count.3'), false);
  assert.equal(isCompilerLocal('foo.cold'), true);
});

test('gcc names: pieces, cold parts and clones', () => {
  assert.ok(isPieceOf('foo.cold', 'foo'));
  assert.ok(isPieceOf('foo.isra.0.cold', 'foo'));
  assert.ok(!isPieceOf('foo_bar.cold', 'foo'));
  assert.ok(!isPieceOf('foo.3', 'foo'));
  assert.ok(isColdPart('foo.part.0.cold'));
  assert.ok(!isColdPart('foo.part.0'));
  assert.equal(coldParent('foo.part.0.cold'), 'foo.part.0');
  assert.equal(coldParent('foo.cold.1'), 'foo');
  assert.equal(coldParent('foo.part.0'), undefined);
  assert.ok(isPrivateClone('foo.constprop.0.cold'));
  assert.ok(isPrivateClone('foo.isra.1'));
  assert.ok(!isPrivateClone('foo.cold'));
  assert.ok(isCloneOf('foo.constprop.0', 'foo'));
  assert.ok(!isCloneOf('foo.part.0', 'foo', ['constprop', 'isra']));
  assert.ok(!isCloneOf('foo.constprop.0.isra.0', 'foo'), 'cloned twice is not one clone of foo');
  assert.ok(!isCloneOf('foobar.isra.0', 'foo'));
});

test('gcc names: numbered static locals', () => {
  assert.ok(isNumberedLocal('_rs.12'));
  assert.ok(!isNumberedLocal('_rs'));
  assert.equal(staticLocalBase('__already_done.4'), '__already_done');
  assert.equal(staticLocalBase('count'), 'count');
});
