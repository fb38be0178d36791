import { createServer } from 'node:http';
import { createLogger } from '@switchboard/logger/logger';
import { ConnectionHealth, connectNats } from '@switchboard/nats/connection';
import { ensureFallbackStream } from '@switchboard/nats/provision';
import { runService } from '@switchboard/runtime/service';
import { loadConfig } from './config.js';
import { FallbackWorker } from './fallback-worker.js';

const log = createLogger({ name: 'os-push' });

await runService({
  name: 'os-push',
  log,
  async start() {
    const config = loadConfig(process.env);
    log.level = config.logLevel;
    const nc = await connectNats({ ...config.nats, name: 'os-push', log });
    const health = new ConnectionHealth(nc);
    await ensureFallbackStream(nc, { replicas: config.nats.replicas });
    // The log provider: what a real provider would be asked to send.
    const worker = new FallbackWorker({
      nc,
      log,
      send: async (m) => {
        log.info(
          { id: m.id, userId: m.userId, reason: m.reason, notification: m.notification },
          'would send OS push',
        );
      },
    });
    await worker.start();
    const http = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const ready = health.connected;
      if (path === '/healthz')
        return res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      if (path === '/readyz')
        return res
          .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify({ status: ready ? 'ready' : 'not ready', checks: { nats: ready } }));
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"error":{"code":"not_found","message":"no such route"}}');
    });
    await new Promise<void>((resolve) => http.listen(config.port, config.host, resolve));
    return {
      async stop() {
        http.close();
        await worker.stop();
        await nc.drain();
      },
    };
  },
});
