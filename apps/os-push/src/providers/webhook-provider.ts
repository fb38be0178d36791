/**
 * WebhookProvider — POSTs the message as JSON to the device's URL, only when host and port
 * are in `WEBHOOK_ALLOWED_HOSTS` (none by default: webhooks off), with a timeout and an HMAC
 * signature: `x-switchboard-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
 *
 * Bounds: `https:` only unless `requireHttps` is off (development); the address the host
 * resolves to is checked at connect time (no window for DNS rebinding) and a loopback,
 * link-local or private one is refused unless `allowPrivate`; redirects are never followed;
 * at most `maxResponseBytes` of the answer are read, then the connection is dropped.
 */
import { createHmac } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import type { FallbackMessage } from '@switchboard/protocol';
import { type Device, webhookUrlRefusal } from '@switchboard/protocol';
import { type PushProvider, retryAfterMs, type SendResult } from './push-provider.js';

export const DEFAULT_WEBHOOK_MAX_RESPONSE_BYTES = 64 * 1024;

export type WebhookProviderOptions = {
  allowedHosts: readonly string[];
  secret: string;
  timeoutMs?: number;
  /** Allow loopback, link-local and private addresses (tests, a private network). Default false. */
  allowPrivate?: boolean;
  /** Refuse `http:` URLs (production). Default false. */
  requireHttps?: boolean;
  /** Response bytes read at most (default 64 KiB). */
  maxResponseBytes?: number;
};

/** Loopback, link-local, private, shared, reserved and multicast ranges. */
const NOT_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv6');

/** Whether an address is loopback, link-local, private or otherwise not on the internet. */
export function isNonPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return NOT_PUBLIC.check(mapped[1]!, 'ipv4');
  const family = isIP(address);
  if (family === 0) return true;
  return NOT_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

class AddressRefusedError extends Error {
  constructor(host: string, address: string) {
    super(`${host} resolves to ${address}, a loopback, link-local or private address`);
    this.name = 'AddressRefusedError';
  }
}

export class WebhookProvider implements PushProvider {
  readonly platform = 'webhook' as const;
  readonly #o: WebhookProviderOptions;

  constructor(options: WebhookProviderOptions) {
    this.#o = options;
  }

  /** The signature header value for `body` at `t` (seconds). */
  static sign(secret: string, t: number, body: string): string {
    return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
  }

  async send(device: Device, message: FallbackMessage): Promise<SendResult> {
    const refusal = webhookUrlRefusal(device.token, this.#o.allowedHosts, {
      requireHttps: this.#o.requireHttps ?? false,
    });
    if (refusal === 'not a URL') return { outcome: 'invalid-token', detail: refusal };
    if (refusal) return { outcome: 'rejected', detail: refusal };
    const url = new URL(device.token);
    const literal = url.hostname.replace(/^\[|\]$/g, '');
    if (!this.#o.allowPrivate && isIP(literal) && isNonPublicAddress(literal))
      return { outcome: 'rejected', detail: new AddressRefusedError(literal, literal).message };
    const body = JSON.stringify({
      id: message.id,
      userId: message.userId,
      event: message.event,
      data: message.data,
      notification: message.notification,
      sentAt: message.sentAt,
    });
    const t = Math.floor(Date.now() / 1000);
    let status: number;
    let retryAfter: string | undefined;
    try {
      ({ status, retryAfter } = await this.#post(url, body, {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'x-switchboard-signature': WebhookProvider.sign(this.#o.secret, t, body),
      }));
    } catch (err) {
      if (err instanceof AddressRefusedError) return { outcome: 'rejected', detail: err.message };
      return { outcome: 'retry', detail: `webhook unreachable: ${(err as Error).message}` };
    }
    if (status >= 200 && status < 300) return { outcome: 'accepted', detail: String(status) };
    if (status === 410) return { outcome: 'invalid-token', detail: '410 gone' };
    if (status >= 300 && status < 400)
      return { outcome: 'rejected', detail: `${status}: redirects are not followed` };
    if (status === 429 || status >= 500) {
      const after = retryAfterMs(retryAfter);
      return {
        outcome: 'retry',
        detail: String(status),
        ...(after === undefined ? {} : { retryAfterMs: after }),
      };
    }
    return { outcome: 'rejected', detail: String(status) };
  }

  /** One POST; resolves with the status once the answer ended or its cap was read. */
  #post(
    url: URL,
    body: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; retryAfter: string | undefined }> {
    const allowPrivate = this.#o.allowPrivate ?? false;
    const cap = this.#o.maxResponseBytes ?? DEFAULT_WEBHOOK_MAX_RESPONSE_BYTES;
    // Checked on the addresses the socket connects to, not on an earlier separate lookup.
    const lookup: LookupFunction = (hostname, options, callback) => {
      dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
        if (err) return callback(err, '', 0);
        const bad = allowPrivate ? undefined : addresses.find((a) => isNonPublicAddress(a.address));
        if (bad) return callback(new AddressRefusedError(hostname, bad.address), '', 0);
        if (options.all)
          return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
        const first = addresses[0]!;
        callback(null, first.address, first.family);
      });
    };
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method: 'POST',
        headers,
        lookup,
        agent: false,
        maxHeaderSize: 16 * 1024,
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 5_000),
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const done = () => {
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
        };
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read >= cap) {
            // Enough: the status is what counts; the rest is never read.
            done();
            req.destroy();
          }
        });
        res.on('end', done);
        res.on('error', () => done());
      });
      req.end(body);
    });
  }

  async close(): Promise<void> {}
}
