/**
 * Every SDK method against the real stack (nats-server, two edges, push API, presence),
 * received by real Socket.IO clients; the typed errors the API answers.
 */
import {
  createSwitchboard,
  type SendResult,
  type Switchboard,
  SwitchboardError,
} from '@switchboard/sdk';
import { collect, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, arrived, SdkStack } from './support.js';

describe('sdk against the real stack', () => {
  let rig: SdkStack;
  let sb: Switchboard;
  /** Every request the SDK made, through a counting `fetch`. */
  const calls: { method: string; url: string; headers: Headers }[] = [];

  beforeAll(async () => {
    rig = await SdkStack.start({ edges: 2 });
    sb = createSwitchboard({
      apiUrl: rig.apiUrl,
      presenceUrl: rig.presenceUrl,
      apiKey: API_KEY,
      retries: { max: 2, minDelayMs: 50, maxDelayMs: 2_000 },
      fetch: (input, init) => {
        calls.push({
          method: init?.method ?? 'GET',
          url: String(input),
          headers: new Headers(init?.headers),
        });
        return fetch(input, init);
      },
    });
  });
  afterAll(() => rig?.close());

  /** The requests made to `path` (method included) since `from`. */
  const callsTo = (method: string, path: string, from: number) =>
    calls.slice(from).filter((c) => c.method === method && new URL(c.url).pathname === path);

  it('send - delivers to the user once and returns the typed result', async () => {
    const inbox = collect(await rig.stack.client('sdk-send-1', 0));
    const result: SendResult = await sb.send({
      to: 'sdk-send-1',
      event: 'dm.new',
      data: { n: 1, text: 'hi' },
    });
    expect(result.results).toEqual([{ userId: 'sdk-send-1', status: 'delivered', connections: 1 }]);
    expect(typeof result.id).toBe('string');
    await arrived(inbox, 'dm.new', 1);
    expect(inbox[0]!.data).toEqual({ n: 1, text: 'hi' });
    expect(inbox[0]!.meta.id).toBe(result.id);
    // A sentinel sent after proves a second copy would have arrived by now.
    await sb.send({ to: 'sdk-send-1', event: 'sentinel', data: { n: 'end' } });
    await arrived(inbox, 'sentinel', 'end');
    expect(inbox.filter((m) => m.event === 'dm.new')).toHaveLength(1);
  });

  it('send - every call carries its own Idempotency-Key: two equal sends deliver twice', async () => {
    const inbox = collect(await rig.stack.client('sdk-send-2', 0));
    const from = calls.length;
    const message = { to: 'sdk-send-2', event: 'dm.new', data: { n: 2 } };
    const a = await sb.send(message);
    const b = await sb.send(message);
    expect(b.id).not.toBe(a.id);
    const keys = callsTo('POST', '/v1/messages', from).map((c) => c.headers.get('idempotency-key'));
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(keys[1]).not.toBe(keys[0]);
    await waitFor(() => inbox.length === 2, { message: () => `got ${inbox.length} of 2` });
  });

  it('send - a given idempotencyKey returns the first answer and sends nothing', async () => {
    const inbox = collect(await rig.stack.client('sdk-send-3', 0));
    const message = { to: 'sdk-send-3', event: 'dm.new', data: { n: 3 } };
    const first = await sb.send(message, { idempotencyKey: 'sdk-key-3' });
    const again = await sb.send(message, { idempotencyKey: 'sdk-key-3' });
    expect(again).toEqual(first);
    await sb.send({ to: 'sdk-send-3', event: 'sentinel', data: { n: 'end' } });
    await arrived(inbox, 'sentinel', 'end');
    expect(inbox.filter((m) => m.event === 'dm.new')).toHaveLength(1);
  });

  it('send - a message id is the idempotency key: sending the same id twice delivers once', async () => {
    const inbox = collect(await rig.stack.client('sdk-send-4', 1));
    const from = calls.length;
    const message = { id: 'sdk-msg-4', to: 'sdk-send-4', event: 'dm.new', data: { n: 4 } };
    const a = await sb.send(message);
    const b = await sb.send(message);
    expect(a.id).toBe('sdk-msg-4');
    expect(b).toEqual(a);
    const keys = callsTo('POST', '/v1/messages', from).map((c) => c.headers.get('idempotency-key'));
    expect(keys).toEqual(['sdk-msg-4', 'sdk-msg-4']);
    await sb.send({ to: 'sdk-send-4', event: 'sentinel', data: { n: 'end' } });
    await arrived(inbox, 'sentinel', 'end');
    expect(inbox.filter((m) => m.event === 'dm.new')).toHaveLength(1);
  });

  it('send - with ack, the device confirms and the result counts it', async () => {
    const inbox = collect(await rig.stack.client('sdk-ack-1', 1), { ack: true });
    const result = await sb.send({
      to: 'sdk-ack-1',
      event: 'dm.new',
      data: { n: 1 },
      ack: true,
      ackTimeoutMs: 2_000,
    });
    expect(result.results).toEqual([{ userId: 'sdk-ack-1', status: 'delivered', connections: 1 }]);
    expect(inbox).toHaveLength(1);
  });

  it('send - with ack, a device that never confirms is ack-timeout, then OS push fallback', async () => {
    const inbox = collect(await rig.stack.client('sdk-ack-2', 0), { ack: false });
    const result = await sb.send({
      to: 'sdk-ack-2',
      event: 'dm.new',
      data: { n: 1 },
      ack: true,
      ackTimeoutMs: 300,
      fallback: { title: 'New message' },
    });
    expect(result.results).toEqual([
      { userId: 'sdk-ack-2', status: 'fallback', reason: 'ack-timeout' },
    ]);
    expect(inbox).toHaveLength(1);
  });

  it('send - an offline user is fallback with a fallback given, dropped without', async () => {
    const withFallback = await sb.send({
      to: 'sdk-offline',
      event: 'dm.new',
      data: {},
      fallback: { title: 'New message', body: 'hi', data: { k: 'v' }, priority: 'high' },
    });
    expect(withFallback.results).toEqual([
      { userId: 'sdk-offline', status: 'fallback', reason: 'offline' },
    ]);
    const without = await sb.send({ to: 'sdk-offline', event: 'dm.new', data: {} });
    expect(without.results).toEqual([
      { userId: 'sdk-offline', status: 'dropped', reason: 'offline' },
    ]);
  });

  it('multicast - one request reaches users on both edges, one result per recipient', async () => {
    const a = collect(await rig.stack.client('sdk-multi-a', 0));
    const b = collect(await rig.stack.client('sdk-multi-b', 1));
    const from = calls.length;
    const result = await sb.multicast({
      to: ['sdk-multi-a', 'sdk-multi-b', 'sdk-multi-offline'],
      event: 'room.message',
      data: { n: 7 },
    });
    expect(callsTo('POST', '/v1/messages', from)).toHaveLength(1);
    expect(callsTo('POST', '/v1/messages', from)[0]!.headers.get('idempotency-key')).toBeTruthy();
    expect([...result.results].sort((x, y) => x.userId.localeCompare(y.userId))).toEqual([
      { userId: 'sdk-multi-a', status: 'delivered', connections: 1 },
      { userId: 'sdk-multi-b', status: 'delivered', connections: 1 },
      { userId: 'sdk-multi-offline', status: 'dropped', reason: 'offline' },
    ]);
    await arrived(a, 'room.message', 7);
    await arrived(b, 'room.message', 7);
    expect(a[0]!.meta.id).toBe(result.id);
    expect(b[0]!.meta.id).toBe(result.id);
  });

  it('broadcast - every connected user on every edge receives it', async () => {
    const a = collect(await rig.stack.client('sdk-bc-a', 0));
    const b = collect(await rig.stack.client('sdk-bc-b', 1));
    const from = calls.length;
    const result = await sb.broadcast({ event: 'system.notice', data: { n: 'bc-1' } });
    expect(typeof result.id).toBe('string');
    expect(Object.keys(result)).toEqual(['id']);
    // Broadcasts are idempotent in the API: the SDK sends a key, as for a send.
    expect(callsTo('POST', '/v1/broadcast', from)[0]!.headers.get('idempotency-key')).toBeTruthy();
    await arrived(a, 'system.notice', 'bc-1');
    await arrived(b, 'system.notice', 'bc-1');
    expect(a.find((m) => m.event === 'system.notice')!.meta.id).toBe(result.id);
  });

  it('presence.get - online with its node and connections, then offline with lastSeen', async () => {
    const socket = await rig.stack.client('sdk-presence-1', 1);
    const online = await sb.presence.get('sdk-presence-1');
    expect(online).toMatchObject({ userId: 'sdk-presence-1', online: true, connections: 1 });
    expect(online.nodes).toEqual([
      { nodeId: rig.stack.edges[1]!.nodeId, connections: 1, since: expect.any(Number) },
    ]);
    socket.close();
    const offline = await waitFor(async () => {
      const p = await sb.presence.get('sdk-presence-1');
      return p.online ? undefined : p;
    });
    expect(offline).toMatchObject({ userId: 'sdk-presence-1', online: false, connections: 0 });
    expect(offline.nodes).toEqual([]);
    expect(offline.lastSeen).toEqual(expect.any(Number));
  });

  it('presence.query - a summary per user, a duplicate once', async () => {
    await rig.stack.client('sdk-presence-q', 0);
    await rig.stack.client('sdk-presence-q', 1);
    const result = await sb.presence.query([
      'sdk-presence-q',
      'sdk-presence-none',
      'sdk-presence-q',
    ]);
    expect(result).toEqual({
      users: {
        'sdk-presence-q': { online: true, connections: 2 },
        'sdk-presence-none': { online: false, connections: 0 },
      },
    });
  });

  it('presence - without presenceUrl the call rejects and makes no request', async () => {
    let requests = 0;
    const noPresence = createSwitchboard({
      apiUrl: rig.apiUrl,
      apiKey: API_KEY,
      fetch: (input, init) => {
        requests++;
        return fetch(input, init);
      },
    });
    await expect(noPresence.presence.get('x')).rejects.toThrow(/presenceUrl/);
    await expect(noPresence.presence.query(['x'])).rejects.toThrow(/presenceUrl/);
    expect(requests).toBe(0);
  });

  it('devices - put, list, delete; deleting again is a typed 404', async () => {
    const user = 'sdk-devices-1';
    const token = 'ab'.repeat(32);
    const put = await sb.devices.put(user, 'phone-1', {
      platform: 'apns',
      token,
      appId: 'com.example.app',
      sandbox: true,
    });
    expect(put).toEqual({
      deviceId: 'phone-1',
      platform: 'apns',
      token,
      appId: 'com.example.app',
      sandbox: true,
      updatedAt: expect.any(Number),
    });
    await sb.devices.put(user, 'tablet-1', { platform: 'fcm', token: 'f'.repeat(40) });
    const list = await sb.devices.list(user);
    expect(list.userId).toBe(user);
    expect(list.devices.map((d) => d.deviceId).sort()).toEqual(['phone-1', 'tablet-1']);

    await expect(sb.devices.delete(user, 'phone-1')).resolves.toBeUndefined();
    expect((await sb.devices.list(user)).devices.map((d) => d.deviceId)).toEqual(['tablet-1']);

    const from = calls.length;
    const err = await sb.devices.delete(user, 'phone-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ status: 404, code: 'not_found', attempts: 1 });
    expect(calls.length - from).toBe(1);
  });

  it('devices - a token that does not fit its platform is a typed 400 naming the field', async () => {
    const err = await sb.devices
      .put('sdk-devices-2', 'phone-1', { platform: 'apns', token: 'not-hex' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ status: 400, code: 'validation_failed' });
    expect((err as SwitchboardError).details).toEqual([
      { field: 'body.token', message: expect.stringContaining('APNs') },
    ]);
  });

  it('user ids and device ids travel percent-encoded in paths', async () => {
    const user = 'a/b c%d?e#f é 🚀';
    await sb.devices.put(user, 'dev_1-x', { platform: 'fcm', token: 'g'.repeat(40) });
    const list = await sb.devices.list(user);
    expect(list.userId).toBe(user);
    expect(list.devices.map((d) => d.deviceId)).toEqual(['dev_1-x']);
    await sb.devices.delete(user, 'dev_1-x');

    const inbox = collect(await rig.stack.client(user, 0));
    const presence = await sb.presence.get(user);
    expect(presence).toMatchObject({ userId: user, online: true, connections: 1 });
    await sb.send({ to: user, event: 'dm.new', data: { n: 'enc' } });
    await arrived(inbox, 'dm.new', 'enc');
  });

  it('an id with a lone surrogate rejects before any request', async () => {
    const from = calls.length;
    await expect(sb.presence.get('bad\ud800')).rejects.toThrow(TypeError);
    await expect(sb.devices.list('bad\ud800')).rejects.toThrow(/well-formed/);
    expect(calls.length).toBe(from);
  });

  it('messages.status - the timeline of a delivered message', async () => {
    collect(await rig.stack.client('sdk-status-1', 0));
    const sent = await sb.send({ to: 'sdk-status-1', event: 'dm.status', data: {} });
    // Status is written in batches (every 100 ms): a 404 until then is "not yet".
    const status = await waitFor(() => sb.messages.status(sent.id));
    expect(status.id).toBe(sent.id);
    expect(status.event).toBe('dm.status');
    expect(status.recipients).toHaveLength(1);
    const [r] = status.recipients;
    expect(r!.userId).toBe('sdk-status-1');
    expect(r!.status).toBe('delivered');
    expect(r!.timeline.map((t) => t.step)).toEqual(['accepted', 'routed', 'delivered']);
    expect(r!.timeline[1]!.nodeId).toBe(rig.stack.edges[0]!.nodeId);
  });

  it('messages.status - an unknown id is a typed 404, not retried', async () => {
    const from = calls.length;
    const err = await sb.messages.status('sdk-no-such-message').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ status: 404, code: 'not_found', attempts: 1 });
    expect(calls.length - from).toBe(1);
  });

  it('errors - a 400 is a SwitchboardError with validation_failed and field details, not retried', async () => {
    const from = calls.length;
    const err = await sb.send({ to: 'x', event: 'connect', data: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardError);
    const e = err as SwitchboardError;
    expect(e.name).toBe('SwitchboardError');
    expect(e.status).toBe(400);
    expect(e.code).toBe('validation_failed');
    expect(e.message).toMatch(/reserved/);
    expect(e.details).toEqual([
      { field: 'body.event', message: 'event name is reserved by Socket.IO' },
    ]);
    expect(e.retryAfterMs).toBeUndefined();
    expect(e.attempts).toBe(1);
    expect(e.idempotencyKey).toEqual(expect.any(String));
    expect(callsTo('POST', '/v1/messages', from)).toHaveLength(1);
  });

  it('errors - a 401 (unknown API key) is a SwitchboardError unauthorized, not retried', async () => {
    let requests = 0;
    const wrongKey = createSwitchboard({
      apiUrl: rig.apiUrl,
      presenceUrl: rig.presenceUrl,
      apiKey: 'not-a-configured-key-0000',
      retries: { max: 3, minDelayMs: 10, maxDelayMs: 100 },
      fetch: (input, init) => {
        requests++;
        return fetch(input, init);
      },
    });
    for (const call of [
      () => wrongKey.send({ to: 'x', event: 'dm.new' }),
      () => wrongKey.presence.get('x'),
      () => wrongKey.devices.list('x'),
    ]) {
      const before = requests;
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SwitchboardError);
      expect(err).toMatchObject({
        status: 401,
        code: 'unauthorized',
        message: 'missing or invalid API key',
        attempts: 1,
      });
      expect(requests - before).toBe(1);
    }
  });
});
