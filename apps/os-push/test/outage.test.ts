/**
 * OS push away for a while: fallbacks accepted meanwhile wait in the stream, and once a
 * worker is back every one of them goes out, each exactly once; none is lost, none
 * dead-lettered for having waited.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Streams } from '@switchboard/protocol';
import { waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PushRig } from './support.js';

const TOKEN = 'c'.repeat(64);

describe('os-push outage', () => {
  let rig: PushRig;
  beforeAll(async () => {
    rig = await PushRig.start();
  });
  afterAll(() => rig?.close());

  it('outage - fallbacks sent while no worker runs all go out once a worker is back', async () => {
    const first = await rig.addWorker();
    await rig.device('waiting', 'iphone', { platform: 'apns', token: TOKEN });
    await rig.send('waiting');
    await waitFor(() => rig.apns.delivered(TOKEN).length === 1);
    await first.stop();
    rig.workers = [];
    const nc = await connect({ servers: rig.nats.url });
    const jsm = await jetstreamManager(nc);
    // Deliveries so far (the first worker's): the next worker's are counted from here.
    const deliveredBefore = (await jsm.consumers.info(Streams.fallback, 'os-push')).delivered
      .consumer_seq;
    const ids: string[] = [];
    const total = 80;
    for (let i = 0; i < total; i++) ids.push(await rig.send('waiting'));
    // All accepted and stored while nobody sends them.
    expect((await jsm.streams.info(Streams.fallback)).state.messages).toBe(total);
    expect(rig.apns.delivered(TOKEN)).toHaveLength(1);
    // Past the worker's ack wait (OS_PUSH_ACK_WAIT_MS) with nobody there: nothing is
    // redelivered into a void or counted against max_deliver.
    await new Promise((r) => setTimeout(r, 1_500));
    const second = await rig.addWorker({ OS_PUSH_ACK_WAIT_MS: '1000' });
    await waitFor(() => rig.apns.delivered(TOKEN).length >= total + 1, { timeoutMs: 20_000 });
    // Drained: every message acked, nothing pending or unacked in the consumer, so no
    // redelivery after the ack wait is still to come.
    await rig.drained();
    // And every delivery the server made is through the worker: a copy redelivered while
    // the original was in hand could still be in its buffer after the original's ack.
    await waitFor(
      async () => {
        const deliveries =
          (await jsm.consumers.info(Streams.fallback, 'os-push')).delivered.consumer_seq -
          deliveredBefore;
        const { acked, retried, deadLettered } = second.worker.stats;
        return acked + retried + deadLettered === deliveries;
      },
      { message: () => `worker stats ${JSON.stringify(second.worker.stats)}` },
    );
    const apnsIds = rig.apns.delivered(TOKEN).map((r) => r.headers['apns-id']);
    expect(apnsIds).toHaveLength(total + 1);
    expect(new Set(apnsIds).size).toBe(total + 1);
    expect((await jsm.streams.info(Streams.fallbackDlq)).state.messages).toBe(0);
    await nc.close();
  });

  it('a backlog longer to send than the ack wait goes out once: a worker holds no more messages than it sends at a time', async () => {
    for (const w of rig.workers) await w.stop();
    rig.workers = [];
    const token = 'd'.repeat(64);
    await rig.device('backlog', 'iphone', { platform: 'apns', token });
    const total = 10;
    for (let i = 0; i < total; i++) await rig.send('backlog');
    // Two at a time, 400 ms each: each send is well within the 1 s ack wait, but a message
    // pulled ahead of the worker's free slots waits behind two rounds of sends (0.8 s) before
    // its own: past the ack wait, it is redelivered and sent twice.
    rig.apns.delayMs = 400;
    const worker = await rig.addWorker({ OS_PUSH_ACK_WAIT_MS: '1000', OS_PUSH_CONCURRENCY: '2' });
    await waitFor(() => rig.apns.delivered(token).length >= total, { timeoutMs: 20_000 });
    await rig.drained();
    // Sentinel: one more message once the backlog is drained (nothing pending, nothing
    // unacked): when it is sent and acked, any copy of the backlog has been sent as well.
    rig.apns.delayMs = 0;
    await rig.send('backlog');
    const apnsIds = () => rig.apns.delivered(token).map((r) => r.headers['apns-id']);
    await waitFor(() => new Set(apnsIds()).size === total + 1);
    await waitFor(() => worker.worker.stats.acked === total + 1, {
      message: () => `worker stats ${JSON.stringify(worker.worker.stats)}`,
    });
    expect(apnsIds()).toHaveLength(total + 1);
    expect(worker.worker.stats.retried).toBe(0);
  });
});
