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
    // Two devices: the tablet's first answer to each message is "retry in 2 s", so the phone
    // is settled and the tablet still owed; the worker saves that progress and naks, and the
    // retry comes after the kill, to the restarted worker, which must send to the tablet only.
    const phone = 'c'.repeat(64);
    const tablet = 'd'.repeat(64);
    await rig.device('crashy', 'iphone', { platform: 'apns', token: phone });
    await rig.device('crashy', 'ipad', { platform: 'apns', token: tablet });
    const total = 40;
    rig.apns.script(
      tablet,
      ...Array.from({ length: total }, () => ({
        status: 429,
        reason: 'TooManyRequests',
        retryAfterSeconds: 2,
      })),
    );
    // Requests are held 300 ms, so the kill lands while some are in flight.
    rig.apns.delayMs = 300;
    const env = rig.workerEnv({
      OS_PUSH_ACK_WAIT_MS: '1500',
      OS_PUSH_CONCURRENCY: '8',
      // A message may meet a few of the scripted 429s; none is dead-lettered for it.
      OS_PUSH_MAX_ATTEMPTS: '10',
      LOG_LEVEL: 'warn',
    });
    const spawn = async () => {
      const port = await freePort();
      return AppProcess.spawn('os-push', {
        env: { ...env, PORT: String(port) },
        readyUrl: `http://127.0.0.1:${port}/readyz`,
      });
    };
    const ids = new Set<string>();
    for (let i = 0; i < total; i++) ids.add(await rig.send('crashy'));
    // Every request the test APNs saw for these devices, across the kill and the restart.
    const mine = () => rig.apns.requests.filter((r) => r.token === phone || r.token === tablet);
    const messageOf = (r: { body: Record<string, unknown> }) => (r.body.sb as { id: string }).id;
    const first = await spawn();
    // Killed once 16 messages were started (so 8 finished their first delivery and saved
    // their progress) and while each of the worker's 8 slots waits on a request that arrived
    // under 200 ms ago (held 300 ms, so not answered): no answer the worker got is unsaved,
    // so a second 200 for a (message, device) below is a resend of a settled device.
    await waitFor(
      () => {
        const now = Date.now();
        const started = new Set(mine().map(messageOf));
        const held = new Set(
          mine()
            .filter((r) => now - r.at < 200)
            .map(messageOf),
        );
        return started.size >= 16 && held.size >= 8;
      },
      { timeoutMs: 20_000, intervalMs: 10 },
    );
    await first.kill();
    const killedAt = Date.now();
    const beforeKill = mine().filter((r) => r.answered).length;
    const second = await spawn();
    const answered = () => mine().filter((r) => r.answered);
    const pair = (r: { token: string; body: Record<string, unknown> }) =>
      `${messageOf(r)} ${r.token === phone ? 'phone' : 'tablet'}`;
    await waitFor(() => new Set(answered().map(pair)).size === 2 * total, { timeoutMs: 30_000 });
    // Nothing left pending or in flight: a resend after the kill would have happened.
    await rig.drained(30_000);
    const sends = new Map<string, number>();
    for (const r of answered()) sends.set(pair(r), (sends.get(pair(r)) ?? 0) + 1);
    // Messages whose phone the first worker settled and whose tablet the second one sent.
    const crossed = [...ids].filter(
      (id) =>
        answered().some((r) => messageOf(r) === id && r.token === phone && r.at < killedAt) &&
        answered().some((r) => messageOf(r) === id && r.token === tablet && r.at > killedAt),
    );
    console.log(
      `kill -9: ${beforeKill} answered before the kill, ${mine().length} requests in all, ${answered().length} answered, ${crossed.length} messages settled across the kill`,
    );
    expect(new Set(mine().map(messageOf))).toEqual(ids);
    expect(sends.size).toBe(2 * total);
    expect(
      [...sends].filter(([, n]) => n > 1).map(([p]) => p),
      'a (message, device) answered 200 twice',
    ).toEqual([]);
    expect(crossed.length).toBeGreaterThan(0);
    await second.stop();
    rig.apns.delayMs = 0;
  }, 60_000);
});
