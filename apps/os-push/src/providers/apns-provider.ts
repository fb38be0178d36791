/**
 * ApnsProvider — Apple Push Notification service over HTTP/2 with token auth: an ES256
 * JWT from the .p8 key (`kid` = key id, `iss` = team id), cached and renewed every 50 min
 * (Apple refuses tokens older than an hour and throttles renewals more often than 20 min).
 * One HTTP/2 session per origin (production / sandbox), reused.
 */
import { createHash } from 'node:crypto';
import { type ClientHttp2Session, connect, constants } from 'node:http2';
import type { FallbackMessage } from '@switchboard/protocol';
import { APNS_TOPIC, type Device } from '@switchboard/protocol';
import { importPKCS8, SignJWT } from 'jose';
import type { Logger } from 'pino';
import { type PushProvider, retryAfterMs, type SendResult } from './push-provider.js';

export const APNS_PRODUCTION_URL = 'https://api.push.apple.com';
export const APNS_SANDBOX_URL = 'https://api.sandbox.push.apple.com';
const JWT_MAX_AGE_MS = 50 * 60 * 1000;

export type ApnsProviderOptions = {
  /** The .p8 key (PKCS#8 PEM). */
  keyPem: string;
  keyId: string;
  teamId: string;
  /** Topic (bundle id) when the device has no `appId`. */
  defaultTopic?: string;
  baseUrl?: string;
  sandboxBaseUrl?: string;
  requestTimeoutMs?: number;
  log: Logger;
};

/** Apple's limits, in bytes as Apple counts them (UTF-8). */
export const APNS_COLLAPSE_ID_MAX_BYTES = 64;
export const APNS_PAYLOAD_MAX_BYTES = 4096;
/** Device tokens are hex (32 bytes today, up to 100); they go into the request path. */
const APNS_DEVICE_TOKEN = /^[0-9a-fA-F]{64,200}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Reasons that mean the token will never work again: the device is removed. */
const DEAD_TOKEN_REASONS = new Set(['BadDeviceToken', 'Unregistered', 'DeviceTokenNotForTopic']);

export class ApnsProvider implements PushProvider {
  readonly platform = 'apns' as const;
  readonly #o: ApnsProviderOptions;
  readonly #sessions = new Map<string, ClientHttp2Session>();
  #key: ReturnType<typeof importPKCS8> | undefined;
  #jwt: { token: string; issuedAt: number } | undefined;

  constructor(options: ApnsProviderOptions) {
    this.#o = options;
  }

  /** The provider token, signed again when older than 50 minutes (or after a 403). */
  async token(now = Date.now()): Promise<string> {
    if (this.#jwt && now - this.#jwt.issuedAt < JWT_MAX_AGE_MS) return this.#jwt.token;
    this.#key ??= importPKCS8(this.#o.keyPem, 'ES256');
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: this.#o.keyId })
      .setIssuer(this.#o.teamId)
      .setIssuedAt(Math.floor(now / 1000))
      .sign(await this.#key);
    this.#jwt = { token, issuedAt: now };
    return token;
  }

  async send(device: Device, message: FallbackMessage): Promise<SendResult> {
    const topic = device.appId ?? this.#o.defaultTopic;
    if (!topic)
      return { outcome: 'rejected', detail: 'no APNs topic: set the device appId or APNS_TOPIC' };
    const n = message.notification;
    // Checked again here: the registry and the stream may hold what an older version let in,
    // and a header value with CR/LF or over Apple's limits must never reach the wire.
    const invalid = (detail: string): SendResult => ({
      outcome: 'rejected',
      detail,
      invalid: true,
    });
    if (!APNS_TOPIC.test(topic))
      return invalid(`apns-topic ${JSON.stringify(topic.slice(0, 80))} is not a bundle id`);
    if (!APNS_DEVICE_TOKEN.test(device.token))
      return invalid('the APNs device token is not 64-200 hex characters');
    if (n.collapseKey !== undefined) {
      if (CONTROL.test(n.collapseKey))
        return invalid('apns-collapse-id contains control characters');
      if (Buffer.byteLength(n.collapseKey, 'utf8') > APNS_COLLAPSE_ID_MAX_BYTES)
        return invalid(`apns-collapse-id is over ${APNS_COLLAPSE_ID_MAX_BYTES} bytes (UTF-8)`);
    }
    if (n.data && Object.hasOwn(n.data, 'aps'))
      return invalid('custom data may not set "aps" (the APNs dictionary)');
    const alert = n.title !== undefined || n.body !== undefined;
    const headers: Record<string, string> = {
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: `/3/device/${device.token}`,
      authorization: `bearer ${await this.token()}`,
      'apns-topic': topic,
      'apns-push-type': alert ? 'alert' : 'background',
      // Background pushes must use priority 5.
      'apns-priority': !alert || n.priority === 'normal' ? '5' : '10',
      'apns-expiration':
        n.ttlSeconds === undefined ? '0' : String(Math.floor(Date.now() / 1000) + n.ttlSeconds),
      'apns-id': apnsId(message.id, device.deviceId),
      'content-type': 'application/json',
    };
    // HTTP/2 header values go out as latin1: the UTF-8 bytes, one per character, as Apple reads them.
    if (n.collapseKey)
      headers['apns-collapse-id'] = Buffer.from(n.collapseKey, 'utf8').toString('latin1');
    const payload = JSON.stringify({
      aps: alert
        ? { alert: { title: n.title, body: n.body }, sound: 'default' }
        : { 'content-available': 1 },
      ...(n.data ?? {}),
      sb: { id: message.id, event: message.event },
    });
    if (Buffer.byteLength(payload, 'utf8') > APNS_PAYLOAD_MAX_BYTES)
      return invalid(`the APNs payload is over ${APNS_PAYLOAD_MAX_BYTES} bytes`);
    const origin = device.sandbox
      ? (this.#o.sandboxBaseUrl ?? APNS_SANDBOX_URL)
      : (this.#o.baseUrl ?? APNS_PRODUCTION_URL);
    let res: {
      status: number;
      headers: Record<string, string | string[] | undefined>;
      body: string;
    };
    try {
      res = await this.#request(origin, headers, payload);
    } catch (err) {
      return { outcome: 'retry', detail: `APNs unreachable: ${(err as Error).message}` };
    }
    const reason = parseReason(res.body);
    if (res.status === 200)
      return {
        outcome: 'accepted',
        detail: `apns-id ${res.headers['apns-id'] ?? headers['apns-id']}`,
      };
    if (res.status === 410 || (res.status === 400 && DEAD_TOKEN_REASONS.has(reason))) {
      return { outcome: 'invalid-token', detail: `${res.status} ${reason}` };
    }
    if (
      res.status === 403 &&
      (reason === 'ExpiredProviderToken' || reason === 'InvalidProviderToken')
    ) {
      this.#jwt = undefined;
      return { outcome: 'retry', detail: `${res.status} ${reason}` };
    }
    if (res.status === 429 || res.status >= 500) {
      const after = retryAfterMs(res.headers['retry-after'] as string | undefined);
      return {
        outcome: 'retry',
        detail: `${res.status} ${reason}`,
        ...(after === undefined ? {} : { retryAfterMs: after }),
      };
    }
    return { outcome: 'rejected', detail: `${res.status} ${reason}` };
  }

  #session(origin: string): ClientHttp2Session {
    const existing = this.#sessions.get(origin);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const session = connect(origin);
    const forget = () => {
      if (this.#sessions.get(origin) === session) this.#sessions.delete(origin);
    };
    session.on('error', (err) => {
      this.#o.log.warn({ err, origin }, 'APNs session error');
      forget();
    });
    session.on('goaway', forget);
    session.on('close', forget);
    session.unref();
    this.#sessions.set(origin, session);
    return session;
  }

  #request(
    origin: string,
    headers: Record<string, string>,
    payload: string,
  ): Promise<{
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: string;
  }> {
    return new Promise((resolve, reject) => {
      const req = this.#session(origin).request(headers);
      req.setTimeout(this.#o.requestTimeoutMs ?? 10_000, () => req.close(constants.NGHTTP2_CANCEL));
      let status = 0;
      let resHeaders: Record<string, string | string[] | undefined> = {};
      let body = '';
      req.on('response', (h) => {
        status = Number(h[constants.HTTP2_HEADER_STATUS]);
        resHeaders = h;
      });
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        body += chunk;
      });
      req.on('end', () =>
        status
          ? resolve({ status, headers: resHeaders, body })
          : reject(new Error('stream closed without a response')),
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sessions.values()) s.close();
    this.#sessions.clear();
  }
}

/** A stable UUID for (message, device): the same push has the same apns-id on a retry. */
export function apnsId(messageId: string, deviceId: string): string {
  const h = createHash('sha256').update(`${messageId}\u0000${deviceId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`.toUpperCase();
}

function parseReason(body: string): string {
  try {
    return (JSON.parse(body) as { reason?: string }).reason ?? '';
  } catch {
    return '';
  }
}
