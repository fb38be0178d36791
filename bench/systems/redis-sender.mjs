// The sending service of the Socket.IO + Redis designs: the same HTTP front as the push API
// (Fastify 5, the same bearer API-key check, the same zod request and response schemas from
// @switchboard/protocol, no request logging), then one publish to Redis:
// - BENCH_SENDER=emitter: @socket.io/redis-emitter, `emitter.to(userIds).emit(...)` (the
//   classic adapter's channels);
// - BENCH_SENDER=sharded: a Socket.IO server without clients holding the sharded adapter,
//   `io.to(userIds).emit(...)` (the emitter has no sharded mode).
// Redis cannot say whether anyone received the message, so every recipient is answered
// `delivered` in the sense of "published"; the benchmark counts receipts at the clients.
import { randomUUID } from 'node:crypto';
import { serializerCompiler, validatorCompiler } from '@fastify/type-provider-zod';
import { createShardedAdapter } from '@socket.io/redis-adapter';
import { Emitter } from '@socket.io/redis-emitter';
import { apiKeyChecker } from '@switchboard/http';
import { SendMessageRequest, SendMessageResponse } from '@switchboard/protocol';
import Fastify from 'fastify';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const mode = process.env.BENCH_SENDER ?? 'emitter';
const pub = createClient({ url: process.env.REDIS_URL });
await pub.connect();
let target;
if (mode === 'emitter') {
  target = new Emitter(pub);
} else {
  const sub = pub.duplicate();
  await sub.connect();
  target = new Server();
  target.adapter(createShardedAdapter(pub, sub));
}

const check = apiKeyChecker((process.env.API_KEYS ?? '').split(','));
const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, disableRequestLogging: true });
app.removeContentTypeParser(['text/plain']);
app.setValidatorCompiler(validatorCompiler);
app.setSerializerCompiler(serializerCompiler);
app.addHook('onRequest', async (req, reply) => {
  const header = req.headers.authorization;
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!m || check(m[1]) < 0)
    return reply
      .code(401)
      .send({ error: { code: 'unauthorized', message: 'missing or invalid API key' } });
});
app.post(
  '/v1/messages',
  { schema: { body: SendMessageRequest, response: { 200: SendMessageResponse } } },
  async (req) => {
    const body = req.body;
    const id = body.id ?? randomUUID();
    const to = Array.isArray(body.to) ? [...new Set(body.to)] : [body.to];
    target.to(to).emit(body.event, body.data ?? null, { id, sentAt: Date.now() });
    return { id, results: to.map((userId) => ({ userId, status: 'delivered' })) };
  },
);

process.once('SIGTERM', () => {
  app.close().finally(() => process.exit(0));
});
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.send?.({ port: app.server.address().port });
