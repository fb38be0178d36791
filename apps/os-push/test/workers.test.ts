import { AppProcess, freePort, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PushRig } from './support.js';

const TOKEN = 'b'.repeat(64);

describe('os-push workers', () => {
  let rig: PushRig;
  beforeAll(async () => {
    rig = await PushRig.start();
  });
  afterAll(() => rig?.close());

  it('work queue - two workers share the load; every message is sent once', async () => {
    const a = await rig.addWorker();
    const b = await rig.addWorker();
    rig.apns.delayMs = 5;
    await rig.device('shared', 'iphone', { platform: 'apns', token: TOKEN });
    const ids = [];
    for (let i = 0; i < 60; i++) ids.push(await rig.send('shared'));
    await waitFor(() => rig.apns.delivered(TOKEN).length >= 60, { timeoutMs: 20_000 });
    await rig.drained();
    const apnsIds = rig.apns.delivered(TOKEN).map((r) => r.headers['apns-id']);
    expect(apnsIds).toHaveLength(60);
    expect(new Set(apnsIds).size).toBe(60);
    expect(a.worker.stats.acked).toBeGreaterThan(0);
    expect(b.worker.stats.acked).toBeGreaterThan(0);
    expect(a.worker.stats.acked + b.worker.stats.acked).toBe(60);
    await a.stop();
    await b.stop();
    rig.workers = [];
    rig.apns.delayMs = 0;
  });

  it('kill -9 - a worker killed mid-batch: after restart every message is sent, none twice to the same device', async () => {
    const token = 'c'.repeat(64);
    await rig.device('crashy', 'iphone', { platform: 'apns', token });
    // Requests are held 150 ms, so the kill lands while some are in flight.
    rig.apns.delayMs = 150;
    const env = rig.workerEnv({
      OS_PUSH_ACK_WAIT_MS: '1500',
      OS_PUSH_CONCURRENCY: '8',
      LOG_LEVEL: 'warn',
    });
    const spawn = async () => {
      const port = await freePort();
      return AppProcess.spawn('os-push', {
        env: { ...env, PORT: String(port) },
        readyUrl: `http://127.0.0.1:${port}/readyz`,
      });
    };
    const total = 40;
    for (let i = 0; i < total; i++) await rig.send('crashy');
    const first = await spawn();
    await waitFor(() => rig.apns.requests.filter((r) => r.token === token).length >= 12, {
      timeoutMs: 20_000,
    });
    await first.kill();
    const beforeRestart = rig.apns.delivered(token).length;
    const second = await spawn();
    await waitFor(
      () => new Set(rig.apns.delivered(token).map((r) => r.headers['apns-id'])).size === total,
      { timeoutMs: 30_000 },
    );
    // Nothing left pending or in flight: a resend after the kill would have happened.
    await rig.drained(30_000);
    const delivered = rig.apns.delivered(token).map((r) => String(r.headers['apns-id']));
    console.log(
      `kill -9: ${beforeRestart} delivered before the kill, ${rig.apns.requests.filter((r) => r.token === token).length} requests in all, ${delivered.length} answered`,
    );
    expect(new Set(delivered).size).toBe(total);
    expect(delivered).toHaveLength(total);
    await second.stop();
    rig.apns.delayMs = 0;
  }, 60_000);
});
