/**
 * The SDK tests' rig: testkit's {@link Stack} (nats-server, edges, the push API and presence,
 * each as its own process), a proxy that can lose responses, and a scripted stub.
 */
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Received } from '@switchboard/testkit';
import { Stack, type StackOptions, waitFor } from '@switchboard/testkit';

export {
  STACK_API_KEY as API_KEY,
  STACK_SECOND_API_KEY as SECOND_API_KEY,
  Stack,
} from '@switchboard/testkit';

/** A {@link Stack} with the presence service next to it (same NATS, same API key). */
export class SdkStack {
  private constructor(readonly stack: Stack) {}

  static async start(options: StackOptions = {}): Promise<SdkStack> {
    return new SdkStack(await Stack.start({ ...options, presence: options.presence ?? true }));
  }

  get apiUrl(): string {
    return this.stack.apiUrl;
  }

  get presenceUrl(): string {
    return this.stack.presenceUrl;
  }

  close(): Promise<void> {
    return this.stack.close();
  }
}

/** Resolves once a message with this event and `data.n` has arrived; returns how many did. */
export async function arrived(inbox: Received[], event: string, n: unknown): Promise<number> {
  await waitFor(
    () => inbox.some((m) => m.event === event && (m.data as { n?: unknown })?.n === n),
    {
      message: () => `${event} #${String(n)} did not arrive (got ${JSON.stringify(inbox)})`,
    },
  );
  return inbox.filter((m) => m.event === event && (m.data as { n?: unknown })?.n === n).length;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function shut(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function readBody(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

export type ProxiedRequest = {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** What the upstream answered (also for a request whose answer the proxy then lost). */
  upstream?: { status: number; headers: IncomingHttpHeaders; body: string };
  /** The proxy closed the caller's connection instead of answering. */
  dropped: boolean;
  /** `performance.now()` when the request arrived, and when the upstream answered it. */
  at: number;
  upstreamAt?: number;
};

/**
 * An HTTP proxy in front of `upstream` that forwards every request, and for the ones
 * `drop` picks, closes the caller's connection: `after-response` once the upstream has
 * answered (the request was fully processed, its answer is lost), or `before-response`
 * right after forwarding (the caller gives up while the upstream still works on it).
 */
export class LossyProxy {
  readonly requests: ProxiedRequest[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  url = '';

  private constructor(
    readonly upstream: string,
    readonly drop: (
      req: ProxiedRequest,
      index: number,
    ) => false | 'after-response' | 'before-response',
  ) {
    this.#server = createServer((req, res) => {
      void readBody(req).then((body) => {
        const entry: ProxiedRequest = {
          method: req.method ?? 'GET',
          path: req.url ?? '/',
          headers: req.headers,
          body: body.toString('utf8'),
          dropped: false,
          at: performance.now(),
        };
        const index = this.requests.push(entry) - 1;
        const how = this.drop(entry, index);
        const { host: _host, connection: _connection, ...headers } = req.headers;
        const up = request(`${this.upstream}${entry.path}`, {
          method: entry.method,
          headers,
          agent: false,
        });
        up.on('response', (upRes) => {
          void readBody(upRes).then((upBody) => {
            entry.upstreamAt = performance.now();
            entry.upstream = {
              status: upRes.statusCode ?? 0,
              headers: upRes.headers,
              body: upBody.toString('utf8'),
            };
            if (how === 'after-response') {
              entry.dropped = true;
              req.socket.destroy();
              return;
            }
            if (how === 'before-response') return;
            const { connection: _c, 'transfer-encoding': _t, ...out } = upRes.headers;
            res.writeHead(upRes.statusCode ?? 502, out);
            res.end(upBody);
          });
        });
        up.on('error', () => req.socket.destroy());
        up.end(body);
        if (how === 'before-response') {
          // Once the request has left for the upstream, the caller loses its connection.
          up.on('finish', () => {
            entry.dropped = true;
            req.socket.destroy();
          });
        }
      });
    });
    this.#server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
  }

  static async start(upstream: string, drop: LossyProxy['drop']): Promise<LossyProxy> {
    const proxy = new LossyProxy(upstream, drop);
    proxy.url = await listen(proxy.#server);
    return proxy;
  }

  close(): Promise<void> {
    return shut(this.#server, this.#sockets);
  }
}

export type StubReply = {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Never answer (the caller must time out). */
  hang?: boolean;
};

/**
 * An HTTP server that answers from a script: request i gets `script(i, request)`. Records
 * each request with its arrival time (`performance.now()`, ms) and wall-clock time.
 */
export class StubServer {
  readonly requests: {
    method: string;
    path: string;
    headers: IncomingHttpHeaders;
    body: string;
    at: number;
    wallAt: number;
  }[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  url = '';

  private constructor(script: (index: number) => StubReply) {
    this.#server = createServer((req, res) => {
      const at = performance.now();
      const wallAt = Date.now();
      void readBody(req).then((body) => {
        const index =
          this.requests.push({
            method: req.method ?? 'GET',
            path: req.url ?? '/',
            headers: req.headers,
            body: body.toString('utf8'),
            at,
            wallAt,
          }) - 1;
        const reply = script(index);
        if (reply.hang) return;
        const payload = reply.body === undefined ? '' : JSON.stringify(reply.body);
        res.writeHead(reply.status, {
          ...(payload ? { 'content-type': 'application/json' } : {}),
          ...reply.headers,
        });
        res.end(payload);
      });
    });
    this.#server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
  }

  static async start(script: (index: number) => StubReply): Promise<StubServer> {
    const stub = new StubServer(script);
    stub.url = await listen(stub.#server);
    return stub;
  }

  /** Gaps between consecutive arrivals, in ms. */
  gaps(): number[] {
    return this.requests.slice(1).map((r, i) => r.at - this.requests[i]!.at);
  }

  close(): Promise<void> {
    return shut(this.#server, this.#sockets);
  }
}

/** The error body the APIs answer. */
export const errorBody = (code: string, message: string) => ({ error: { code, message } });
