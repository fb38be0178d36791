/**
 * OS push when NATS refuses its writes: the worker's NATS user may not publish status
 * records (and, for the backstop, dead letters). Permissions are the server's own, so the
 * failures are the ones a misconfigured deployment produces.
 */
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DeadLetter, Streams } from '@switchboard/protocol';
import { http, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSUMER_NAME } from '../src/fallback-worker.js';
import type { RunningOsPush } from '../src/start-os-push.js';
import { PushRig } from './support.js';

const PASS = 'test-password-0123456789';
const APNS_TOKEN = (n: number) => n.toString(16).padStart(64, 'd');
const FCM_TOKEN = (n: number) => `fcm-denied-${n}:${'y'.repeat(40)}`;

const natsConfig = `
accounts {
  SB {
    jetstream: enabled
    users: [
      { user: api, password: ${PASS} }
      { user: admin, password: ${PASS} }
      { user: no_status, password: ${PASS}, permissions: { publish: { deny: ["status.v1.>"] } } }
      { user: no_status_no_dlq, password: ${PASS}, permissions: { publish: { deny: ["status.v1.>", "push.v1.dlq.>"] } } }
    ]
  }
}
`;

describe('os-push failure paths', () => {
  let rig: PushRig;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let worker: RunningOsPush;

  /** The fallback stream holds no message and the consumer has none in hand. */
  const drained = async () => {
    const s = await jsm.streams.info(Streams.fallback);
    const c = await jsm.consumers.info(Streams.fallback, CONSUMER_NAME);
    return s.state.messages === 0 && c.num_pending === 0 && c.num_ack_pending === 0;
  };
  const metrics = async () => (await http(`${worker.url}/metrics`)).text();
  const letterFor = async (user: string) => {
    const m = await jsm.streams
      .getMessage(Streams.fallbackDlq, { last_by_subj: `push.v1.dlq.${user}` })
      .catch(() => null);
    return m ? DeadLetter.parse(m.json()) : null;
  };

  beforeAll(async () => {
    rig = await PushRig.start({
      nats: { config: natsConfig },
      apiEnv: { NATS_USER: 'api', NATS_PASSWORD: PASS },
    });
    nc = await connect({ servers: rig.nats.url, user: 'admin', pass: PASS });
    jsm = await jetstreamManager(nc);
    worker = await rig.addWorker({ NATS_USER: 'no_status', NATS_PASSWORD: PASS });
  });
  afterAll(async () => {
    await nc?.close();
    await rig?.close();
  });

  it('status write refused - an accepted device gets one push, the message is acked, the failure is counted', async () => {
    await rig.device('denied-1', 'iphone', { platform: 'apns', token: APNS_TOKEN(1) });
    await rig.send('denied-1');
    // Once the message has left the work queue nothing can redeliver it: the wait is long enough.
    await waitFor(drained, { timeoutMs: 10_000, message: 'the fallback message was never acked' });
    expect(rig.apns.requests.filter((r) => r.token === APNS_TOKEN(1))).toHaveLength(1);
    expect(await metrics()).toMatch(
      /switchboard_os_push_failures_total\{stage="status-write",app="os-push"\} [1-9]/,
    );
  });

  it('status write refused - a device that succeeded is not sent again while another retries until dead-lettered', async () => {
    await rig.device('denied-2', 'iphone', { platform: 'apns', token: APNS_TOKEN(2) });
    await rig.device('denied-2', 'pixel', { platform: 'fcm', token: FCM_TOKEN(2) });
    rig.fcm.script(FCM_TOKEN(2), ...Array.from({ length: 10 }, () => ({ status: 503 })));
    const id = await rig.send('denied-2');
    const letter = await waitFor(() => letterFor('denied-2'), { timeoutMs: 10_000 });
    await waitFor(drained, { timeoutMs: 10_000 });
    expect(letter.message.id).toBe(id);
    expect(letter.attempts).toBe(3);
    expect(letter.devices.map((d) => d.deviceId)).toEqual(['pixel']);
    expect(rig.apns.requests.filter((r) => r.token === APNS_TOKEN(2))).toHaveLength(1);
    expect(rig.fcm.sends.filter((s) => s.token === FCM_TOKEN(2))).toHaveLength(3);
  });

  it('dead letter refused - max_deliver stops the deliveries; the max-deliveries advisory is logged and counted, the message kept', async () => {
    await worker.stop();
    rig.workers = [];
    worker = await rig.addWorker({ NATS_USER: 'no_status_no_dlq', NATS_PASSWORD: PASS });
    await rig.device('denied-3', 'pixel', { platform: 'fcm', token: FCM_TOKEN(3) });
    rig.fcm.script(FCM_TOKEN(3), ...Array.from({ length: 20 }, () => ({ status: 503 })));
    await rig.send('denied-3');
    // The advisory comes when the server gave up redelivering: nothing can send after it.
    await waitFor(
      async () =>
        /switchboard_os_push_max_deliveries_total\{outcome="failed",app="os-push"\} 1/.test(
          await metrics(),
        ),
      { timeoutMs: 15_000, message: 'no max-deliveries advisory was handled' },
    );
    expect(rig.fcm.sends.filter((s) => s.token === FCM_TOKEN(3))).toHaveLength(3);
    // Not lost: still in the stream for an operator (the log names its sequence).
    expect((await jsm.streams.info(Streams.fallback)).state.messages).toBe(1);
  }, 30_000);
});
