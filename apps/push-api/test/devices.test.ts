import { http, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './support/stack.js';

const APNS = 'a'.repeat(64);

describe('push-api device registry and message status', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 1 });
  });
  afterAll(() => stack?.close());

  const call = (method: string, path: string, body?: unknown, key = 'test-api-key-0123456789') =>
    http(`${stack.apiUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined
        ? {}
        : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });

  it('devices - put, list, replace, delete', async () => {
    const put = await call('PUT', '/v1/users/u%40x.io/devices/phone-1', {
      platform: 'apns',
      token: APNS,
      appId: 'com.x',
      sandbox: true,
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({
      deviceId: 'phone-1',
      platform: 'apns',
      token: APNS,
      appId: 'com.x',
      sandbox: true,
    });
    await call('PUT', '/v1/users/u%40x.io/devices/tab-2', {
      platform: 'webhook',
      token: 'https://hooks.example.com/u',
    });
    await call('PUT', '/v1/users/u%40x.io/devices/phone-1', {
      platform: 'fcm',
      token: `fcm:${'z'.repeat(60)}`,
    });
    const list = await (await call('GET', '/v1/users/u%40x.io/devices')).json();
    expect(list.userId).toBe('u@x.io');
    expect(
      list.devices.map(
        (d: { deviceId: string; platform: string }) => `${d.deviceId}:${d.platform}`,
      ),
    ).toEqual(['phone-1:fcm', 'tab-2:webhook']);
    // Users whose ids a lossy key or path decoding would merge with u@x.io keep their own
    // entries: the literal escape text `u=40x=2Eio` (its `=` must be escaped), `U@x.io` (keys
    // are case-sensitive), `u%40x.io` (the path is decoded once) and `u_x.io`.
    const neighbours = ['u=40x=2Eio', 'U@x.io', 'u%40x.io', 'u_x.io'];
    for (const [i, userId] of neighbours.entries()) {
      const path = `/v1/users/${encodeURIComponent(userId)}/devices/other-${i}`;
      expect((await call('PUT', path, { platform: 'apns', token: APNS })).status).toBe(200);
    }
    const listed = async (userId: string) => {
      const res = await (
        await call('GET', `/v1/users/${encodeURIComponent(userId)}/devices`)
      ).json();
      expect(res.userId).toBe(userId);
      return res.devices.map((d: { deviceId: string }) => d.deviceId);
    };
    expect(await listed('u@x.io')).toEqual(['phone-1', 'tab-2']);
    for (const [i, userId] of neighbours.entries())
      expect(await listed(userId), userId).toEqual([`other-${i}`]);
    expect((await call('DELETE', '/v1/users/u%40x.io/devices/tab-2')).status).toBe(204);
    expect((await (await call('GET', '/v1/users/u%40x.io/devices')).json()).devices).toHaveLength(
      1,
    );
  });

  it.each([
    ['an APNs token that is not hex', { platform: 'apns', token: 'xyz' }, 'body.token'],
    ['a short APNs token', { platform: 'apns', token: 'ab'.repeat(10) }, 'body.token'],
    [
      'an FCM token with spaces',
      { platform: 'fcm', token: `bad token ${'x'.repeat(40)}` },
      'body.token',
    ],
    ['a webhook that is not a URL', { platform: 'webhook', token: 'not a url' }, 'body.token'],
    ['a webhook with another scheme', { platform: 'webhook', token: 'ftp://x.io/a' }, 'body.token'],
    ['an unknown platform', { platform: 'sms', token: '123' }, 'body.platform'],
    [
      'sandbox on fcm',
      { platform: 'fcm', token: `f:${'x'.repeat(40)}`, sandbox: true },
      'body.sandbox',
    ],
    ['an unknown field', { platform: 'apns', token: APNS, color: 'red' }, 'body'],
  ])('devices - %s is a 400 naming the field', async (_n, body, field) => {
    const res = await call('PUT', '/v1/users/u/devices/d', body);
    expect(res.status).toBe(400);
    const err = await res.json();
    expect(err.error.code).toBe('validation_failed');
    expect(err.error.details.map((d: { field: string }) => d.field)).toContain(field);
  });

  it('devices - concurrent registrations for one user all land (compare-and-set); the 101st is a 409', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => `dev-${String(i).padStart(3, '0')}`);
    const results = await Promise.all(
      ids.map((d) => call('PUT', `/v1/users/many/devices/${d}`, { platform: 'apns', token: APNS })),
    );
    expect(results.map((r) => r.status)).toEqual(ids.map(() => 200));
    const list = await (await call('GET', '/v1/users/many/devices')).json();
    expect(list.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual(ids);
    const over = await call('PUT', '/v1/users/many/devices/dev-100', {
      platform: 'apns',
      token: APNS,
    });
    expect(over.status).toBe(409);
    expect((await over.json()).error.code).toBe('conflict');
    // Replacing an existing one is still allowed.
    expect(
      (
        await call('PUT', '/v1/users/many/devices/dev-000', {
          platform: 'apns',
          token: 'b'.repeat(64),
        })
      ).status,
    ).toBe(200);
  });

  it('devices - bad ids, unknown devices and missing keys', async () => {
    expect(
      (await call('PUT', '/v1/users/u/devices/bad.id', { platform: 'apns', token: APNS })).status,
    ).toBe(400);
    const missing = await call('DELETE', '/v1/users/u/devices/nope');
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe('not_found');
    expect(
      (await call('GET', '/v1/users/u/devices', undefined, 'wrong-key-wrong-key')).status,
    ).toBe(401);
  });

  it('status - GET /v1/messages/:id gives each recipient a timeline; unknown ids are 404', async () => {
    await stack.client('seen', 0);
    const res = await stack.post('/v1/messages', {
      to: ['seen', 'unseen'],
      event: 'dm.new',
      data: 1,
      fallback: { title: 't' },
    });
    const { id } = await res.json();
    // Status records are written after the answer, without waiting: poll briefly.
    const status = await waitFor(async () => {
      const r = await call('GET', `/v1/messages/${id}`);
      return r.status === 200 ? r.json() : null;
    });
    expect(status.id).toBe(id);
    const seen = status.recipients.find((r: { userId: string }) => r.userId === 'seen');
    const unseen = status.recipients.find((r: { userId: string }) => r.userId === 'unseen');
    expect(seen.timeline.map((t: { step: string }) => t.step)).toEqual([
      'accepted',
      'routed',
      'delivered',
    ]);
    expect(seen.timeline[1].nodeId).toBe('edge-1');
    expect(
      unseen.timeline.map((t: { step: string; detail?: string }) => `${t.step}:${t.detail ?? ''}`),
    ).toEqual(['accepted:', 'queued-for-fallback:offline']);
    const nf = await call('GET', '/v1/messages/no-such-message');
    expect(nf.status).toBe(404);
    expect((await nf.json()).error.code).toBe('not_found');
  });
});
