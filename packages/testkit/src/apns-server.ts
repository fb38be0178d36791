/**
 * A local APNs: HTTP/2 (cleartext, prior knowledge) with Apple's paths, headers, provider
 * token checks (ES256 JWT, `kid`, `iss`, age) and error responses (`{ "reason": ... }`).
 * Responses can be scripted per device token; every request is recorded.
 */
import { generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import {
  createServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { decodeProtectedHeader, jwtVerify } from 'jose';

export type ApnsRequest = {
  token: string;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
  jwt: { header: Record<string, unknown>; claims: Record<string, unknown> };
  /** Whether the 200 reached a live stream (the client may have died meanwhile). */
  answered: boolean;
  /** When the request arrived (ms since epoch). */
  at: number;
};

export type ApnsScripted = { status: number; reason?: string; retryAfterSeconds?: number };

export class ApnsServer {
  readonly keyId = 'ABC123DEFG';
  readonly teamId = 'TEAM123456';
  /** The .p8 key the provider signs with (PKCS#8 PEM). */
  readonly privateKeyPem: string;
  readonly requests: ApnsRequest[] = [];
  /** Response delay, to hold requests in flight. */
  delayMs = 0;
  readonly #publicKey: KeyObject;
  readonly #scripts = new Map<string, ApnsScripted[]>();
  readonly #server: Http2Server;

  private constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    this.#publicKey = publicKey;
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  static async start(): Promise<ApnsServer> {
    const s = new ApnsServer();
    await new Promise<void>((resolve) => s.#server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** The next responses for `token`, in order; afterwards 200. */
  script(token: string, ...responses: ApnsScripted[]): void {
    this.#scripts.set(token, [...(this.#scripts.get(token) ?? []), ...responses]);
  }

  /** Requests answered 200 to a live client, per device token. */
  delivered(token?: string): ApnsRequest[] {
    return this.requests.filter((r) => r.answered && (token === undefined || r.token === token));
  }

  async #handle(req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const reply = (status: number, reason?: string, extra: Record<string, string> = {}) => {
      if (res.stream.destroyed) return false;
      res.writeHead(status, {
        'apns-id': String(req.headers['apns-id'] ?? randomUUID()),
        ...extra,
      } as Record<string, string>);
      if (reason)
        res.end(JSON.stringify({ reason, ...(status === 410 ? { timestamp: Date.now() } : {}) }));
      else res.end();
      return true;
    };
    const m = /^\/3\/device\/([0-9a-fA-F]+)$/.exec(req.url);
    if (req.method !== 'POST') return void reply(405, 'MethodNotAllowed');
    if (!m) return void reply(404, 'BadPath');
    const token = m[1]!;
    const auth = String(req.headers.authorization ?? '');
    if (!auth.startsWith('bearer ')) return void reply(403, 'MissingProviderToken');
    let jwt: ApnsRequest['jwt'];
    try {
      const header = decodeProtectedHeader(auth.slice(7));
      if (header.kid !== this.keyId) return void reply(403, 'InvalidProviderToken');
      const { payload } = await jwtVerify(auth.slice(7), this.#publicKey, {
        algorithms: ['ES256'],
        issuer: this.teamId,
        maxTokenAge: '1h',
      });
      jwt = {
        header: header as Record<string, unknown>,
        claims: payload as Record<string, unknown>,
      };
    } catch {
      return void reply(403, 'InvalidProviderToken');
    }
    if (!req.headers['apns-topic']) return void reply(400, 'MissingTopic');
    if (raw.length > 4096) return void reply(413, 'PayloadTooLarge');
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return void reply(400, 'PayloadEmpty');
    }
    const record: ApnsRequest = {
      token,
      headers: { ...req.headers },
      body,
      jwt,
      answered: false,
      at: Date.now(),
    };
    this.requests.push(record);
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const next = this.#scripts.get(token)?.shift();
    if (next && next.status !== 200) {
      reply(
        next.status,
        next.reason,
        next.retryAfterSeconds === undefined
          ? {}
          : { 'retry-after': String(next.retryAfterSeconds) },
      );
      return;
    }
    record.answered = reply(200);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
