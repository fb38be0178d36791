import { describe, expect, it } from 'vitest';
import { decodeUserKey, encodeUserKey, InvalidUserKeyError } from '../src/user-key.js';

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
});
