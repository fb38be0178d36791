/**
 * FcmProvider — Firebase Cloud Messaging HTTP v1 with a service account: an RS256 JWT
 * assertion is exchanged at the account's `token_uri` for an OAuth2 access token, cached
 * until a minute before it expires (and dropped on a 401).
 */
import type { Device, FallbackMessage } from '@switchboard/protocol';
import { importPKCS8, SignJWT } from 'jose';
import { dataOf, type PushProvider, retryAfterMs, type SendResult } from './push-provider.js';

export const FCM_BASE_URL = 'https://fcm.googleapis.com';
export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

/** The fields of a Google service-account JSON key that FCM needs. */
export type ServiceAccount = {
  project_id: string;
  client_email: string;
  private_key: string;
  token_uri: string;
};

export type FcmProviderOptions = {
  serviceAccount: ServiceAccount;
  baseUrl?: string;
  requestTimeoutMs?: number;
};

type FcmError = {
  error?: {
    code?: number;
    status?: string;
    message?: string;
    details?: Array<{ errorCode?: string }>;
  };
};

export class FcmProvider implements PushProvider {
  readonly platform = 'fcm' as const;
  readonly #o: FcmProviderOptions;
  #access: { token: string; expiresAt: number } | undefined;
  #pending: Promise<string> | undefined;

  constructor(options: FcmProviderOptions) {
    this.#o = options;
  }

  /** A valid access token; one exchange at a time however many sends wait for it. */
  accessToken(now = Date.now()): Promise<string> {
    if (this.#access && now < this.#access.expiresAt - 60_000)
      return Promise.resolve(this.#access.token);
    this.#pending ??= this.#exchange(now).finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #exchange(now: number): Promise<string> {
    const sa = this.#o.serviceAccount;
    const iat = Math.floor(now / 1000);
    const assertion = await new SignJWT({ scope: FCM_SCOPE })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .setIssuer(sa.client_email)
      .setAudience(sa.token_uri)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 3600)
      .sign(await importPKCS8(sa.private_key, 'RS256'));
    const res = await fetch(sa.token_uri, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion,
      }),
      signal: AbortSignal.timeout(this.#o.requestTimeoutMs ?? 10_000),
    });
    if (!res.ok) throw new Error(`OAuth2 token exchange failed: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { access_token: string; expires_in: number };
    this.#access = { token: body.access_token, expiresAt: now + body.expires_in * 1000 };
    return body.access_token;
  }

  async send(device: Device, message: FallbackMessage): Promise<SendResult> {
    const n = message.notification;
    const body = {
      message: {
        token: device.token,
        ...(n.title !== undefined || n.body !== undefined
          ? { notification: { title: n.title, body: n.body } }
          : {}),
        data: dataOf(message),
        android: {
          priority: n.priority === 'normal' ? 'NORMAL' : 'HIGH',
          ...(n.ttlSeconds === undefined ? {} : { ttl: `${n.ttlSeconds}s` }),
          ...(n.collapseKey ? { collapse_key: n.collapseKey } : {}),
        },
      },
    };
    let res: Response;
    try {
      const token = await this.accessToken();
      res = await fetch(
        `${this.#o.baseUrl ?? FCM_BASE_URL}/v1/projects/${this.#o.serviceAccount.project_id}/messages:send`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.#o.requestTimeoutMs ?? 10_000),
        },
      );
    } catch (err) {
      return { outcome: 'retry', detail: `FCM unreachable: ${(err as Error).message}` };
    }
    const text = await res.text();
    if (res.ok)
      return {
        outcome: 'accepted',
        detail: (JSON.parse(text) as { name?: string }).name ?? 'sent',
      };
    let err: FcmError = {};
    try {
      err = JSON.parse(text) as FcmError;
    } catch {
      // Not JSON: the status says enough.
    }
    const code = err.error?.details?.find((d) => d.errorCode)?.errorCode ?? err.error?.status ?? '';
    const detail = `${res.status} ${code} ${err.error?.message ?? ''}`.trim();
    if (
      code === 'UNREGISTERED' ||
      (code === 'INVALID_ARGUMENT' && /registration token/i.test(err.error?.message ?? ''))
    ) {
      return { outcome: 'invalid-token', detail };
    }
    if (res.status === 401) {
      this.#access = undefined;
      return { outcome: 'retry', detail };
    }
    if (res.status === 429 || res.status >= 500) {
      const after = retryAfterMs(res.headers.get('retry-after'));
      return { outcome: 'retry', detail, ...(after === undefined ? {} : { retryAfterMs: after }) };
    }
    return { outcome: 'rejected', detail };
  }

  async close(): Promise<void> {}
}
