/**
 * Fault test on a 3-node JetStream cluster (R3 buckets and streams): `kill -9` of the NATS
 * node the push API is connected to, mid-traffic, then its restart. Every message is
 * counted: each one ends `delivered` (and the client has it) or `fallback` (and the stream
 * has it); a 503 during the failover is retried with the same idempotency key.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { fallbackSubject, Streams } from '@switchboard/protocol';
import type { NatsServer } from '@switchboard/testkit';
import { collect } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './support/stack.js';

const MESSAGES = 150;
const KILL_AT = 40;
const RESTART_AT = 100;

describe('push-api on a NATS cluster under faults', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 2, cluster: true, env: { FALLBACK_RETRY_MS: '15000' } });
  });
  afterAll(() => stack?.close());

  it('cluster - kill -9 and restart of a NATS node mid-traffic: every message delivered or in fallback, none twice', async () => {
    const inbox = collect(await stack.client('fault-user', 0), { ack: true });
    const apiServer = stack.api.nc.getServer();
    const victim = stack.cluster!.servers.find((s) =>
      apiServer.endsWith(`:${s.port}`),
    ) as NatsServer;
    expect(victim).toBeDefined();

    const t0 = Date.now();
    const marks: string[] = [];
    const outcome = new Map<number, string>();
    const offlineOutcome = new Map<number, string>();
    const reasons: string[] = [];
    let retries = 0;
    for (let seq = 0; seq < MESSAGES; seq++) {
      if (seq === KILL_AT) {
        await victim.kill();
        marks.push(`killed@${Date.now() - t0}ms`);
      }
      if (seq === RESTART_AT) {
        await victim.restart();
        marks.push(`restarted@${Date.now() - t0}ms`);
      }
      // One online recipient (ack asked) and one offline (always fallback) per message.
      const body = {
        to: ['fault-user', 'fault-offline'],
        event: 'count',
        data: { seq },
        ack: true,
        ackTimeoutMs: 1_000,
        fallback: { title: `#${seq}` },
      };
      for (let attempt = 0; ; attempt++) {
        const res = await stack
          .post('/v1/messages', body, { 'idempotency-key': `fault-${seq}` })
          .catch(() => null);
        if (res?.status === 200) {
          const { results } = await res.json();
          outcome.set(seq, results[0].status);
          if (results[0].status !== 'delivered')
            reasons.push(`${seq}:${results[0].reason}@${Date.now() - t0}ms`);
          offlineOutcome.set(seq, results[1].status);
          break;
        }
        retries++;
        expect(attempt, `message ${seq} never accepted (last status ${res?.status})`).toBeLessThan(
          200,
        );
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    const received = inbox.map((m) => (m.data as { seq: number }).seq);
    const jsm = await jetstreamManager(await stack.connect('audit'));
    const counts = { delivered: 0, fallback: 0, dropped: 0 };
    for (const status of outcome.values()) counts[status as keyof typeof counts]++;
    console.log(
      `cluster fault: ${JSON.stringify(counts)}, ${retries} retried POSTs, ${received.length} received; ${marks.join(' ')}; not delivered: ${reasons.join(' ')}`,
    );

    expect(outcome.size).toBe(MESSAGES);
    expect(counts.dropped).toBe(0);
    expect([...offlineOutcome.values()].every((s) => s === 'fallback')).toBe(true);
    for (const [seq, status] of outcome) {
      if (status === 'delivered') expect(received, `delivered #${seq} not received`).toContain(seq);
    }
    // No message reached the client twice (retries were idempotent).
    expect(new Set(received).size).toBe(received.length);
    // Every fallback is durably stored once, on its recipient's subject: the offline user's
    // every message and exactly the online user's fallback outcomes, none missing or twice.
    // (`state.subjects` is only filled when the info request names a `subjects_filter`.)
    const info = await jsm.streams.info(Streams.fallback, { subjects_filter: '>' });
    expect(info.config.num_replicas).toBe(3);
    expect(info.state.messages).toBe(counts.fallback + MESSAGES);
    expect(info.state.subjects).toEqual({
      [fallbackSubject('fault-offline')]: MESSAGES,
      ...(counts.fallback > 0 ? { [fallbackSubject('fault-user')]: counts.fallback } : {}),
    });
    // A work queue: read each message by sequence (a consumer would take them off), all
    // requests in flight at once.
    const stored = new Map<string, number[]>();
    const seqs = Array.from(
      { length: info.state.last_seq - info.state.first_seq + 1 },
      (_, i) => info.state.first_seq + i,
    );
    const messages = await Promise.all(
      seqs.map((seq) => jsm.streams.getMessage(Streams.fallback, { seq })),
    );
    for (const m of messages) {
      if (!m) continue;
      const { userId, data } = m.json<{ userId: string; data: { seq: number } }>();
      expect(m.subject).toBe(fallbackSubject(userId));
      stored.set(userId, [...(stored.get(userId) ?? []), data.seq]);
    }
    const storedSeqs = (userId: string) => (stored.get(userId) ?? []).sort((a, b) => a - b);
    const every = [...Array(MESSAGES).keys()];
    expect(storedSeqs('fault-offline')).toEqual(every);
    expect(storedSeqs('fault-user')).toEqual(every.filter((s) => outcome.get(s) === 'fallback'));
  }, 120_000);
});
