/**
 * Delivery — emits one NATS delivery to this node's local sockets and says per user how
 * many connections it reached (and, when an ack was asked, how many confirmed).
 */
import type { DeliveryEnvelope, UserDelivery } from '@switchboard/protocol/delivery';
import type { MessageMeta } from '@switchboard/protocol/socket';
import type { LocalSockets } from './local-sockets.js';

/** The part of a Socket.IO socket that delivery uses. */
export type Emitter = {
  id: string;
  emit(event: string, ...args: unknown[]): boolean;
  timeout(ms: number): { emit(event: string, ...args: unknown[]): boolean };
};

/** Emits without waiting: counts the connections reached. */
export function deliverNow(
  sockets: LocalSockets<Emitter>,
  env: DeliveryEnvelope,
): Record<string, UserDelivery> {
  const meta: MessageMeta = { id: env.id, sentAt: env.sentAt };
  const results: Record<string, UserDelivery> = {};
  for (const userId of env.userIds) {
    let connections = 0;
    for (const s of sockets.get(userId)) {
      s.emit(env.event, env.data, meta);
      connections++;
    }
    results[userId] = { connections };
  }
  return results;
}

/**
 * Emits with an acknowledgement per socket. A user resolves at its first ack, or when
 * every socket has failed or timed out; the whole call takes at most `ackTimeoutMs`.
 */
export async function deliverWithAck(
  sockets: LocalSockets<Emitter>,
  env: DeliveryEnvelope & { ackTimeoutMs: number },
): Promise<Record<string, UserDelivery>> {
  const meta: MessageMeta = { id: env.id, sentAt: env.sentAt };
  const results: Record<string, UserDelivery> = {};
  await Promise.all(
    env.userIds.map(
      (userId) =>
        new Promise<void>((resolve) => {
          const targets = [...sockets.get(userId)];
          const result: UserDelivery = { connections: targets.length, acked: 0 };
          results[userId] = result;
          if (targets.length === 0) return resolve();
          let pending = targets.length;
          for (const s of targets) {
            s.timeout(env.ackTimeoutMs).emit(env.event, env.data, meta, (err: unknown) => {
              if (!err) result.acked = (result.acked ?? 0) + 1;
              pending--;
              if (!err || pending === 0) resolve();
            });
          }
        }),
    ),
  );
  return results;
}
