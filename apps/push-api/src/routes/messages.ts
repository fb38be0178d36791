/** `POST /v1/messages` and `POST /v1/broadcast`. */
import { randomUUID } from 'node:crypto';
import type { HttpApp } from '@switchboard/http';
import { ApiError } from '@switchboard/http';
import {
  ErrorBody,
  ErrorCodes,
  EventName,
  MessageId,
  newMessageId,
  SendMessageRequest,
  SendMessageResponse,
  Subjects,
} from '@switchboard/protocol';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { type Claim, IdempotencyStore } from '../idempotency-store.js';
import type { BroadcastLink, IdempotencyClaims, MessageRouter } from '../ports.js';

const errors = {
  400: ErrorBody,
  401: ErrorBody,
  409: ErrorBody,
  413: ErrorBody,
  415: ErrorBody,
  429: ErrorBody,
  503: ErrorBody,
};

const SendHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1)
    .max(255)
    .optional()
    .describe(
      'Makes a retry return the first response without sending again (24 h). Defaults to the body `id`.',
    ),
});

const BroadcastRequest = z
  .object({ event: EventName, data: z.unknown().optional(), id: MessageId.optional() })
  .strict()
  .meta({
    id: 'BroadcastRequest',
    example: { event: 'system.notice', data: { text: 'maintenance at 02:00' } },
  });

const BroadcastResponse = z.object({ id: z.string() }).meta({ id: 'BroadcastResponse' });

export type MessageRoutesOptions = {
  router: MessageRouter;
  nc: BroadcastLink;
  idempotency: IdempotencyClaims<SendMessageResponse>;
  /** False while NATS is unreachable: requests get 503 at once instead of waiting. */
  ready: () => boolean;
  /** Added to a request's own bound when a duplicate waits for the first one. */
  duplicateWaitMs: number;
};

type Claimed<R> = Extract<Claim<R>, { kind: 'claimed' | 'replay' }>;

/**
 * Claims an idempotency key (none: undefined) for a request: `claimed` (go on, then commit
 * or release), or `replay` of the first answer; a reuse for another body or a first
 * request still running past `bound` is a 409 (an unusable store is a 503: route-errors.ts).
 */
async function claimOnce<R>(
  store: IdempotencyClaims<R>,
  key: string | undefined,
  body: unknown,
  bound: number,
): Promise<Claimed<R> | undefined> {
  if (key === undefined) return undefined;
  const claim = await store.claim(key, IdempotencyStore.fingerprint(body), bound);
  if (claim.kind === 'mismatch')
    throw new ApiError(
      409,
      ErrorCodes.conflict,
      'this idempotency key was used for a different request',
    );
  if (claim.kind === 'in-progress')
    throw new ApiError(
      409,
      ErrorCodes.conflict,
      'a request with this idempotency key is still running',
      {
        retryAfterSeconds: 1,
      },
    );
  return claim;
}

const notReady = () => ApiError.unavailable('NATS is unreachable, retry later');

/**
 * A rejection handler that frees a claimed key, then fails on: what the key guarded failed
 * before anything was sent, so a retry with the key may send.
 */
const releasing =
  (claim: { release(): Promise<void> }) =>
  async (err: unknown): Promise<never> => {
    await claim.release();
    throw err;
  };

/** Answers a duplicate with the first request's answer. */
function replay<R>(reply: FastifyReply, response: R): R {
  reply.header('idempotent-replayed', 'true');
  return response;
}

export async function messageRoutes(app: HttpApp, opts: MessageRoutesOptions): Promise<void> {
  app.post(
    '/v1/messages',
    {
      schema: {
        summary: 'Send a message to one user or many',
        description:
          'Delivers to every connection of each recipient over Socket.IO. Recipients that are offline, or whose devices do not ack when `ack` is set, are handed to OS push when `fallback` is given, and dropped otherwise. With an `Idempotency-Key` header (or a body `id`), a retry returns the first response and sends nothing.',
        tags: ['messages'],
        headers: SendHeaders,
        body: SendMessageRequest,
        response: { 200: SendMessageResponse, ...errors },
      },
      // The response is built here from typed results: plain JSON, no second validation.
      serializerCompiler: () => (data) => JSON.stringify(data),
      config: { dependency: 'message routing' },
    },
    async (req, reply) => {
      if (!opts.ready()) throw notReady();
      const body = req.body;
      const given = req.headers['idempotency-key'] ?? body.id;
      const claim = await claimOnce(
        opts.idempotency,
        given === undefined ? undefined : `${req.apiKeyId ?? ''}:${given}`,
        body,
        (body.ack ? body.ackTimeoutMs : 0) + opts.duplicateWaitMs,
      );
      if (claim?.kind === 'replay') return replay(reply, claim.response);
      const id = body.id ?? newMessageId();
      const sent = opts.router.send({
        ...body,
        id,
        ...(req.apiKeyId === undefined ? {} : { owner: req.apiKeyId }),
        to: Array.isArray(body.to) ? body.to : [body.to],
      });
      if (claim === undefined) return { id, results: await sent };
      // The router fails only before anything was sent: the key is freed, a retry may send.
      const response = { id, results: await sent.catch(releasing(claim)) };
      await claim.commit(response).catch((err: unknown) => {
        req.log.error(
          { err, messageId: id },
          'could not store the idempotent response; a retry may send again',
        );
      });
      return response;
    },
  );

  app.post(
    '/v1/broadcast',
    {
      schema: {
        summary: 'Send a message to every connected user',
        description:
          'One publish on `push.v1.broadcast`; every edge emits it to all its sockets. No acks, no fallback. With an `Idempotency-Key` header (or a body `id`), a retry returns the first answer and broadcasts nothing.',
        tags: ['messages'],
        headers: SendHeaders,
        body: BroadcastRequest,
        response: { 200: BroadcastResponse, ...errors },
      },
      config: { dependency: 'broadcast' },
    },
    async (req, reply) => {
      if (!opts.ready()) throw notReady();
      // Idempotent like a send (Idempotency-Key, else the body id; per API key): a retry
      // after a lost answer does not broadcast twice.
      const given = req.headers['idempotency-key'] ?? req.body.id;
      const claim = await claimOnce(
        opts.idempotency as unknown as IdempotencyClaims<{ id: string }>,
        given === undefined ? undefined : `broadcast:${req.apiKeyId ?? ''}:${given}`,
        req.body,
        opts.duplicateWaitMs,
      );
      if (claim?.kind === 'replay') return replay(reply, claim.response);
      const id = req.body.id ?? randomUUID();
      const payload = JSON.stringify({
        id,
        event: req.body.event,
        data: req.body.data ?? null,
        sentAt: Date.now(),
      });
      const maxPayload = opts.nc.info?.max_payload ?? 1024 * 1024;
      if (Buffer.byteLength(payload) > maxPayload) {
        if (claim) await claim.release();
        throw new ApiError(
          413,
          ErrorCodes.payloadTooLarge,
          `the broadcast is larger than NATS carries (${maxPayload} bytes)`,
        );
      }
      // A failure here is a 503 that keeps the claim pending: published into the client's
      // buffer, the broadcast may still go out once NATS is back, so a retry with the same
      // key waits rather than broadcasts again.
      opts.nc.publish(Subjects.broadcast, payload);
      await opts.nc.flush();
      if (claim) {
        await claim.commit({ id }).catch((err: unknown) => {
          req.log.error({ err, messageId: id }, 'could not store the idempotent broadcast answer');
        });
      }
      return { id };
    },
  );
}
