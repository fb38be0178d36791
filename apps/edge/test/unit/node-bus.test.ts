/**
 * The node bus over an in-memory NATS connection and hub: the start-up probe (a free node
 * id, a live holder, a silent holder), the per-message path (decode, one packet written
 * to every open socket of each user, the reply's counts, epoch and batch shape), acked
 * deliveries and their cap, malformed input, broadcasts, unsubscribing.
 */
import { NodeIdConflictError } from '@switchboard/presence-registry';
import {
  decodeBatchReply,
  decodeNodeReply,
  deliveryHead,
  deliveryText,
  encodeDelivery,
  nodeSubject,
  Subjects,
} from '@switchboard/protocol';
import { waitFor } from '@switchboard/testkit';
import { describe, expect, it } from 'vitest';
import { OutboundLimit } from '../../src/delivery.js';
import { LocalSockets } from '../../src/local-sockets.js';
import { NodeBus } from '../../src/node-bus.js';
import type { EdgeSocket } from '../../src/socket-hub.js';
import { FakeNats, FakeSocket, log, metricsRig } from './fakes.js';

const NODE = 'bus-node';
const SUBJECT = nodeSubject(NODE);
const bytes = (text: string) => new TextEncoder().encode(text);

async function rig(options: { maxInflightAcks?: number; start?: boolean } = {}) {
  const nats = new FakeNats();
  const index = new LocalSockets<EdgeSocket>();
  const slow: EdgeSocket[] = [];
  const broadcasts: unknown[][] = [];
  const presence = { epoch: 'epoch-1' };
  const { metrics, value } = metricsRig();
  const bus = new NodeBus({
    nc: nats.nc,
    nodeId: NODE,
    config: { maxInflightAcks: options.maxInflightAcks ?? 10_000 },
    hub: {
      index,
      outbound: new OutboundLimit<EdgeSocket>(1_000_000, (s) => slow.push(s)),
      broadcast: (...args) => {
        broadcasts.push(args);
      },
    },
    presence,
    metrics,
    log,
  });
  if (options.start !== false) await bus.start();
  const join = (userId: string) => {
    const s = new FakeSocket();
    index.add(userId, s.edge);
    return s;
  };
  const head = (id: string, ackTimeoutMs?: number) =>
    deliveryHead({ id, event: 'note', sentAt: 5, ...(ackTimeoutMs ? { ackTimeoutMs } : {}) });
  const send = (users: string[], data: unknown, ackTimeoutMs?: number) =>
    nats.send(SUBJECT, encodeDelivery(head('m1', ackTimeoutMs), users, JSON.stringify(data)));
  return { nats, bus, presence, join, head, send, broadcasts, value };
}

describe('node bus (unit)', () => {
  it('start: probes its own subject, then subscribes to it and to broadcasts', async () => {
    const { nats } = await rig();
    expect(nats.requested).toEqual([SUBJECT]);
    expect([...nats.subscriptions.keys()].sort()).toEqual([SUBJECT, Subjects.broadcast].sort());
  });

  it.each([
    ['answers', 'live'],
    ['holds the subject without answering', 'silent'],
  ] as const)('start refuses a node id when a process %s', async (_, probe) => {
    const { nats, bus } = await rig({ start: false });
    nats.probe = probe;
    await expect(bus.start()).rejects.toThrow(NodeIdConflictError);
    expect(nats.subscriptions.size).toBe(0);
  });

  it('an empty request is a probe: answered with the node id and the current epoch', async () => {
    const { nats, presence } = await rig();
    expect(JSON.parse(await nats.send(SUBJECT, new Uint8Array(0)))).toEqual({
      nodeId: NODE,
      epoch: 'epoch-1',
    });
    presence.epoch = 'epoch-2'; // rolled after a lease lapse
    expect(JSON.parse(await nats.send(SUBJECT, new Uint8Array(0))).epoch).toBe('epoch-2');
  });

  it('a delivery: one packet written to each open socket, counted per user in order', async () => {
    const { join, send, presence, value } = await rig();
    const [a1, a2, closed] = [join('a'), join('a'), join('c')];
    closed.conn.readyState = 'closing';
    presence.epoch = 'epoch-7';
    const reply = await send(['a', 'b', 'c'], { x: 1 });
    expect(decodeNodeReply(bytes(reply), 3)).toEqual({
      nodeId: NODE,
      epoch: 'epoch-7',
      connections: [2, 0, 0],
    });
    const packet = '2["note",{"x":1},{"id":"m1","sentAt":5}]';
    expect(a1.conn.written).toEqual([packet]);
    expect(a2.conn.written).toEqual([packet]);
    expect(closed.conn.written).toEqual([]);
    expect(await value('switchboard_edge_deliveries_total')).toBe(3);
  });

  it('a batch: every delivery written, one reply with a count list per delivery', async () => {
    const { nats, join, head } = await rig();
    const a = join('a');
    const b = join('b');
    const batch = [
      deliveryText(head('m1'), ['a', 'b'], '1'),
      deliveryText(head('m2'), ['b'], '2'),
    ].join('\n');
    const reply = await nats.send(SUBJECT, batch);
    expect(decodeBatchReply(bytes(reply), [2, 1])).toEqual([[1, 1], [1]]);
    expect(a.conn.written).toHaveLength(1);
    expect(b.conn.written).toHaveLength(2);
  });

  it('a malformed delivery is answered with an error, and the bus goes on', async () => {
    const { nats, join, send } = await rig();
    expect(JSON.parse(await nats.send(SUBJECT, 'not a delivery'))).toEqual({
      error: 'malformed delivery',
    });
    join('a');
    expect(decodeNodeReply(bytes(await send(['a'], 1)), 1).connections).toEqual([1]);
  });

  it('an acked delivery waits for the device; past the cap another is refused at once', async () => {
    const { join, send, value } = await rig({ maxInflightAcks: 1 });
    const a = join('a');
    const first = send(['a'], { n: 1 }, 1_000);
    await waitFor(() => a.acks.length === 1);
    expect(a.sent[0]).toEqual(['note', { n: 1 }, { id: 'm1', sentAt: 5 }]);
    expect(JSON.parse(await send(['a'], { n: 2 }, 1_000))).toEqual({
      error: 'overloaded: too many acked deliveries waiting',
    });
    expect(
      await value('switchboard_edge_deliveries_refused_total', { reason: 'ack-capacity' }),
    ).toBe(1);
    a.acks[0]!(null);
    expect(decodeNodeReply(bytes(await first), 1)).toMatchObject({
      connections: [1],
      acked: [1],
    });
    // The slot is free again.
    const third = send(['a'], { n: 3 }, 1_000);
    await waitFor(() => a.acks.length === 2);
    a.acks[1]!(new Error('operation has timed out'));
    expect(decodeNodeReply(bytes(await third), 1)).toMatchObject({
      connections: [1],
      acked: [0],
    });
  });

  it('a broadcast goes to the hub with its meta; a malformed one is dropped', async () => {
    const { nats, broadcasts, value } = await rig();
    const callback = nats.subscriptions.get(Subjects.broadcast)!;
    const publish = (text: string) =>
      callback(null, {
        subject: Subjects.broadcast,
        data: bytes(text),
        json: () => JSON.parse(text),
      } as never);
    publish(JSON.stringify({ id: 'b1', event: 'news', data: { big: true }, sentAt: 9 }));
    publish('{"id":1}');
    expect(broadcasts).toEqual([['news', { big: true }, { id: 'b1', sentAt: 9 }]]);
    expect(await value('switchboard_edge_broadcasts_total')).toBe(1);
  });

  it('stop unsubscribes from both subjects', async () => {
    const { nats, bus } = await rig();
    bus.stop();
    expect(nats.subscriptions.size).toBe(0);
    bus.stop(); // twice is harmless
  });
});
