/**
 * WebhookProvider — POSTs the message as JSON to the device's URL, only for hosts in
 * `WEBHOOK_ALLOWED_HOSTS` (none by default: webhooks off), with a timeout and an HMAC
 * signature: `x-switchboard-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
 */
import { createHmac } from 'node:crypto';
import type { Device } from '@switchboard/protocol/devices';
import type { FallbackMessage } from '@switchboard/protocol/fallback';
import { type PushProvider, retryAfterMs, type SendResult } from './push-provider.js';

export type WebhookProviderOptions = {
  allowedHosts: readonly string[];
  secret: string;
  timeoutMs?: number;
};

export class WebhookProvider implements PushProvider {
  readonly platform = 'webhook' as const;
  readonly #o: WebhookProviderOptions;
  readonly #allowed: ReadonlySet<string>;

  constructor(options: WebhookProviderOptions) {
    this.#o = options;
    this.#allowed = new Set(options.allowedHosts.map((h) => h.toLowerCase()));
  }

  /** The signature header value for `body` at `t` (seconds). */
  static sign(secret: string, t: number, body: string): string {
    return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
  }

  async send(device: Device, message: FallbackMessage): Promise<SendResult> {
    let url: URL;
    try {
      url = new URL(device.token);
    } catch {
      return { outcome: 'invalid-token', detail: 'not a URL' };
    }
    if (!this.#allowed.has(url.hostname.toLowerCase())) {
      return {
        outcome: 'rejected',
        detail: `host ${url.hostname} is not in WEBHOOK_ALLOWED_HOSTS`,
      };
    }
    const body = JSON.stringify({
      id: message.id,
      userId: message.userId,
      event: message.event,
      data: message.data,
      notification: message.notification,
      sentAt: message.sentAt,
    });
    const t = Math.floor(Date.now() / 1000);
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-switchboard-signature': WebhookProvider.sign(this.#o.secret, t, body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 5_000),
      });
      await res.arrayBuffer();
    } catch (err) {
      return { outcome: 'retry', detail: `webhook unreachable: ${(err as Error).message}` };
    }
    if (res.ok) return { outcome: 'accepted', detail: String(res.status) };
    if (res.status === 410) return { outcome: 'invalid-token', detail: '410 gone' };
    if (res.status === 429 || res.status >= 500) {
      const after = retryAfterMs(res.headers.get('retry-after'));
      return {
        outcome: 'retry',
        detail: String(res.status),
        ...(after === undefined ? {} : { retryAfterMs: after }),
      };
    }
    return { outcome: 'rejected', detail: String(res.status) };
  }

  async close(): Promise<void> {}
}
