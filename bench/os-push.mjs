// OS push fallback throughput: one worker draining PUSH_FALLBACK to a local APNs (HTTP/2),
// beside the raw limit measured in the same run: the same ApnsProvider sending the same
// number of notifications directly, with the same concurrency (no stream, no device
// lookup, no status records).
import { connect } from '@nats-io/transport-node';
import { DeviceRegistry, openDevicesBucket } from '@switchboard/device-registry';
import {
  ensureDeadLetterStream,
  ensureFallbackStream,
  FallbackQueue,
} from '@switchboard/fallback-queue';
import { ensureStatusStream } from '@switchboard/message-status';
import { ApnsServer, NatsServer } from '@switchboard/testkit';
import { pino } from 'pino';
import { FallbackWorker } from '../apps/os-push/dist/fallback-worker.js';
import { ApnsProvider } from '../apps/os-push/dist/providers/apns-provider.js';
import { LogProvider } from '../apps/os-push/dist/providers/log-provider.js';

const N = Number(process.env.BENCH_FALLBACKS ?? 2_000);
const CONCURRENCY = 32;
const log = pino({ level: 'silent' });

export async function run() {
  const nats = await NatsServer.start();
  const apns = await ApnsServer.start();
  const nc = await connect({ servers: nats.url });
  try {
    await ensureFallbackStream(nc, { replicas: 1 });
    await ensureDeadLetterStream(nc, { replicas: 1 });
    await ensureStatusStream(nc, { replicas: 1 });
    const registry = new DeviceRegistry(await openDevicesBucket(nc, { replicas: 1 }));
    const provider = new ApnsProvider({
      keyPem: apns.privateKeyPem,
      keyId: apns.keyId,
      teamId: apns.teamId,
      defaultTopic: 'com.bench',
      baseUrl: apns.url,
      log,
    });
    const users = Array.from({ length: 100 }, (_, i) => `fb-${i}`);
    for (const [i, u] of users.entries())
      await registry.put(u, 'iphone', {
        platform: 'apns',
        token: i.toString(16).padStart(64, 'd'),
      });
    const message = (i) => ({
      id: `bench-${i}`,
      userId: users[i % users.length],
      event: 'dm.new',
      data: { i },
      sentAt: Date.now(),
      reason: 'offline',
      notification: { title: 'Hello', body: `message ${i}` },
    });

    // Raw limit: the provider alone.
    const device = await registry.get(users[0], 'iphone');
    let next = 0;
    let t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < N) await provider.send(device, message(next++));
      }),
    );
    const raw = (N / (performance.now() - t0)) * 1000;

    // Ours: N messages queued, then one worker drains them.
    const queue = new FallbackQueue(nc);
    for (let i = 0; i < N; i++) await queue.enqueue(message(N + i));
    const before = apns.delivered().length;
    const worker = new FallbackWorker({
      nc,
      devices: registry,
      providers: {
        apns: provider,
        fcm: new LogProvider('fcm', log),
        webhook: new LogProvider('webhook', log),
      },
      log,
      concurrency: CONCURRENCY,
    });
    t0 = performance.now();
    await worker.start();
    while (apns.delivered().length - before < N) await new Promise((r) => setTimeout(r, 20));
    const ours = (N / (performance.now() - t0)) * 1000;
    await worker.stop();
    await provider.close();
    return {
      name: 'os-push',
      title: `OS push: one worker draining ${N} fallbacks to a local APNs (${CONCURRENCY} in flight)`,
      rows: [
        {
          what: 'notifications/s',
          baseline: raw,
          switchboard: ours,
          ratio: ours / raw,
          baselineIs: 'ApnsProvider alone',
        },
      ],
      ratios: { 'notifications/s': ours / raw },
    };
  } finally {
    await nc.close();
    await apns.stop();
    await nats.stop();
  }
}
