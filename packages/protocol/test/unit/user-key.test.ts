import { describe, expect, it } from 'vitest';
import { UserId } from '../../src/message.js';
import {
  decodeUserKey,
  encodeUserKey,
  IllFormedUserIdError,
  InvalidUserKeyError,
  isWellFormedUnicode,
} from '../../src/user-key.js';

/** Ids holding a lone surrogate: no UTF-8 encoding, so no key of their own. */
const ILL_FORMED = [
  'a\uD800',
  'a\uDBFF',
  '\uDC00b',
  '\uDFFF',
  '\uDBFF\uDBFF',
  'x\uDE00\uD83D',
  '😀\uD83D',
];

const KEY_SAFE = /^[-/_=.a-zA-Z0-9]+$/;
const TOKEN_SAFE = /^[^.*>\s]+$/;

describe('user key', () => {
  it.each([
    ['42', '42'],
    ['alice', 'alice'],
    ['550e8400-e29b-41d4-a716-446655440000', '550e8400-e29b-41d4-a716-446655440000'],
    ['alice@example.com', 'alice=40example=2Ecom'],
    ['a.b', 'a=2Eb'],
    ['a=b', 'a=3Db'],
    ['x y', 'x=20y'],
    ['*', '=2A'],
    ['>', '=3E'],
    ['é', '=C3=A9'],
    ['😀', '=F0=9F=98=80'],
  ])('user key - %j encodes to %j and back', (userId, key) => {
    expect(encodeUserKey(userId)).toBe(key);
    expect(decodeUserKey(key)).toBe(userId);
  });

  it('user key - every encoding is a valid KV key and a single subject token', () => {
    const samples = [
      'a.b.c',
      'with space',
      'tab\there',
      '../..',
      '...',
      'ünïcödé',
      '中文',
      'a/b',
      'a\\b',
      '.',
      '=',
      '==',
    ];
    for (let c = 0; c < 0x250; c++) samples.push(`x${String.fromCharCode(c)}y`);
    for (const s of samples) {
      const key = encodeUserKey(s);
      expect(key).toMatch(KEY_SAFE);
      expect(key).toMatch(TOKEN_SAFE);
      expect(key.startsWith('.') || key.endsWith('.')).toBe(false);
      expect(decodeUserKey(key)).toBe(s);
    }
  });

  it('user key - distinct ids never share a key', () => {
    const ids = ['a=2Eb', 'a.b', 'A.b', 'a_b', 'a-b', 'a b'];
    expect(new Set(ids.map(encodeUserKey)).size).toBe(ids.length);
  });

  it.each(['', 'a.b', 'a=2', 'a=ZZ', 'a=2e', '=FF'])(
    'user key - %j is rejected when decoding',
    (key) => {
      expect(() => decodeUserKey(key)).toThrow(InvalidUserKeyError);
    },
  );

  it.each(ILL_FORMED)('user key - ill-formed id %j is refused with IllFormedUserIdError', (id) => {
    expect(isWellFormedUnicode(id)).toBe(false);
    expect(() => encodeUserKey(id)).toThrow(IllFormedUserIdError);
  });

  it('user key - a\\uD800 and a\\uDBFF no longer share a key', () => {
    const keys = new Set<string>();
    for (const id of ['a\uD800', 'a\uDBFF']) {
      try {
        keys.add(encodeUserKey(id));
      } catch (err) {
        expect((err as Error).name).toBe('IllFormedUserIdError');
      }
    }
    expect(keys.size).toBe(0);
  });

  it('user key - surrogate pairs are well-formed and round-trip', () => {
    for (const id of ['😀', 'a😀b', '\uD83D\uDE00', '𝕏'.repeat(64)]) {
      expect(isWellFormedUnicode(id)).toBe(true);
      expect(decodeUserKey(encodeUserKey(id))).toBe(id);
    }
  });

  it.each(ILL_FORMED)('user id schema - %j is refused naming well-formed Unicode', (id) => {
    const r = UserId.safeParse(id);
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.message)).toContain(
      'user id must be well-formed Unicode (no lone surrogate)',
    );
  });

  it('user id schema - well-formed ids with surrogate pairs pass', () => {
    expect(UserId.safeParse('😀'.repeat(64)).success).toBe(true);
  });

  it.each(['\r\nx-injected: 1', 'a\nb', 'nul\u0000', 'tab\tid', 'del\u007f'])(
    'user id schema - %j with a control character is refused',
    (id) => {
      const r = UserId.safeParse(id);
      expect(r.error?.issues.map((i) => i.message)).toContain(
        'user id must not contain control characters',
      );
    },
  );
});
