/**
 * A local FCM: the OAuth2 token endpoint of a Google service account (JWT-bearer grant,
 * RS256 assertion checked against the account's key) and the HTTP v1 send endpoint with
 * FCM's error format. Responses can be scripted per registration token.
 */
import { generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jwtVerify } from 'jose';

export type FcmSend = {
  token: string;
  body: { message: Record<string, unknown> & { token: string } };
  accessToken: string;
};
export type FcmScripted = {
  status: number;
  errorCode?: string;
  status_text?: string;
  message?: string;
  retryAfterSeconds?: number;
};

export class FcmServer {
  readonly projectId = 'switchboard-test';
  readonly clientEmail = 'push@switchboard-test.iam.gserviceaccount.com';
  readonly sends: FcmSend[] = [];
  readonly tokenExchanges: Array<{ claims: Record<string, unknown> }> = [];
  readonly #privateKeyPem: string;
  readonly #publicKey: KeyObject;
  readonly #issued = new Set<string>();
  readonly #scripts = new Map<string, FcmScripted[]>();
  readonly #server: Server;

  private constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.#privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    this.#publicKey = publicKey;
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  static async start(): Promise<FcmServer> {
    const s = new FcmServer();
    await new Promise<void>((resolve) => s.#server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** A service-account JSON key whose token_uri is this server. */
  get serviceAccount() {
    return {
      type: 'service_account',
      project_id: this.projectId,
      private_key_id: 'test-key',
      private_key: this.#privateKeyPem,
      client_email: this.clientEmail,
      token_uri: `${this.url}/token`,
    };
  }

  script(token: string, ...responses: FcmScripted[]): void {
    this.#scripts.set(token, [...(this.#scripts.get(token) ?? []), ...responses]);
  }

  /** Makes every issued access token invalid (as if expired early). */
  revokeAccessTokens(): void {
    this.#issued.clear();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res
        .writeHead(status, { 'content-type': 'application/json', ...headers })
        .end(JSON.stringify(body));
    };
    const error = (
      status: number,
      statusText: string,
      message: string,
      errorCode?: string,
      headers?: Record<string, string>,
    ): void =>
      json(
        status,
        {
          error: {
            code: status,
            message,
            status: statusText,
            ...(errorCode
              ? {
                  details: [
                    { '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode },
                  ],
                }
              : {}),
          },
        },
        headers,
      );

    if (req.method === 'POST' && req.url === '/token') {
      const form = new URLSearchParams(raw);
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
        return json(400, { error: 'unsupported_grant_type' });
      try {
        const { payload } = await jwtVerify(form.get('assertion') ?? '', this.#publicKey, {
          algorithms: ['RS256'],
          issuer: this.clientEmail,
          audience: `${this.url}/token`,
        });
        if (payload.scope !== 'https://www.googleapis.com/auth/firebase.messaging')
          return json(400, { error: 'invalid_scope' });
        this.tokenExchanges.push({ claims: payload as Record<string, unknown> });
      } catch {
        return json(400, { error: 'invalid_grant' });
      }
      const accessToken = `ya29.${randomUUID()}`;
      this.#issued.add(accessToken);
      return json(200, { access_token: accessToken, expires_in: 3599, token_type: 'Bearer' });
    }

    const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(req.url ?? '');
    if (req.method !== 'POST' || !m) return error(404, 'NOT_FOUND', 'no such endpoint');
    const accessToken = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
    if (!this.#issued.has(accessToken))
      return error(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
    if (m[1] !== this.projectId)
      return error(403, 'PERMISSION_DENIED', 'SenderId mismatch', 'SENDER_ID_MISMATCH');
    let body: FcmSend['body'];
    try {
      body = JSON.parse(raw) as FcmSend['body'];
    } catch {
      return error(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.');
    }
    const token = body.message?.token;
    if (typeof token !== 'string')
      return error(400, 'INVALID_ARGUMENT', 'Recipient of the message is not set.');
    this.sends.push({ token, body, accessToken });
    const next = this.#scripts.get(token)?.shift();
    if (next && next.status !== 200) {
      return error(
        next.status,
        next.status_text ??
          (next.status === 404
            ? 'NOT_FOUND'
            : next.status === 429
              ? 'RESOURCE_EXHAUSTED'
              : next.status === 400
                ? 'INVALID_ARGUMENT'
                : 'UNAVAILABLE'),
        next.message ?? (next.status === 404 ? 'Requested entity was not found.' : 'error'),
        next.errorCode,
        next.retryAfterSeconds === undefined
          ? {}
          : { 'retry-after': String(next.retryAfterSeconds) },
      );
    }
    json(200, { name: `projects/${this.projectId}/messages/${randomUUID()}` });
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
