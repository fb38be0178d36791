/** `GET /v1/presence/:userId` and `POST /v1/presence/query`. */

import type { HttpApp } from '@switchboard/http';
import { ApiError } from '@switchboard/http';
import type { PresenceReader } from '@switchboard/presence-registry';
import {
  ErrorBody,
  PresenceQueryRequest,
  PresenceQueryResponse,
  PresenceView,
  UserId,
} from '@switchboard/protocol';
import { z } from 'zod';

const errors = { 400: ErrorBody, 401: ErrorBody, 413: ErrorBody, 503: ErrorBody };

export async function presenceRoutes(
  app: HttpApp,
  opts: { presence: PresenceReader },
): Promise<void> {
  app.get(
    '/v1/presence/:userId',
    {
      schema: {
        summary: "A user's presence: online, connections, nodes, last seen",
        tags: ['presence'],
        params: z.object({ userId: UserId }),
        response: { 200: PresenceView, ...errors },
      },
    },
    async (req) => {
      try {
        return await opts.presence.lookup(req.params.userId);
      } catch (err) {
        throw ApiError.unavailable('presence is unavailable, retry later', err);
      }
    },
  );

  app.post(
    '/v1/presence/query',
    {
      schema: {
        summary: 'Presence of up to 1,000 users at once',
        tags: ['presence'],
        body: PresenceQueryRequest,
        response: { 200: PresenceQueryResponse, ...errors },
      },
    },
    async (req) => {
      let views: PresenceView[];
      try {
        views = await opts.presence.lookupMany([...new Set(req.body.userIds)]);
      } catch (err) {
        throw ApiError.unavailable('presence is unavailable, retry later', err);
      }
      const users: PresenceQueryResponse['users'] = {};
      for (const v of views) users[v.userId] = { online: v.online, connections: v.connections };
      return { users };
    },
  );
}
