/**
 * Start-up without NATS: every app, as a real process, answers on its port at once
 * (`/healthz` 200, `/readyz` 503 naming NATS), logs each attempt, and becomes ready by
 * itself once a nats-server appears on the configured address — no restart.
 */
import {
  type AppName,
  AppProcess,
  freePort,
  http,
  NatsServer,
  waitFor,
} from '@switchboard/testkit';
import { afterAll, describe, expect, it } from 'vitest';

const apps: Array<[AppName, Record<string, string>]> = [
  ['edge', { AUTH_JWT_SECRET: 'startup-test-secret-startup-test-secret', NODE_ID: 'startup-edge' }],
  ['push-api', { API_KEYS: 'startup-test-api-key-0001' }],
  ['presence', { API_KEYS: 'startup-test-api-key-0001' }],
  ['os-push', { OS_PUSH_UNCONFIGURED: 'log' }],
];

describe('start-up while NATS is unreachable', () => {
  const procs: AppProcess[] = [];
  let nats: NatsServer | undefined;
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await nats?.stop();
  });

  it('startup - each app serves 503 naming NATS, logs its attempts, then gets ready on its own', async () => {
    const natsPort = await freePort();
    const ports: number[] = [];
    for (const [name, env] of apps) {
      const port = await freePort();
      ports.push(port);
      procs.push(
        await AppProcess.spawn(name, {
          env: {
            ...env,
            PORT: String(port),
            HOST: '127.0.0.1',
            NATS_URL: `nats://127.0.0.1:${natsPort}`,
            LOG_LEVEL: 'info',
          },
        }),
      );
    }
    for (const [i, port] of ports.entries()) {
      const ready = await waitFor(
        async () => {
          const res = await http(`http://127.0.0.1:${port}/readyz`).catch(() => null);
          return res && res.status === 503 ? res.json() : null;
        },
        { timeoutMs: 15_000, message: () => `${apps[i]![0]}: ${procs[i]!.output}` },
      );
      expect(ready).toMatchObject({ status: 'starting', checks: { nats: false } });
      expect(String(ready.waitingFor)).toMatch(/NATS/);
      expect((await http(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      await waitFor(() => /waiting for NATS/.test(procs[i]!.output), {
        message: () => procs[i]!.output,
      });
    }
    nats = await NatsServer.start({ port: natsPort });
    for (const [i, port] of ports.entries()) {
      await waitFor(
        async () =>
          (await http(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200,
        { timeoutMs: 20_000, message: () => `${apps[i]![0]} not ready: ${procs[i]!.output}` },
      );
      expect(procs[i]!.running).toBe(true);
    }
  });

  it('startup - with JetStream not available yet, each app waits (503 naming JetStream) and starts once it is', async () => {
    const natsPort = await freePort();
    const noJs = await NatsServer.start({ port: natsPort, jetstream: false });
    const ports: number[] = [];
    const mine: AppProcess[] = [];
    for (const [name, env] of apps) {
      const port = await freePort();
      ports.push(port);
      const p = await AppProcess.spawn(name, {
        env: {
          ...env,
          NODE_ID: 'startup-edge-2',
          PORT: String(port),
          HOST: '127.0.0.1',
          NATS_URL: `nats://127.0.0.1:${natsPort}`,
          LOG_LEVEL: 'info',
        },
      });
      mine.push(p);
      procs.push(p);
    }
    for (const [i, port] of ports.entries()) {
      const body = await waitFor(
        async () => {
          const res = await http(`http://127.0.0.1:${port}/readyz`).catch(() => null);
          if (res?.status !== 503) return null;
          const b = await res.json();
          return /JetStream/.test(String(b.waitingFor)) ? b : null;
        },
        { timeoutMs: 15_000, message: () => `${apps[i]![0]}: ${mine[i]!.output}` },
      );
      expect(body.lastError).toBeTruthy();
      await waitFor(() => /waiting for NATS JetStream/.test(mine[i]!.output), {
        message: () => mine[i]!.output,
      });
    }
    await noJs.stop();
    const withJs = await NatsServer.start({ port: natsPort });
    try {
      for (const [i, port] of ports.entries()) {
        await waitFor(
          async () =>
            (await http(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200,
          { timeoutMs: 20_000, message: () => `${apps[i]![0]} not ready: ${mine[i]!.output}` },
        );
        expect(mine[i]!.running).toBe(true);
      }
    } finally {
      await Promise.all(mine.map((p) => p.kill()));
      await withJs.stop();
    }
  });
});
