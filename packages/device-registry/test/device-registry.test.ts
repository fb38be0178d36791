import { connect, type NatsConnection } from '@nats-io/transport-node';
import { openDevicesBucket } from '@switchboard/device-registry';
import { NatsServer } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistry } from '../src/device-registry.js';

const TOKEN = 'e'.repeat(64);

describe('device registry', () => {
  let nats: NatsServer;
  let a: NatsConnection;
  let b: NatsConnection;
  beforeAll(async () => {
    nats = await NatsServer.start();
    a = await connect({ servers: nats.url });
    b = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await nats?.stop();
  });

  it('registry - concurrent changes from two processes all land (compare-and-set)', async () => {
    const ra = new DeviceRegistry(await openDevicesBucket(a, { replicas: 1 }));
    const rb = new DeviceRegistry(await openDevicesBucket(b, { replicas: 1 }));
    await Promise.all(
      Array.from({ length: 30 }, (_, i) => [
        ra.put('race', `a-${String(i).padStart(2, '0')}`, { platform: 'apns', token: TOKEN }),
        rb.put('race', `b-${String(i).padStart(2, '0')}`, { platform: 'apns', token: TOKEN }),
      ]).flat(),
    );
    expect(await ra.list('race')).toHaveLength(60);
  });

  it('registry - removeIfToken keeps a device that re-registered with a new token', async () => {
    const r = new DeviceRegistry(await openDevicesBucket(a, { replicas: 1 }));
    await r.put('rotating', 'phone', { platform: 'apns', token: TOKEN });
    await r.put('rotating', 'phone', { platform: 'apns', token: 'f'.repeat(64) });
    expect(await r.removeIfToken('rotating', 'phone', TOKEN)).toBe(false);
    expect((await r.get('rotating', 'phone'))?.token).toBe('f'.repeat(64));
    expect(await r.removeIfToken('rotating', 'phone', 'f'.repeat(64))).toBe(true);
    expect(await r.list('rotating')).toEqual([]);
    expect(await r.remove('rotating', 'phone')).toBe(false);
  });
});
