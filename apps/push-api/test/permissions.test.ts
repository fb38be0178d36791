/**
 * The shipped `infra/nats/accounts.conf`, for real: nats-server runs with it, every app
 * runs as a process under its own user, and the whole product works — connect, send,
 * status, presence, device registration, OS push fallback, clean-up after a kill -9 —
 * with not one permission violation in the server's log. And least privilege holds: an
 * app cannot touch what is not its own (the edge reads no device tokens, no app deletes a
 * stream).
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { connectNats, natsPermissionViolations } from '@switchboard/nats';
import { Streams } from '@switchboard/protocol';
import {
  AppProcess,
  collect,
  connectClient,
  freePort,
  http,
  mintToken,
  NatsServer,
  repoRoot,
  waitFor,
} from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SECRET = 'permissions-test-secret-permissions-00';
const KEY = 'permissions-test-api-key-01';
const PASSWORDS = {
  EDGE_NATS_PASSWORD: 'edge-pw-0123456789',
  PUSH_API_NATS_PASSWORD: 'push-api-pw-0123456789',
  PRESENCE_NATS_PASSWORD: 'presence-pw-0123456789',
  OS_PUSH_NATS_PASSWORD: 'os-push-pw-0123456789',
};

describe('least-privilege NATS accounts (infra/nats/accounts.conf)', () => {
  let nats: NatsServer;
  const procs: AppProcess[] = [];
  let hooks: Server;
  const hooked: unknown[] = [];
  const port: Record<string, number> = {};
  let edge: AppProcess;

  beforeAll(async () => {
    let conf = readFileSync(join(repoRoot, 'infra/nats/accounts.conf'), 'utf8');
    for (const [name, value] of Object.entries(PASSWORDS))
      conf = conf.replaceAll(`$${name}`, `"${value}"`);
    nats = await NatsServer.start({ config: conf });
    hooks = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        if (req.url === '/push') hooked.push(JSON.parse(body));
        res.writeHead(req.url === '/gone' ? 410 : req.url === '/fail' ? 500 : 200).end('{}');
      });
    });
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
    for (const name of ['edge', 'presence', 'push-api', 'os-push']) port[name] = await freePort();
    const base = { HOST: '127.0.0.1', NATS_URL: nats.url, LEASE_TTL_MS: '3000' };
    const hooksHost = `127.0.0.1:${(hooks.address() as AddressInfo).port}`;
    const spawn = async (name: 'edge' | 'presence' | 'push-api' | 'os-push', env: object) => {
      const p = await AppProcess.spawn(name, {
        env: { ...base, PORT: String(port[name]), ...env } as Record<string, string>,
        readyUrl: `http://127.0.0.1:${port[name]}/readyz`,
        readyTimeoutMs: 20_000,
      });
      procs.push(p);
      return p;
    };
    await spawn('presence', {
      NATS_USER: 'presence',
      NATS_PASSWORD: PASSWORDS.PRESENCE_NATS_PASSWORD,
      API_KEYS: KEY,
    });
    await spawn('push-api', {
      NATS_USER: 'push_api',
      NATS_PASSWORD: PASSWORDS.PUSH_API_NATS_PASSWORD,
      API_KEYS: KEY,
      WEBHOOK_ALLOWED_HOSTS: hooksHost,
    });
    await spawn('os-push', {
      NATS_USER: 'os_push',
      NATS_PASSWORD: PASSWORDS.OS_PUSH_NATS_PASSWORD,
      WEBHOOK_ALLOWED_HOSTS: hooksHost,
      WEBHOOK_SECRET: 'permissions-webhook-secret',
      WEBHOOK_ALLOW_PRIVATE: 'true',
      OS_PUSH_MAX_ATTEMPTS: '2',
      OS_PUSH_RETRY_BASE_MS: '100',
      OS_PUSH_RETRY_MAX_MS: '200',
    });
    edge = await spawn('edge', {
      NATS_USER: 'edge',
      NATS_PASSWORD: PASSWORDS.EDGE_NATS_PASSWORD,
      AUTH_JWT_SECRET: SECRET,
      NODE_ID: 'perm-edge',
    });
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    hooks?.close();
    await nats?.stop();
  });

  const api = (path: string, init: { method?: string; body?: unknown } = {}) =>
    http(`http://127.0.0.1:${port['push-api']}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  const presence = (userId: string) =>
    http(`http://127.0.0.1:${port.presence}/v1/presence/${userId}`, {
      headers: { authorization: `Bearer ${KEY}` },
    });

  it('permissions - every feature works under its own user, with no violation logged', async () => {
    const client = await connectClient(`http://127.0.0.1:${port.edge}`, {
      token: await mintToken({ sub: 'alice', secret: SECRET }),
    });
    const inbox = collect(client);
    // Send, delivered; its status readable.
    const sent = await (
      await api('/v1/messages', { method: 'POST', body: { to: 'alice', event: 'note', data: 1 } })
    ).json();
    expect(sent.results[0]).toMatchObject({ status: 'delivered', connections: 1 });
    await waitFor(() => inbox.length === 1);
    await waitFor(async () => (await api(`/v1/messages/${sent.id}`)).status === 200, {
      timeoutMs: 5_000,
      message: () => `status not readable; violations: ${nats.permissionViolations.join('\n')}`,
    });
    // Presence answers.
    expect(await (await presence('alice')).json()).toMatchObject({ online: true });
    // A device, and a fallback through OS push to it.
    const hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/push`;
    const put = await api('/v1/users/bob/devices/phone', {
      method: 'PUT',
      body: { platform: 'webhook', token: hookUrl },
    });
    expect(put.status).toBeLessThan(300);
    const fb = await (
      await api('/v1/messages', {
        method: 'POST',
        body: { to: 'bob', event: 'note', data: 2, fallback: { title: 't', body: 'b' } },
      })
    ).json();
    expect(fb.results[0]).toMatchObject({ status: 'fallback', reason: 'offline' });
    await waitFor(() => hooked.length === 1, { timeoutMs: 10_000 });
    await waitFor(
      async () =>
        JSON.stringify(await (await api(`/v1/messages/${fb.id}`)).json()).includes(
          'provider-accepted',
        ),
      { timeoutMs: 5_000 },
    );
    // Idempotent send, broadcast, device listing.
    const once = { to: 'alice', event: 'note', data: 3 };
    const idem = async () =>
      (
        await http(`http://127.0.0.1:${port['push-api']}/v1/messages`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${KEY}`,
            'content-type': 'application/json',
            'idempotency-key': 'perm-1',
          },
          body: JSON.stringify(once),
        })
      ).json();
    expect((await idem()).id).toBe((await idem()).id);
    expect(
      (await api('/v1/broadcast', { method: 'POST', body: { event: 'all', data: 1 } })).status,
    ).toBe(200);
    await waitFor(() => inbox.some((m) => m.event === 'all'));
    expect((await (await api('/v1/users/bob/devices')).json()).devices).toHaveLength(1);
    // A device the provider says is gone is removed by OS push; one that keeps failing is
    // dead-lettered.
    const base = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}`;
    await api('/v1/users/carol/devices/old', {
      method: 'PUT',
      body: { platform: 'webhook', token: `${base}/gone` },
    });
    await api('/v1/users/dave/devices/broken', {
      method: 'PUT',
      body: { platform: 'webhook', token: `${base}/fail` },
    });
    for (const to of ['carol', 'dave'])
      await api('/v1/messages', {
        method: 'POST',
        body: { to, event: 'note', fallback: { title: 't', body: 'b' } },
      });
    await waitFor(
      async () => (await (await api('/v1/users/carol/devices')).json()).devices.length === 0,
      { timeoutMs: 10_000 },
    );
    const audit = await connect({
      servers: nats.url,
      user: 'os_push',
      pass: PASSWORDS.OS_PUSH_NATS_PASSWORD,
    });
    try {
      const jsm = await jetstreamManager(audit);
      await waitFor(
        async () => (await jsm.streams.info(Streams.fallbackDlq)).state.messages === 1,
        { timeoutMs: 10_000 },
      );
    } finally {
      await audit.close();
    }
    // kill -9 of the edge: presence (its leader) cleans up after the lease.
    client.close();
    await edge.kill();
    await waitFor(async () => (await (await presence('alice')).json()).online === false, {
      timeoutMs: 15_000,
    });
    expect(nats.permissionViolations).toEqual([]);
  });

  it('permissions - an app cannot touch what is not its own', async () => {
    const as = (user: string, pass: string) => connect({ servers: nats.url, user, pass });
    const edgeNc = await as('edge', PASSWORDS.EDGE_NATS_PASSWORD);
    const apiNc = await as('push_api', PASSWORDS.PUSH_API_NATS_PASSWORD);
    try {
      // The edge reads no device tokens.
      const devices = await new Kvm(edgeNc).open('devices').catch((e: Error) => e);
      const read =
        devices instanceof Error ? devices : await devices.get('anything').catch((e: Error) => e);
      expect(read).toBeInstanceOf(Error);
      // No app deletes a stream.
      const jsm = await jetstreamManager(apiNc);
      const del = await jsm.streams.delete(Streams.fallback).catch((e: Error) => e);
      expect(del).toBeInstanceOf(Error);
      expect((await jsm.streams.info(Streams.fallback)).config.name).toBe(Streams.fallback);
    } finally {
      await edgeNc.close();
      await apiNc.close();
    }
  });

  it('permissions - a violation is logged at error level and counted, never swallowed', async () => {
    const errors: string[] = [];
    const log = { info() {}, warn() {}, error: (_o: object, msg: string) => errors.push(msg) };
    const nc = await connectNats({
      servers: [nats.url],
      user: 'edge',
      pass: PASSWORDS.EDGE_NATS_PASSWORD,
      name: 'violator',
      log,
    });
    try {
      const before = natsPermissionViolations();
      nc.publish('$KV.devices.stolen', 'x');
      await waitFor(() => natsPermissionViolations() === before + 1);
      expect(errors).toContain('nats permission violation');
    } finally {
      await nc.close();
    }
  });
});
