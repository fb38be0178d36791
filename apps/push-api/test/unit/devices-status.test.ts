/**
 * The device registry routes and `GET /v1/messages/:id` through the real app over fakes
 * and `inject()`: what each answers, and the exact answer when its store fails.
 */
import { NoRespondersError, TimeoutError } from '@nats-io/transport-node';
import { apiKeyIdOf } from '@switchboard/http';
import type { StatusRecord } from '@switchboard/protocol';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { API_KEY, fakeApp, SECOND_API_KEY } from './fakes.js';

type App = Awaited<ReturnType<typeof fakeApp>>;

const auth = { authorization: `Bearer ${API_KEY}` };
const headers = { ...auth, 'content-type': 'application/json' };
const error = (code: string, message: string) => ({ error: { code, message } });
const FCM_TOKEN = `fcm:${'t'.repeat(40)}`;

describe('device routes', () => {
  let t: App;
  beforeAll(async () => {
    t = await fakeApp({ webhooks: { allowedHosts: ['hooks.example.com'], requireHttps: true } });
  });
  beforeEach(() => {
    t.devices.failure = undefined;
    t.devices.maxPerUser = 100;
  });
  afterAll(() => t?.app.close());

  const put = (userId: string, deviceId: string, payload: object) =>
    t.app.inject({
      method: 'PUT',
      url: `/v1/users/${userId}/devices/${deviceId}`,
      headers,
      payload,
    });

  it('devices - register, list and remove one', async () => {
    const res = await put('alice', 'phone-1', { platform: 'fcm', token: FCM_TOKEN });
    expect(res.statusCode).toBe(200);
    const device = {
      deviceId: 'phone-1',
      platform: 'fcm',
      token: FCM_TOKEN,
      updatedAt: 1_700_000_000_000,
    };
    expect(res.json()).toEqual(device);
    const list = await t.app.inject({ url: '/v1/users/alice/devices', headers: auth });
    expect([list.statusCode, list.json()]).toEqual([200, { userId: 'alice', devices: [device] }]);
    const removed = await t.app.inject({
      method: 'DELETE',
      url: '/v1/users/alice/devices/phone-1',
      headers: auth,
    });
    expect([removed.statusCode, removed.body]).toEqual([204, '']);
    expect(await t.devices.list('alice')).toEqual([]);
  });

  it('devices - removing a device that is not there is a 404', async () => {
    const res = await t.app.inject({
      method: 'DELETE',
      url: '/v1/users/alice/devices/nope',
      headers: auth,
    });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual(error('not_found', 'no device nope for this user'));
  });

  it('devices - an unknown platform or a malformed token is a 400 naming the field', async () => {
    const platform = await put('alice', 'p', { platform: 'nope', token: 'x' });
    expect(platform.statusCode).toBe(400);
    const expected = 'Invalid option: expected one of "apns"|"fcm"|"webhook"';
    expect(platform.json()).toEqual({
      error: {
        code: 'validation_failed',
        message: `invalid body: body.platform: ${expected}`,
        details: [{ field: 'body.platform', message: expected }],
      },
    });
    const token = await put('alice', 'p', { platform: 'fcm', token: 'fcm:short' });
    expect(token.statusCode).toBe(400);
    expect(token.json().error.details).toEqual([
      { field: 'body.token', message: 'an FCM token is 32-4096 characters of [A-Za-z0-9_:.-]' },
    ]);
  });

  it('devices - a webhook outside the allowed hosts is a 400 naming the token, and not stored', async () => {
    const res = await put('alice', 'hook', {
      platform: 'webhook',
      token: 'https://evil.example.com/h',
    });
    expect(res.statusCode).toBe(400);
    const refusal = 'host evil.example.com is not in WEBHOOK_ALLOWED_HOSTS';
    expect(res.json()).toEqual({
      error: {
        code: 'validation_failed',
        message: `token: ${refusal}`,
        details: [{ path: ['token'], message: refusal }],
      },
    });
    expect(await t.devices.list('alice')).toEqual([]);
    const ok = await put('alice', 'hook', {
      platform: 'webhook',
      token: 'https://hooks.example.com/h',
    });
    expect(ok.statusCode).toBe(200);
  });

  it('devices - past the per-user bound a new device is a 409', async () => {
    t.devices.maxPerUser = 1;
    expect((await put('bob', 'one', { platform: 'fcm', token: FCM_TOKEN })).statusCode).toBe(200);
    const res = await put('bob', 'two', { platform: 'fcm', token: FCM_TOKEN });
    expect(res.statusCode).toBe(409);
    expect(res.headers['retry-after']).toBeUndefined();
    expect(res.json()).toEqual(error('conflict', 'a user may have at most 100 devices'));
  });

  it('devices - the registry unreachable is a 503 with Retry-After on every route', async () => {
    t.devices.failure = new TimeoutError();
    const answers = await Promise.all([
      put('carol', 'p', { platform: 'fcm', token: FCM_TOKEN }),
      t.app.inject({ method: 'DELETE', url: '/v1/users/carol/devices/p', headers: auth }),
      t.app.inject({ url: '/v1/users/carol/devices', headers: auth }),
    ]);
    for (const res of answers) {
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.json()).toEqual(
        error('unavailable', 'the device registry is unavailable, retry later'),
      );
    }
  });
});

describe('GET /v1/messages/:id', () => {
  let t: App;
  beforeAll(async () => {
    t = await fakeApp();
  });
  beforeEach(() => {
    t.status.failure = undefined;
  });
  afterAll(() => t?.app.close());

  const send = (owner?: string): StatusRecord => ({
    kind: 'send',
    id: 'm-1',
    ...(owner === undefined ? {} : { owner }),
    event: 'dm.new',
    acceptedAt: 1_000,
    finishedAt: 1_005,
    ack: false,
    recipients: [{ userId: 'u', status: 'delivered', connections: 1, nodes: ['n1'] }],
  });
  const get = (id: string, key = API_KEY) =>
    t.app.inject({ url: `/v1/messages/${id}`, headers: { authorization: `Bearer ${key}` } });

  it('status - the timeline of each recipient, for the key that sent it only', async () => {
    t.status.records.set('m-1', [send(apiKeyIdOf(API_KEY))]);
    const res = await get('m-1');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      id: 'm-1',
      event: 'dm.new',
      recipients: [
        {
          userId: 'u',
          status: 'delivered',
          timeline: [
            { at: 1_000, step: 'accepted' },
            { at: 1_000, step: 'routed', nodeId: 'n1' },
            { at: 1_005, step: 'delivered', detail: '1 connection(s)' },
          ],
        },
      ],
    });
    const other = await get('m-1', SECOND_API_KEY);
    expect(other.statusCode).toBe(404);
    expect(other.json()).toEqual(error('not_found', 'no message m-1 in the last 24 hours'));
  });

  it('status - the push API steps come before the worker steps, even when the worker recorded first', async () => {
    // The worker took the fallback (at 1_003) before the push API finished the whole send (1_005).
    const fallback: StatusRecord = {
      ...(send() as Extract<StatusRecord, { kind: 'send' }>),
      recipients: [{ userId: 'u', status: 'fallback', reason: 'offline', nodes: [] }],
    };
    const provider = (at: number, outcome: 'retry' | 'accepted'): StatusRecord => ({
      kind: 'provider',
      id: 'm-1',
      userId: 'u',
      at,
      attempt: outcome === 'retry' ? 1 : 2,
      outcome,
      deviceId: 'phone',
      platform: 'apns',
    });
    t.status.records.set('m-1', [provider(1_009, 'accepted'), fallback, provider(1_003, 'retry')]);
    const res = await get('m-1');
    expect(res.statusCode).toBe(200);
    const steps = (
      res.json() as { recipients: Array<{ timeline: Array<{ step: string }> }> }
    ).recipients[0]?.timeline.map((e) => e.step);
    expect(steps).toEqual([
      'accepted',
      'queued-for-fallback',
      'provider-retry',
      'provider-accepted',
    ]);
  });

  it('status - records from before owners were recorded are readable by any key', async () => {
    t.status.records.set('m-1', [send()]);
    expect((await get('m-1', SECOND_API_KEY)).statusCode).toBe(200);
  });

  it('status - an unknown id is a 404, a malformed one a 400', async () => {
    const unknown = await get('m-unknown');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual(error('not_found', 'no message m-unknown in the last 24 hours'));
    const bad = await get('has%20space');
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({
      error: {
        code: 'validation_failed',
        message: 'invalid params: params.id: id must use [A-Za-z0-9._:-]',
        details: [{ field: 'params.id', message: 'id must use [A-Za-z0-9._:-]' }],
      },
    });
  });

  it('status - the stream unreachable is a 503 with Retry-After', async () => {
    t.status.failure = new NoRespondersError('$JS.API.STREAM.MSG.GET.PUSH_STATUS');
    const res = await get('m-1');
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toEqual(error('unavailable', 'message status is unavailable, retry later'));
  });
});
