/** `POST /v1/messages` and `POST /v1/broadcast`. */
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { ApiError } from '@switchboard/http/api-error';
import type { HttpApp } from '@switchboard/http/http-app';
import { ErrorBody } from '@switchboard/protocol/errors';
import {
  EventName,
  MessageId,
  SendMessageRequest,
  SendMessageResponse,
} from '@switchboard/protocol/message';
import { Subjects } from '@switchboard/protocol/subjects';
import { z } from 'zod';
import type { DeliveryRouter } from '../delivery-router.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 413: ErrorBody, 503: ErrorBody };

const BroadcastRequest = z
  .object({ event: EventName, data: z.unknown().optional(), id: MessageId.optional() })
  .strict()
  .meta({
    id: 'BroadcastRequest',
    example: { event: 'system.notice', data: { text: 'maintenance at 02:00' } },
  });

const BroadcastResponse = z.object({ id: z.string() }).meta({ id: 'BroadcastResponse' });

export type MessageRoutesOptions = { router: DeliveryRouter; nc: NatsConnection };

export async function messageRoutes(app: HttpApp, opts: MessageRoutesOptions): Promise<void> {
  app.post(
    '/v1/messages',
    {
      schema: {
        summary: 'Send a message to one user or many',
        description:
          'Delivers to every connection of each recipient over Socket.IO. Recipients that are offline, or whose devices do not ack when `ack` is set, are handed to OS push when `fallback` is given, and dropped otherwise.',
        tags: ['messages'],
        body: SendMessageRequest,
        response: { 200: SendMessageResponse, ...errors },
      },
    },
    async (req) => {
      const body = req.body;
      const id = body.id ?? randomUUID();
      try {
        const results = await opts.router.send({
          ...body,
          id,
          to: Array.isArray(body.to) ? body.to : [body.to],
        });
        return { id, results };
      } catch (err) {
        throw ApiError.unavailable('message routing is unavailable, retry later', err);
      }
    },
  );

  app.post(
    '/v1/broadcast',
    {
      schema: {
        summary: 'Send a message to every connected user',
        tags: ['messages'],
        body: BroadcastRequest,
        response: { 200: BroadcastResponse, ...errors },
      },
    },
    async (req) => {
      const id = req.body.id ?? randomUUID();
      const payload = JSON.stringify({
        id,
        event: req.body.event,
        data: req.body.data ?? null,
        sentAt: Date.now(),
      });
      try {
        opts.nc.publish(Subjects.broadcast, payload);
        await opts.nc.flush();
      } catch (err) {
        throw ApiError.unavailable('broadcast is unavailable, retry later', err);
      }
      return { id };
    },
  );
}
