// Baseline for request rates: a Fastify hello-world POST that parses the JSON body and
// answers a small JSON object. Nothing else.
import Fastify from 'fastify';

const app = Fastify();
app.post('/hello', async (req) => ({
  ok: true,
  n: Array.isArray(req.body?.to) ? req.body.to.length : 1,
}));
await app.listen({ port: 0, host: '127.0.0.1' });
process.send?.({ port: app.server.address().port });
