/**
 * The hub of local sockets on an HTTP server that never listens: the index and its
 * counts, closing a socket on the node's account (`$closing` first, once), a slow
 * consumer (warned once, closed, its TCP connection cut a second later), the drain's
 * wait for every socket to leave the index.
 */
import { createServer } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SocketHub } from '../../src/socket-hub.js';
import { FakeSocket, log, metricsRig } from './fakes.js';

const hubs: SocketHub[] = [];
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await Promise.all(hubs.splice(0).map((h) => h.shutdown()));
});

function rig(maxBufferedBytes = 1_000) {
  const { metrics, value } = metricsRig();
  const hub = new SocketHub({
    http: createServer(),
    config: { corsOrigins: '*', maxBufferedBytes },
    metrics,
    log,
  });
  hubs.push(hub);
  const closed = (reason: string) => value('switchboard_edge_connections_closed_total', { reason });
  return { hub, closed };
}

describe('socket hub (unit)', () => {
  it('the index: connections and users counted, per user counts returned', () => {
    const { hub } = rig();
    const [a1, a2, b1] = [new FakeSocket(), new FakeSocket(), new FakeSocket()];
    expect(hub.add('a', a1.edge)).toBe(1);
    expect(hub.add('a', a2.edge)).toBe(2);
    expect(hub.add('a', a2.edge)).toBe(2); // the same socket twice counts once
    expect(hub.add('b', b1.edge)).toBe(1);
    expect([hub.connections, hub.users]).toEqual([3, 2]);
    expect(hub.remove('a', a1.edge)).toBe(1);
    expect(hub.remove('a', a1.edge)).toBe(1); // already gone
    expect(hub.remove('b', b1.edge)).toBe(0);
    expect([hub.connections, hub.users]).toEqual([1, 1]);
    expect([...hub.index.get('a')]).toEqual([a2]);
    expect(hub.index.get('b').size).toBe(0);
  });

  it('close: the client is told why, then disconnected; once however often asked', async () => {
    const { hub, closed } = rig();
    const socket = new FakeSocket();
    hub.close(socket.edge, 'expired');
    hub.close(socket.edge, 'expired');
    // Not inside the caller's loop: the close happens on the next microtask.
    expect(socket.sent).toEqual([]);
    await Promise.resolve();
    expect(socket.sent).toEqual([['$closing', { reason: 'expired' }]]);
    expect(socket.disconnects).toEqual([true]);
    expect(await closed('expired')).toBe(1);
    expect(await closed('slow_consumer')).toBe(0);
  });

  it('a slow consumer: a write past the bound is refused, the socket closed and cut a second later', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const warn = vi.spyOn(log, 'warn');
    const { hub, closed } = rig(1_000);
    const socket = new FakeSocket();
    socket.data.userId = 'slow';
    expect(hub.outbound.admit(socket.edge, 600)).toBe(true);
    socket.conn.transport.socket.bufferedAmount = 600;
    expect(hub.outbound.admit(socket.edge, 600)).toBe(false);
    expect(hub.outbound.admit(socket.edge, 600)).toBe(false);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]?.[0]).toMatchObject({ userId: 'slow', queued: 600 });
    await Promise.resolve();
    expect(socket.sentOf('$closing')).toEqual([{ reason: 'slow_consumer' }]);
    expect(await closed('slow_consumer')).toBe(1);
    vi.advanceTimersByTime(999);
    expect(socket.conn.terminated).toBe(false);
    vi.advanceTimersByTime(1);
    expect(socket.conn.terminated).toBe(true);
  });

  it('an expired socket is not cut after its close: only a slow consumer is', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { hub } = rig();
    const socket = new FakeSocket();
    hub.close(socket.edge, 'expired');
    await Promise.resolve();
    vi.advanceTimersByTime(5_000);
    expect(socket.conn.terminated).toBe(false);
  });

  it('drain: resolves once every socket has left the index, false at the deadline', async () => {
    const { hub } = rig();
    const a = new FakeSocket();
    hub.add('a', a.edge);
    // A disconnect handler removes the socket a moment later.
    setImmediate(() => hub.remove('a', a.edge));
    expect(await hub.drain(5_000)).toBe(true);
    const stuck = new FakeSocket();
    hub.add('b', stuck.edge);
    const started = Date.now();
    expect(await hub.drain(30)).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(hub.connections).toBe(1);
  });
});
