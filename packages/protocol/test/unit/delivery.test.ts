import { describe, expect, it } from 'vitest';
import {
  DeliveryDecodeError,
  decodeBatchReply,
  decodeDeliveries,
  decodeDelivery,
  decodeNodeReply,
  deliveryHead,
  deliveryText,
  encodeBatchReply,
  encodeDelivery,
  encodeLegacyNodeReply,
  encodeNodeReply,
} from '../../src/delivery.js';

const enc = new TextEncoder();

describe('node wire format', () => {
  it('delivery - round trip keeps every field and passes data through as JSON text', () => {
    const data = { text: 'line\nbreak "quoted" é', n: [1, 2] };
    const head = deliveryHead({ id: 'm-1', event: 'dm.new', sentAt: 123, ackTimeoutMs: 500 });
    const d = decodeDelivery(encodeDelivery(head, ['a', 'b\u00e9'], JSON.stringify(data)));
    expect(d).toEqual({
      id: 'm-1',
      event: 'dm.new',
      sentAt: 123,
      ackTimeoutMs: 500,
      userIds: ['a', 'b\u00e9'],
      dataJson: JSON.stringify(data),
    });
    expect(JSON.parse(d.dataJson)).toEqual(data);
  });

  it('delivery - malformed requests are refused with a reason', () => {
    const bad = [
      '{"v":1,"id":"x","event":"e","sentAt":1}', // no data part, not legacy either
      '{"v":2,"id":"x","event":"e","sentAt":1,"u":["a"]}\nnull',
      '{"v":1,"id":"x","event":"e","sentAt":1,"u":[]}\nnull',
      '{"v":1,"id":"x","event":"e","sentAt":1,"u":[1]}\nnull',
      '{"v":1,"id":"x","event":"e","sentAt":1,"u":["a"],"ack":-5}\nnull',
      '{"v":1,"id":"x","event":"e","sentAt":1,"u":["a"]}\n',
      'not json\nnull',
    ];
    for (const b of bad)
      expect(() => decodeDelivery(enc.encode(b)), b).toThrow(DeliveryDecodeError);
  });

  it('delivery - the format before v1 is still understood and answered in kind', () => {
    const legacy = JSON.stringify({
      id: 'old',
      event: 'e',
      sentAt: 5,
      data: { x: 1 },
      userIds: ['a', 'b'],
      ackTimeoutMs: 100,
    });
    const d = decodeDelivery(enc.encode(legacy));
    expect(d).toMatchObject({ legacy: true, userIds: ['a', 'b'], ackTimeoutMs: 100 });
    expect(JSON.parse(d.dataJson)).toEqual({ x: 1 });
    const reply = encodeLegacyNodeReply(d.userIds, {
      nodeId: 'n',
      epoch: 'e',
      connections: [2, 0],
      acked: [1, 0],
    });
    expect(JSON.parse(reply)).toEqual({
      nodeId: 'n',
      epoch: 'e',
      results: { a: { connections: 2, acked: 1 }, b: { connections: 0, acked: 0 } },
    });
  });

  it('reply - round trip, and a reply that does not match the request is refused', () => {
    const text = encodeNodeReply({ nodeId: 'n', epoch: 'e', connections: [1, 0, 3] });
    expect(decodeNodeReply(enc.encode(text), 3)).toEqual({
      nodeId: 'n',
      epoch: 'e',
      connections: [1, 0, 3],
    });
    expect(() => decodeNodeReply(enc.encode(text), 2)).toThrow(DeliveryDecodeError);
    expect(() => decodeNodeReply(enc.encode('{"error":"malformed delivery"}'), 1)).toThrow(
      DeliveryDecodeError,
    );
  });

  it('batch - requests joined by newlines decode in order; the reply carries one list each', () => {
    const a = deliveryText(
      deliveryHead({ id: 'a', event: 'e', sentAt: 1 }),
      ['u1'],
      '{"x":"a\\nb"}',
    );
    const b = deliveryText(deliveryHead({ id: 'b', event: 'e', sentAt: 2 }), ['u2', 'u3'], 'null');
    const { deliveries, batch } = decodeDeliveries(enc.encode(`${a}\n${b}`));
    expect(batch).toBe(true);
    expect(deliveries.map((d) => [d.id, d.userIds, d.dataJson])).toEqual([
      ['a', ['u1'], '{"x":"a\\nb"}'],
      ['b', ['u2', 'u3'], 'null'],
    ]);
    expect(decodeDeliveries(enc.encode(a)).batch).toBe(false);
    const reply = encodeBatchReply('n', 'e', [[1], [0, 2]]);
    expect(decodeBatchReply(enc.encode(reply), [1, 2])).toEqual([[1], [0, 2]]);
    expect(() => decodeBatchReply(enc.encode(reply), [1])).toThrow(DeliveryDecodeError);
    const acked = deliveryText(
      deliveryHead({ id: 'c', event: 'e', sentAt: 3, ackTimeoutMs: 100 }),
      ['u'],
      'null',
    );
    expect(() => decodeDeliveries(enc.encode(`${a}\n${acked}`))).toThrow(DeliveryDecodeError);
  });
});
