/**
 * APNs header-bound fields: refused with a 400 where they arrive (push API), and a clear
 * permanent failure in the worker for anything that slips through (dead-lettered with the
 * reason, never retried, never sent).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DeviceRegistry, openDevicesBucket } from '@switchboard/device-registry';
import type { FallbackMessage } from '@switchboard/protocol';
import { DeadLetter, Streams } from '@switchboard/protocol';
import { waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApnsProvider } from '../src/providers/apns-provider.js';
import { log, PushRig } from './support.js';

const TOKEN = (n: number) => n.toString(16).padStart(64, 'e');

describe('os-push apns validation', () => {
  let rig: PushRig;
  let nc: NatsConnection;
  beforeAll(async () => {
    rig = await PushRig.start();
    await rig.addWorker();
    nc = await connect({ servers: rig.nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await rig?.close();
  });

  it('push api - a collapseKey over 64 UTF-8 bytes, with CR/LF, or data.aps is a 400', async () => {
    await rig.device('v-api', 'iphone', { platform: 'apns', token: TOKEN(1) });
    for (const fallback of [
      { title: 't', collapseKey: 'é'.repeat(33) }, // 33 characters, 66 bytes
      { title: 't', collapseKey: 'a\r\napns-topic: evil' },
      { title: 't', data: { aps: '{"alert":"spoofed"}' } },
    ]) {
      const res = await rig.request('POST', '/v1/messages', {
        to: 'v-api',
        event: 'dm.new',
        fallback,
      });
      expect(res.status, JSON.stringify(fallback)).toBe(400);
      expect((await res.json()).error.code).toBe('validation_failed');
    }
    const ok = await rig.request('POST', '/v1/messages', {
      to: 'v-api',
      event: 'dm.new',
      fallback: { title: 't', collapseKey: 'é'.repeat(32) },
    });
    expect(ok.status).toBe(200);
  });

  it('push api - an APNs appId that is not a bundle id is a 400', async () => {
    const res = await rig.request('PUT', '/v1/users/v-reg/devices/iphone', {
      platform: 'apns',
      token: TOKEN(2),
      appId: 'com.example.app\r\nx-evil: 1',
    });
    expect(res.status).toBe(400);
  });

  it('worker - a device whose appId slipped through is dead-lettered at once with the reason, never sent', async () => {
    // Written straight into the registry, as an older version or another writer could have.
    const devices = new DeviceRegistry(await openDevicesBucket(nc, { replicas: 1 }));
    await devices.put('v-slip', 'iphone', {
      platform: 'apns',
      token: TOKEN(3),
      appId: 'com.example.app\r\nx-evil: 1',
    });
    const id = await rig.send('v-slip');
    const jsm = await jetstreamManager(nc);
    const letter = await waitFor(
      async () => {
        const m = await jsm.streams
          .getMessage(Streams.fallbackDlq, { last_by_subj: 'push.v1.dlq.v-slip' })
          .catch(() => null);
        return m ? DeadLetter.parse(m.json()) : null;
      },
      { timeoutMs: 10_000 },
    );
    expect(letter.message.id).toBe(id);
    expect(letter.attempts).toBe(1);
    expect(letter.reason).toMatch(/invalid notification: iphone: .*apns-topic/);
    expect(rig.apns.requests.filter((r) => r.token === TOKEN(3))).toHaveLength(0);
  });

  it('provider - custom data cannot overwrite aps; a collapse id over 64 bytes or with CR/LF is refused, not sent', async () => {
    const provider = new ApnsProvider({
      keyPem: rig.apns.privateKeyPem,
      keyId: rig.apns.keyId,
      teamId: rig.apns.teamId,
      defaultTopic: 'com.example.app',
      baseUrl: rig.apns.url,
      log,
    });
    const device = {
      deviceId: 'iphone',
      platform: 'apns' as const,
      token: TOKEN(4),
      updatedAt: Date.now(),
    };
    const message = (notification: FallbackMessage['notification']): FallbackMessage => ({
      id: 'm-1',
      userId: 'v-provider',
      event: 'dm.new',
      data: null,
      sentAt: Date.now(),
      reason: 'offline',
      notification,
    });
    try {
      for (const n of [
        { title: 't', data: { aps: 'spoofed' } },
        { title: 't', collapseKey: 'é'.repeat(33) },
        { title: 't', collapseKey: 'a\r\nb' },
      ]) {
        expect(await provider.send(device, message(n)), JSON.stringify(n)).toMatchObject({
          outcome: 'rejected',
          invalid: true,
        });
      }
      expect(rig.apns.requests.filter((r) => r.token === TOKEN(4))).toHaveLength(0);
      // A multi-byte collapse id within 64 bytes goes out as UTF-8 bytes, as Apple counts them.
      expect(
        await provider.send(device, message({ title: 't', collapseKey: 'é'.repeat(32) })),
      ).toMatchObject({ outcome: 'accepted' });
      const sent = rig.apns.delivered(TOKEN(4))[0]!;
      expect(Buffer.from(String(sent.headers['apns-collapse-id']), 'latin1').toString('utf8')).toBe(
        'é'.repeat(32),
      );
    } finally {
      await provider.close();
    }
  });
});
