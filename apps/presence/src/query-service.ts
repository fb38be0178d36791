/**
 * The NATS service `presence.v1.query` (micro-services protocol: it shows up in
 * `nats micro ls`). Same JSON as HTTP: `{ userIds: [...] }` → `{ users }`, or
 * `{ userId }` → one presence view. Replicas share the load (queue group).
 */

import { type Service, Svcm } from '@nats-io/services';
import type { NatsConnection } from '@nats-io/transport-node';
import type { PresenceReader } from '@switchboard/presence-registry';
import {
  ErrorCodes,
  PresenceQueryRequest,
  type PresenceQueryResponse,
  Subjects,
  UserId,
} from '@switchboard/protocol';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { z } from 'zod';

const SingleQuery = z.object({ userId: UserId }).strict();

export async function startQueryService(
  nc: NatsConnection,
  presence: PresenceReader,
  log: Logger,
  queries?: Counter<'outcome'>,
): Promise<Service> {
  // The services package is typed against its own copy of nats-core; the connection is the same.
  const service = await new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]).add({
    name: 'switchboard-presence',
    version: '1.0.0',
    description: 'Presence lookups: { userIds } or { userId }',
  });
  service.addEndpoint('query', {
    subject: Subjects.presenceQuery,
    handler: (err, msg) => {
      if (err) {
        log.error({ err }, 'presence query endpoint failed');
        return;
      }
      void (async () => {
        let body: unknown;
        try {
          body = msg.json();
        } catch {
          queries?.inc({ outcome: 'invalid' });
          return respondError(msg, ErrorCodes.badRequest, 'body is not JSON');
        }
        const single = SingleQuery.safeParse(body);
        const many = single.success ? null : PresenceQueryRequest.safeParse(body);
        if (!single.success && !many?.success) {
          queries?.inc({ outcome: 'invalid' });
          return respondError(
            msg,
            ErrorCodes.validationFailed,
            'expected { userIds: string[1..1000] } or { userId }',
            many?.error.issues,
          );
        }
        try {
          if (single.success) {
            msg.respond(JSON.stringify(await presence.lookup(single.data.userId)));
            queries?.inc({ outcome: 'ok' });
            return;
          }
          const views = await presence.lookupMany([...new Set(many!.data!.userIds)]);
          const users: PresenceQueryResponse['users'] = {};
          for (const v of views) users[v.userId] = { online: v.online, connections: v.connections };
          msg.respond(JSON.stringify({ users }));
          queries?.inc({ outcome: 'ok' });
        } catch (e) {
          queries?.inc({ outcome: 'unavailable' });
          log.warn({ err: e }, 'presence query failed');
          respondError(msg, ErrorCodes.unavailable, 'presence is unavailable, retry later');
        }
      })();
    },
  });
  return service;
}

function respondError(
  msg: { respondError(code: number, description: string, data?: Uint8Array): boolean },
  code: string,
  message: string,
  details?: unknown,
): void {
  const status = code === ErrorCodes.unavailable ? 503 : 400;
  msg.respondError(
    status,
    message,
    new TextEncoder().encode(JSON.stringify({ error: { code, message, details } })),
  );
}
