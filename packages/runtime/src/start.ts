/**
 * The shell every app's `start…(config, log, context)` shares: one NATS connection named
 * after the app (waiting for NATS shows on the start-up probe), the app built on it, and a
 * stop that stops the app first and drains the connection last. A build that throws closes
 * the connection, so a failed start leaves nothing open.
 */
import type { ServiceConfig } from '@switchboard/config';
import { connectNats, type NatsConnection } from '@switchboard/nats';
import type { Logger } from 'pino';
import type { StartContext } from './service.js';

/** What an app's build returns: its parts, and how to stop them (the connection excluded). */
export type Started = { stop(): Promise<void> };

/** A started app: its parts, its connection, and a stop that drains the connection too. */
export type Running<T extends Started> = T & { nc: NatsConnection };

export async function startOnNats<T extends Started>(
  app: { name: string; config: Pick<ServiceConfig, 'nats'>; log: Logger; context?: StartContext },
  build: (nc: NatsConnection) => Promise<T>,
): Promise<Running<T>> {
  const { context } = app;
  const nc = await connectNats({
    ...app.config.nats,
    name: app.name,
    log: app.log,
    ...(context ? { onWaiting: context.waiting } : {}),
  });
  let parts: T;
  try {
    parts = await build(nc);
  } catch (err) {
    await nc.close();
    throw err;
  }
  return {
    ...parts,
    nc,
    async stop() {
      await parts.stop();
      await nc.drain();
    },
  };
}

/**
 * Listens with a Fastify-like app once the start-up probe has let go of the port; resolves
 * the URL a local client reaches it at.
 */
export async function listenOn(
  app: {
    listen(o: { port: number; host: string }): Promise<unknown>;
    server: { address(): unknown };
  },
  config: Pick<ServiceConfig, 'port' | 'host'>,
  context?: StartContext,
): Promise<string> {
  await context?.beforeListen();
  await app.listen({ port: config.port, host: config.host });
  const { port } = app.server.address() as { port: number };
  return `http://127.0.0.1:${port}`;
}
