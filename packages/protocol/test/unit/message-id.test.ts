import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MessageId } from '../../src/message.js';
import { messageIdTime, newMessageId } from '../../src/message-id.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('message id', () => {
  it('message id - a lower-case UUIDv7 (version 7, variant 10) that the API accepts as an id', () => {
    for (let i = 0; i < 1_000; i++) {
      const id = newMessageId();
      expect(id).toMatch(V7);
      expect(MessageId.safeParse(id).success).toBe(true);
    }
  });

  it.each([0, 1, 0xffff, 0x10000, 1_700_000_000_123, Date.UTC(2100, 0, 1), 2 ** 48 - 1])(
    'message id - time %d is stored in the first 48 bits and read back',
    (t) => {
      const id = newMessageId(t);
      expect(messageIdTime(id)).toBe(t);
      expect(id.replace(/-/g, '').slice(0, 12)).toBe(t.toString(16).padStart(12, '0'));
    },
  );

  it('message id - the time is the clock of the moment, never decreasing between calls', async () => {
    let last = 0;
    for (let i = 0; i < 2_000; i++) {
      const before = Date.now();
      const t = messageIdTime(newMessageId());
      expect(t).not.toBeNull();
      expect(t!).toBeGreaterThanOrEqual(Math.max(before, last));
      expect(t!).toBeLessThanOrEqual(Date.now());
      last = t!;
      if (i % 500 === 0) await new Promise((r) => setTimeout(r, 2));
    }
  });

  it('message id - ids of different milliseconds sort by time as strings', () => {
    const ids = [5, 1, 4, 2, 3].map((k) => newMessageId(1_700_000_000_000 + k * 1_000));
    const sorted = [...ids].sort();
    expect(sorted.map((id) => messageIdTime(id))).toEqual(
      [1, 2, 3, 4, 5].map((k) => 1_700_000_000_000 + k * 1_000),
    );
  });

  it('message id - 100,000 ids in one millisecond are all distinct (74 random bits)', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 100_000; i++) ids.add(newMessageId(1_700_000_000_000));
    expect(ids.size).toBe(100_000);
  });

  it('message id - messageIdTime reads an upper-case UUIDv7 too', () => {
    const id = newMessageId(1_712_345_678_901);
    expect(messageIdTime(id.toUpperCase())).toBe(1_712_345_678_901);
  });

  it.each([
    ['a UUIDv4', randomUUID()],
    ['a client id', 'order-42'],
    ['empty', ''],
    ['v7 with the wrong variant', '018f3c4e-1a2b-7c3d-4e5f-0123456789ab'],
    ['v7 without dashes', '018f3c4e1a2b7c3d8e5f0123456789ab'],
    ['v7 with a suffix', '018f3c4e-1a2b-7c3d-8e5f-0123456789ab.x'],
    ['v7 with non-hex', '018f3c4e-1a2b-7c3d-8e5f-0123456789ag'],
    ['v6', '018f3c4e-1a2b-6c3d-8e5f-0123456789ab'],
  ])('message id - messageIdTime is null for %s', (_, id) => {
    expect(messageIdTime(id)).toBeNull();
  });

  it.each([-1, 1.5, 2 ** 48, Number.NaN])('message id - time %d is refused', (t) => {
    expect(() => newMessageId(t)).toThrow(RangeError);
  });
});
