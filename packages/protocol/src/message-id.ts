/**
 * Server-made message ids: UUIDv7 (RFC 9562), a 48-bit Unix millisecond timestamp followed
 * by 74 random bits. The time lets a reader find where a message's status was written
 * (`status.v1.batch.<second>`) from the id alone.
 *
 * Written here rather than taken from the `uuid` package: its current major (14) requires
 * Node 22 while this repository supports Node 20.11, and pinning an old major is not worth
 * a dependency for a timestamp and a random fill. Web Crypto, so it also loads in a browser.
 */
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const MAX_MS = 2 ** 48 - 1;

// One random fill per 409 ids instead of one per id (the id is made on every send).
const POOL_BYTES = 4096;
const RANDOM_BYTES = 10;
const pool = new Uint8Array(POOL_BYTES);
let poolAt = POOL_BYTES;

function randomBytes(): number {
  if (poolAt + RANDOM_BYTES > POOL_BYTES) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  const at = poolAt;
  poolAt += RANDOM_BYTES;
  return at;
}

/**
 * A new UUIDv7 string (lower case) whose time is `now` (default `Date.now()`), in ms.
 * Ids are unique by their 74 random bits; they sort by time to the millisecond only.
 */
export function newMessageId(now: number = Date.now()): string {
  if (!Number.isInteger(now) || now < 0 || now > MAX_MS) {
    throw new RangeError(`message id time must be an integer ms in [0, 2^48): ${now}`);
  }
  const r = randomBytes();
  const hi = Math.floor(now / 0x10000); // top 32 bits
  const lo = now % 0x10000; // low 16 bits
  const b = pool;
  return (
    HEX[(hi >>> 24) & 0xff]! +
    HEX[(hi >>> 16) & 0xff]! +
    HEX[(hi >>> 8) & 0xff]! +
    HEX[hi & 0xff]! +
    '-' +
    HEX[lo >>> 8]! +
    HEX[lo & 0xff]! +
    '-' +
    HEX[0x70 | (b[r]! & 0x0f)]! + // version 7
    HEX[b[r + 1]!]! +
    '-' +
    HEX[0x80 | (b[r + 2]! & 0x3f)]! + // variant 10
    HEX[b[r + 3]!]! +
    '-' +
    HEX[b[r + 4]!]! +
    HEX[b[r + 5]!]! +
    HEX[b[r + 6]!]! +
    HEX[b[r + 7]!]! +
    HEX[b[r + 8]!]! +
    HEX[b[r + 9]!]!
  );
}

/** The millisecond timestamp of a UUIDv7 string (either case), or null for any other id. */
export function messageIdTime(id: string): number | null {
  if (id.length !== 36 || !V7.test(id)) return null;
  return Number.parseInt(id.slice(0, 8), 16) * 0x10000 + Number.parseInt(id.slice(9, 13), 16);
}
