/**
 * NodeBatcher — coalesces the plain (no ack) deliveries for one node that are ready in the
 * same event-loop turn into one NATS request, answered by one reply.
 *
 * Nothing waits for a batch to fill: the requests go out at the end of the turn in which
 * they were made (`setImmediate`), so a lone message costs no latency, and under load the
 * messages that arrived together (one read of several HTTP requests, a multicast) share a
 * NATS message and a reply each way. A batch stays under the server's max_payload.
 */
import { decodeBatchReply, decodeNodeReply, nodeSubject } from '@switchboard/protocol';
import type { NodeRequests } from './ports.js';

type Entry = {
  text: string;
  bytes: number;
  users: number;
  resolve(connections: number[]): void;
  reject(err: unknown): void;
};

export type NodeBatcherOptions = {
  requests: NodeRequests;
  timeoutMs: number;
  /** Largest batch in bytes (the server's max_payload less some slack). */
  maxBytes: () => number;
};

const encoder = new TextEncoder();

export class NodeBatcher {
  readonly #o: NodeBatcherOptions;
  readonly #pending = new Map<string, Entry[]>();
  #scheduled = false;
  /** Requests sent and deliveries carried, for the metrics. */
  requestsSent = 0;
  deliveriesSent = 0;

  constructor(options: NodeBatcherOptions) {
    this.#o = options;
  }

  /**
   * Queues one request (`deliveryText`) for `nodeId` with `users` recipients; resolves with
   * the connections reached per recipient, or rejects as the request would (no responders,
   * timeout).
   */
  send(nodeId: string, text: string, users: number): Promise<number[]> {
    return new Promise((resolve, reject) => {
      const entry: Entry = { text, bytes: Buffer.byteLength(text), users, resolve, reject };
      const list = this.#pending.get(nodeId);
      if (list) list.push(entry);
      else this.#pending.set(nodeId, [entry]);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const limit = this.#o.maxBytes();
    for (const [nodeId, entries] of this.#pending) {
      let batch: Entry[] = [];
      let bytes = 0;
      for (const e of entries) {
        if (batch.length > 0 && bytes + e.bytes + 1 > limit) {
          this.#send(nodeId, batch);
          batch = [];
          bytes = 0;
        }
        batch.push(e);
        bytes += e.bytes + 1;
      }
      if (batch.length > 0) this.#send(nodeId, batch);
    }
    this.#pending.clear();
  }

  #send(nodeId: string, batch: Entry[]): void {
    this.requestsSent++;
    this.deliveriesSent += batch.length;
    const subject = nodeSubject(nodeId);
    if (batch.length === 1) {
      const e = batch[0]!;
      this.#o.requests.request(subject, encoder.encode(e.text), this.#o.timeoutMs).then((msg) => {
        try {
          e.resolve(decodeNodeReply(msg.data, e.users).connections);
        } catch (err) {
          e.reject(err);
        }
      }, e.reject);
      return;
    }
    const payload = encoder.encode(batch.map((e) => e.text).join('\n'));
    this.#o.requests.request(subject, payload, this.#o.timeoutMs).then(
      (msg) => {
        let counts: number[][];
        try {
          counts = decodeBatchReply(
            msg.data,
            batch.map((e) => e.users),
          );
        } catch (err) {
          for (const e of batch) e.reject(err);
          return;
        }
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(counts[i]!);
      },
      (err: unknown) => {
        for (const e of batch) e.reject(err);
      },
    );
  }
}
