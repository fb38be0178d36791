/**
 * Reversible, key-safe encoding of opaque user ids.
 *
 * NATS KV keys and subject tokens allow only a small alphabet, while user ids are
 * arbitrary strings (emails, UUIDs, numbers). Bytes in `[A-Za-z0-9_-]` are kept as they
 * are, so common ids stay readable in `nats kv ls`; every other UTF-8 byte becomes `=XX`
 * (upper-case hex). The result is a valid KV key *and* a single subject token (no `.`,
 * `*`, `>` or whitespace), and it is never empty because user ids are never empty.
 */

const SAFE = /^[A-Za-z0-9_-]$/;
const HEX = '0123456789ABCDEF';
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Largest user id accepted anywhere, in UTF-8 bytes; its key is at most 3x longer. */
export const MAX_USER_ID_BYTES = 256;

// With the `u` flag a paired surrogate is one code point, so only lone ones match.
const LONE_SURROGATE = /\p{Surrogate}/u;

/** A user id that is not well-formed Unicode: it holds a lone surrogate, so it has no UTF-8. */
export class IllFormedUserIdError extends Error {
  constructor(userId: string) {
    // JSON.stringify escapes lone surrogates, so the message shows which one.
    super(`user id is not well-formed Unicode (lone surrogate): ${JSON.stringify(userId)}`);
    this.name = 'IllFormedUserIdError';
  }
}

/** True when `s` has no lone surrogate, so it has exactly one UTF-8 encoding. */
export function isWellFormedUnicode(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

export class InvalidUserKeyError extends Error {
  constructor(key: string, options?: ErrorOptions) {
    super(`not a valid user key: ${JSON.stringify(key)}`, options);
    this.name = 'InvalidUserKeyError';
  }
}

/**
 * Encodes a user id as a KV-key-safe, subject-token-safe string; pure and deterministic.
 * Throws {@link IllFormedUserIdError} for a lone surrogate, which UTF-8 cannot carry (the
 * encoder would write U+FFFD, so `a\uD800` and `a\uDBFF` would share one key).
 */
export function encodeUserKey(userId: string): string {
  let out = '';
  for (let i = 0; i < userId.length; i++) {
    const ch = userId[i]!;
    const code = ch.charCodeAt(0);
    if (code < 0x80 && SAFE.test(ch)) {
      out += ch;
      continue;
    }
    // Non-safe character: percent-style escape of its UTF-8 bytes.
    const cp = userId.codePointAt(i)!;
    // A pair gives its code point (> 0xFFFF); a lone surrogate gives itself.
    if (cp >= 0xd800 && cp <= 0xdfff) throw new IllFormedUserIdError(userId);
    if (cp > 0xffff) i++;
    for (const byte of encoder.encode(String.fromCodePoint(cp))) {
      out += `=${HEX[byte >> 4]}${HEX[byte & 15]}`;
    }
  }
  return out;
}

/** Inverse of {@link encodeUserKey}; throws {@link InvalidUserKeyError} on a malformed key. */
export function decodeUserKey(key: string): string {
  if (key.indexOf('=') === -1) {
    if (!/^[A-Za-z0-9_-]+$/.test(key)) throw new InvalidUserKeyError(key);
    return key;
  }
  const bytes: number[] = [];
  for (let i = 0; i < key.length; i++) {
    const ch = key[i]!;
    if (ch === '=') {
      const hex = key.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) throw new InvalidUserKeyError(key);
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (SAFE.test(ch)) {
      bytes.push(ch.charCodeAt(0));
    } else {
      throw new InvalidUserKeyError(key);
    }
  }
  try {
    return decoder.decode(new Uint8Array(bytes));
  } catch (err) {
    throw new InvalidUserKeyError(key, { cause: err });
  }
}
