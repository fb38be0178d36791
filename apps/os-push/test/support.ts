/**
 * A real NATS, the push API as its own process, the OS push worker in-process, with local
 * APNs and FCM.
 */

import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Streams } from '@switchboard/protocol';
import {
  ApnsServer,
  FcmServer,
  http,
  NatsServer,
  type NatsServerOptions,
  RunningApp,
  type TestResponse,
  waitFor,
} from '@switchboard/testkit';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { type RunningOsPush, startOsPush } from '../src/start-os-push.js';

export const API_KEY = 'os-push-test-api-key-000';
export const WEBHOOK_SECRET = 'webhook-secret-0123456789';
export const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export class PushRig {
  workers: RunningOsPush[] = [];
  api!: RunningApp;

  private constructor(
    readonly nats: NatsServer,
    readonly apns: ApnsServer,
    readonly fcm: FcmServer,
  ) {}

  /** `nats`: the server's options (accounts, permissions); `apiEnv`: extra push API variables. */
  static async start(
    options: { nats?: NatsServerOptions; apiEnv?: Record<string, string> } = {},
  ): Promise<PushRig> {
    const nats = await NatsServer.start(options.nats);
    const [api, apns, fcm] = await Promise.all([
      RunningApp.start('push-api', { NATS_URL: nats.url, API_KEYS: API_KEY, ...options.apiEnv }),
      ApnsServer.start(),
      FcmServer.start(),
    ]);
    const rig = new PushRig(nats, apns, fcm);
    rig.api = api;
    return rig;
  }

  /** The worker's environment, pointing at the local providers. */
  workerEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      PORT: '0',
      HOST: '127.0.0.1',
      NATS_URL: this.nats.url,
      APNS_KEY: this.apns.privateKeyPem,
      APNS_KEY_ID: this.apns.keyId,
      APNS_TEAM_ID: this.apns.teamId,
      APNS_TOPIC: 'com.example.app',
      APNS_BASE_URL: this.apns.url,
      APNS_SANDBOX_BASE_URL: this.apns.url,
      FCM_SERVICE_ACCOUNT_JSON: JSON.stringify(this.fcm.serviceAccount),
      FCM_BASE_URL: this.fcm.url,
      WEBHOOK_ALLOWED_HOSTS: 'localhost',
      // Test servers listen on 127.0.0.1.
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_SECRET,
      OS_PUSH_RETRY_BASE_MS: '50',
      OS_PUSH_RETRY_MAX_MS: '500',
      OS_PUSH_MAX_ATTEMPTS: '3',
      ...extra,
    };
  }

  async addWorker(extra: Record<string, string> = {}): Promise<RunningOsPush> {
    const w = await startOsPush(loadConfig(this.workerEnv(extra)), log);
    this.workers.push(w);
    return w;
  }

  request(method: string, path: string, body?: unknown): Promise<TestResponse> {
    return http(`${this.api.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${API_KEY}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  async device(
    userId: string,
    deviceId: string,
    registration: Record<string, unknown>,
  ): Promise<void> {
    const res = await this.request(
      'PUT',
      `/v1/users/${encodeURIComponent(userId)}/devices/${deviceId}`,
      registration,
    );
    if (res.status !== 200)
      throw new Error(`device registration failed: ${res.status} ${await res.text()}`);
  }

  /** Sends to an offline user with a fallback notification; returns the message id. */
  async send(
    userId: string,
    fallback: Record<string, unknown> = { title: 'Hello', body: 'You have a message' },
    id?: string,
  ): Promise<string> {
    const res = await this.request('POST', '/v1/messages', {
      to: userId,
      event: 'dm.new',
      data: { n: 1 },
      fallback,
      ...(id ? { id } : {}),
    });
    const body = (await res.json()) as { id: string; results: Array<{ status: string }> };
    if (body.results[0]?.status !== 'fallback')
      throw new Error(`expected fallback, got ${JSON.stringify(body)}`);
    return body.id;
  }

  async status(id: string) {
    return (await this.request('GET', `/v1/messages/${id}`)).json() as Promise<{
      recipients: Array<{
        userId: string;
        status: string;
        timeline: Array<{ step: string; deviceId?: string; detail?: string }>;
      }>;
    }>;
  }

  /**
   * Resolves once every fallback message is acked or dead-lettered: the stream is empty and
   * the consumer has nothing pending or in flight. After it, no further provider request
   * for those messages can come, so a test may assert that none did.
   */
  async drained(timeoutMs = 15_000): Promise<void> {
    const nc = await connect({ servers: this.nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await waitFor(
        async () => {
          const s = await jsm.streams.info(Streams.fallback);
          if (s.state.messages !== 0) return false;
          const c = await jsm.consumers.info(Streams.fallback, 'os-push').catch(() => null);
          return c === null || (c.num_ack_pending === 0 && c.num_pending === 0);
        },
        { timeoutMs, message: 'fallback messages still pending' },
      );
    } finally {
      await nc.close();
    }
  }

  async close(): Promise<void> {
    for (const w of this.workers) await w.stop().catch(() => {});
    await this.api?.kill();
    await this.apns.stop();
    await this.fcm.stop();
    await this.nats.stop();
  }
}
