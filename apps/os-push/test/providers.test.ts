import { createServer } from 'node:http';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { DeadLetter, Streams } from '@switchboard/protocol';
import { freePort, http, waitFor } from '@switchboard/testkit';
import { decodeJwt } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApnsProvider } from '../src/providers/apns-provider.js';
import { WebhookProvider } from '../src/providers/webhook-provider.js';
import { PushRig, WEBHOOK_SECRET } from './support.js';

const APNS_TOKEN = (n: number) => n.toString(16).padStart(64, 'a');
const FCM_TOKEN = (n: number) => `fcm-token-${n}:${'x'.repeat(40)}`;
const steps = (s: Awaited<ReturnType<PushRig['status']>>) =>
  s.recipients[0]!.timeline.map((t) => t.step);

describe('os-push providers', () => {
  let rig: PushRig;
  let hookPort: number;
  beforeAll(async () => {
    rig = await PushRig.start();
    hookPort = await freePort();
    await rig.addWorker({ WEBHOOK_ALLOWED_HOSTS: `localhost:${hookPort}` });
  });
  afterAll(() => rig?.close());

  it('apns + fcm - an offline user with an APNs and an FCM device: both providers get correct requests', async () => {
    await rig.device('both@example.com', 'iphone', { platform: 'apns', token: APNS_TOKEN(1) });
    await rig.device('both@example.com', 'pixel', { platform: 'fcm', token: FCM_TOKEN(1) });
    const id = await rig.send('both@example.com', {
      title: 'New message',
      body: 'Alice: hi',
      data: { thread: 't1' },
      collapseKey: 'thread-t1',
      ttlSeconds: 600,
      priority: 'high',
    });
    await waitFor(
      () =>
        rig.apns.delivered(APNS_TOKEN(1)).length === 1 &&
        rig.fcm.sends.some((s) => s.token === FCM_TOKEN(1)),
      { timeoutMs: 10_000 },
    );

    const a = rig.apns.delivered(APNS_TOKEN(1))[0]!;
    expect(a.headers['apns-topic']).toBe('com.example.app');
    expect(a.headers['apns-push-type']).toBe('alert');
    expect(a.headers['apns-priority']).toBe('10');
    expect(a.headers['apns-collapse-id']).toBe('thread-t1');
    const expiration = Number(a.headers['apns-expiration']);
    expect(expiration).toBeGreaterThan(Date.now() / 1000 + 590);
    expect(expiration).toBeLessThan(Date.now() / 1000 + 610);
    expect(a.headers['apns-id']).toMatch(
      /^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-A[0-9A-F]{3}-[0-9A-F]{12}$/,
    );
    expect(a.jwt.header).toMatchObject({ alg: 'ES256', kid: rig.apns.keyId });
    expect(a.jwt.claims).toMatchObject({ iss: rig.apns.teamId });
    expect(a.body).toMatchObject({
      aps: { alert: { title: 'New message', body: 'Alice: hi' } },
      thread: 't1',
      sb: { id, event: 'dm.new' },
    });

    const f = rig.fcm.sends.find((s) => s.token === FCM_TOKEN(1))!;
    expect(f.body.message).toMatchObject({
      token: FCM_TOKEN(1),
      notification: { title: 'New message', body: 'Alice: hi' },
      data: { thread: 't1', sbMessageId: id, sbEvent: 'dm.new' },
      android: { priority: 'HIGH', ttl: '600s', collapse_key: 'thread-t1' },
    });
    expect(rig.fcm.tokenExchanges[0]?.claims).toMatchObject({
      iss: rig.fcm.clientEmail,
      aud: `${rig.fcm.url}/token`,
      scope: 'https://www.googleapis.com/auth/firebase.messaging',
    });

    await waitFor(
      async () => steps(await rig.status(id)).filter((s) => s === 'provider-accepted').length === 2,
    );
    expect(steps(await rig.status(id))).toEqual([
      'accepted',
      'queued-for-fallback',
      'provider-accepted',
      'provider-accepted',
    ]);
  });

  it('apns - 410 Unregistered removes the device; FCM UNREGISTERED too', async () => {
    await rig.device('gone', 'old-iphone', { platform: 'apns', token: APNS_TOKEN(2) });
    await rig.device('gone', 'old-pixel', { platform: 'fcm', token: FCM_TOKEN(2) });
    rig.apns.script(APNS_TOKEN(2), { status: 410, reason: 'Unregistered' });
    rig.fcm.script(FCM_TOKEN(2), { status: 404, errorCode: 'UNREGISTERED' });
    const id = await rig.send('gone');
    await waitFor(
      async () =>
        (await (await rig.request('GET', '/v1/users/gone/devices')).json()).devices.length === 0,
      { timeoutMs: 10_000 },
    );
    await waitFor(
      async () => steps(await rig.status(id)).filter((s) => s === 'device-removed').length === 2,
    );
  });

  it('apns BadDeviceToken and FCM INVALID_ARGUMENT on the token remove devices; other 400s do not', async () => {
    await rig.device('bad-tokens', 'a-bad', { platform: 'apns', token: APNS_TOKEN(8) });
    await rig.device('bad-tokens', 'f-bad', { platform: 'fcm', token: FCM_TOKEN(8) });
    await rig.device('bad-tokens', 'a-payload', { platform: 'apns', token: APNS_TOKEN(9) });
    rig.apns.script(APNS_TOKEN(8), { status: 400, reason: 'BadDeviceToken' });
    rig.fcm.script(FCM_TOKEN(8), {
      status: 400,
      errorCode: 'INVALID_ARGUMENT',
      message: 'The registration token is not a valid FCM registration token',
    });
    rig.apns.script(APNS_TOKEN(9), { status: 400, reason: 'BadCollapseId' });
    const id = await rig.send('bad-tokens');
    await waitFor(async () => steps(await rig.status(id)).length >= 5, { timeoutMs: 10_000 });
    const timeline = (await rig.status(id)).recipients[0]!.timeline;
    expect(timeline.find((t) => t.deviceId === 'a-bad')).toMatchObject({
      step: 'device-removed',
      detail: '400 BadDeviceToken',
    });
    expect(timeline.find((t) => t.deviceId === 'f-bad')).toMatchObject({ step: 'device-removed' });
    expect(timeline.find((t) => t.deviceId === 'a-payload')).toMatchObject({
      step: 'provider-rejected',
      detail: '400 BadCollapseId',
    });
    const left = await (await rig.request('GET', '/v1/users/bad-tokens/devices')).json();
    expect(left.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual(['a-payload']);
  });

  it('apns - 429 then 200 retries (honouring backoff) and succeeds once', async () => {
    await rig.device('throttled', 'iphone', { platform: 'apns', token: APNS_TOKEN(3) });
    rig.apns.script(APNS_TOKEN(3), {
      status: 429,
      reason: 'TooManyRequests',
      retryAfterSeconds: 0,
    });
    const id = await rig.send('throttled');
    await waitFor(() => rig.apns.delivered(APNS_TOKEN(3)).length === 1, { timeoutMs: 10_000 });
    await rig.drained();
    expect(rig.apns.requests.filter((r) => r.token === APNS_TOKEN(3))).toHaveLength(2);
    expect(rig.apns.delivered(APNS_TOKEN(3))).toHaveLength(1);
    await waitFor(async () => steps(await rig.status(id)).includes('provider-accepted'));
    expect(steps(await rig.status(id))).toEqual([
      'accepted',
      'queued-for-fallback',
      'provider-retry',
      'provider-accepted',
    ]);
  });

  it('apns - Retry-After is honoured: the retry waits at least as long as the provider asked', async () => {
    await rig.device('patient', 'iphone', { platform: 'apns', token: APNS_TOKEN(6) });
    rig.apns.script(APNS_TOKEN(6), {
      status: 503,
      reason: 'ServiceUnavailable',
      retryAfterSeconds: 1,
    });
    await rig.send('patient');
    await waitFor(() => rig.apns.delivered(APNS_TOKEN(6)).length === 1, { timeoutMs: 10_000 });
    const [first, second] = rig.apns.requests.filter((r) => r.token === APNS_TOKEN(6));
    // The worker's own backoff here is 50 ms: only Retry-After explains a 1 s gap.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
  });

  it('apns - the provider token is reused, and signed again after 50 minutes', async () => {
    const provider = new ApnsProvider({
      keyPem: rig.apns.privateKeyPem,
      keyId: rig.apns.keyId,
      teamId: rig.apns.teamId,
      log: pino({ level: 'silent' }),
    });
    const now = Date.now();
    const t1 = await provider.token(now);
    expect(await provider.token(now + 49 * 60_000)).toBe(t1);
    const t2 = await provider.token(now + 51 * 60_000);
    expect(t2).not.toBe(t1);
    expect(decodeJwt(t2).iat).toBe(Math.floor((now + 51 * 60_000) / 1000));
  });

  it('fcm - the access token is cached across sends and exchanged again after a 401', async () => {
    await rig.device('oauth', 'pixel', { platform: 'fcm', token: FCM_TOKEN(7) });
    const sent = () => rig.fcm.sends.filter((s) => s.token === FCM_TOKEN(7)).length;
    // The first send exchanges a token unless an earlier test's did; the second reuses it.
    await rig.send('oauth');
    await waitFor(() => sent() === 1, { timeoutMs: 10_000 });
    const exchanges = rig.fcm.tokenExchanges.length;
    expect(exchanges).toBeGreaterThan(0);
    await rig.send('oauth');
    await waitFor(() => sent() === 2, { timeoutMs: 10_000 });
    expect(rig.fcm.tokenExchanges.length).toBe(exchanges);
    rig.fcm.revokeAccessTokens();
    const id = await rig.send('oauth');
    await waitFor(async () => steps(await rig.status(id)).includes('provider-accepted'), {
      timeoutMs: 10_000,
    });
    expect(rig.fcm.tokenExchanges.length).toBe(exchanges + 1);
    expect(steps(await rig.status(id))).toEqual([
      'accepted',
      'queued-for-fallback',
      'provider-retry',
      'provider-accepted',
    ]);
  });

  it('redelivery - a device that already succeeded is not sent again while another retries', async () => {
    await rig.device('mixed', 'ok-phone', { platform: 'apns', token: APNS_TOKEN(4) });
    await rig.device('mixed', 'flaky-phone', { platform: 'fcm', token: FCM_TOKEN(4) });
    rig.fcm.script(FCM_TOKEN(4), { status: 503 });
    await rig.send('mixed');
    await waitFor(() => rig.fcm.sends.filter((s) => s.token === FCM_TOKEN(4)).length === 2, {
      timeoutMs: 10_000,
    });
    // Every attempt is over (the message is acked or dead-lettered): a resend to the
    // device that succeeded would have happened by now.
    await rig.drained();
    expect(rig.apns.requests.filter((r) => r.token === APNS_TOKEN(4))).toHaveLength(1);
  });

  it('dlq - a provider down for longer than the attempts: the message is dead-lettered with its reason', async () => {
    await rig.device('unlucky', 'pixel', { platform: 'fcm', token: FCM_TOKEN(5) });
    rig.fcm.script(
      FCM_TOKEN(5),
      { status: 503 },
      { status: 503 },
      { status: 503 },
      { status: 503 },
    );
    const id = await rig.send('unlucky');
    const nc = await connect({ servers: rig.nats.url });
    const jsm = await jetstreamManager(nc);
    const letter = await waitFor(
      async () => {
        const m = await jsm.streams
          .getMessage(Streams.fallbackDlq, { last_by_subj: 'push.v1.dlq.unlucky' })
          .catch(() => null);
        return m ? DeadLetter.parse(m.json()) : null;
      },
      { timeoutMs: 10_000 },
    );
    expect(letter.message.id).toBe(id);
    expect(letter.attempts).toBe(3);
    expect(letter.reason).toMatch(/attempts exhausted \(3\): pixel: 503/);
    expect(rig.fcm.sends.filter((s) => s.token === FCM_TOKEN(5))).toHaveLength(3);
    await waitFor(async () => steps(await rig.status(id)).includes('dead-lettered'));
    await nc.close();
  });

  it('webhook - a host outside WEBHOOK_ALLOWED_HOSTS is refused; an allowed one gets a signed POST', async () => {
    const got: Array<{ body: string; signature: string }> = [];
    const hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        got.push({ body, signature: String(req.headers['x-switchboard-signature']) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hook.listen(hookPort, '127.0.0.1', r));
    const port = hookPort;
    await rig.device('hooked', 'denied', {
      platform: 'webhook',
      token: `http://127.0.0.1:${port}/hook`,
    });
    await rig.device('hooked', 'allowed', {
      platform: 'webhook',
      token: `http://localhost:${port}/hook`,
    });
    const id = await rig.send('hooked');
    await waitFor(async () => steps(await rig.status(id)).length >= 4, { timeoutMs: 10_000 });
    const timeline = (await rig.status(id)).recipients[0]!.timeline;
    expect(timeline.find((t) => t.deviceId === 'denied')).toMatchObject({
      step: 'provider-rejected',
      detail: expect.stringMatching(/not in WEBHOOK_ALLOWED_HOSTS/),
    });
    expect(timeline.find((t) => t.deviceId === 'allowed')).toMatchObject({
      step: 'provider-accepted',
    });
    expect(got).toHaveLength(1);
    const t = Number(/t=(\d+)/.exec(got[0]!.signature)![1]);
    expect(got[0]!.signature).toBe(WebhookProvider.sign(WEBHOOK_SECRET, t, got[0]!.body));
    expect(JSON.parse(got[0]!.body)).toMatchObject({ id, userId: 'hooked', event: 'dm.new' });
    hook.close();
  });

  it('no devices - the status says so and the message is done', async () => {
    const id = await rig.send('no-device-user');
    await waitFor(async () => steps(await rig.status(id)).includes('no-devices'), {
      timeoutMs: 10_000,
    });
  });

  it('metrics - sends are counted by platform and outcome', async () => {
    const text = await (await http(`${rig.workers[0]!.url}/metrics`)).text();
    expect(text).toMatch(
      /switchboard_os_push_sends_total\{platform="apns",outcome="accepted",app="os-push"\} [1-9]/,
    );
    expect(text).toMatch(
      /switchboard_os_push_sends_total\{platform="fcm",outcome="invalid-token",app="os-push"\} [1-9]/,
    );
    expect(text).toMatch(
      /switchboard_os_push_messages_total\{outcome="deadLettered",app="os-push"\} 1/,
    );
  });
});
