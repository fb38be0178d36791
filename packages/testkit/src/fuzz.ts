/**
 * A small seeded HTTP fuzzer for the JSON APIs: a PRNG, generators of hostile values, bodies,
 * paths and headers, a raw HTTP/1.1 client that sends exactly the bytes it is given (invalid
 * UTF-8, lone surrogates, wrong lengths, over-long request lines), and a check of the
 * documented error shape. Same seed, same cases: a failure prints the seed to replay it.
 */
import { connect } from 'node:net';
import { runPool } from '@switchboard/runtime';

/** sfc32: a small, fast PRNG with a 128-bit state; deterministic for a given seed. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(readonly seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.uint32();
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  uint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** The seed and size of a fuzz run: `FUZZ_SEED` replays a run, `FUZZ_CASES` sets its size. */
export function fuzzSettings(
  env: Record<string, string | undefined>,
  defaultCases: number,
): { seed: number; cases: number } {
  const seed = env.FUZZ_SEED ? Number(env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  const cases = env.FUZZ_CASES ? Math.max(1, Number(env.FUZZ_CASES) | 0) : defaultCases;
  return { seed, cases };
}

/** Strings that break naive code: lone and paired surrogates, controls, NUL, RTL, long runs. */
export function hostileString(rng: Prng): string {
  switch (rng.int(16)) {
    case 0:
      return '';
    case 1:
      return `a${String.fromCharCode(rng.between(0xd800, 0xdbff))}`; // lone high surrogate
    case 2:
      return `${String.fromCharCode(rng.between(0xdc00, 0xdfff))}b`; // lone low surrogate
    case 3:
      return '\uDBFF\uDBFF'; // two highs, no low
    case 4:
      return '😀'.repeat(rng.between(1, 100)); // 4 UTF-8 bytes each: 64 fit in 256
    case 5:
      return 'x'.repeat(rng.pick([255, 256, 257, 1024, 1025, 4097, 70_000]));
    case 6:
      return String.fromCharCode(rng.int(32)).repeat(rng.between(1, 4)); // controls, NUL
    case 7:
      return '\u202Eevil\u200B\uFEFF';
    case 8:
      return rng.pick(['../..', '..', '.', '*', '>', 'a.b', 'a b', 'a=2E', '%', '%zz', '/']);
    case 9:
      return rng.pick(['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']);
    case 10:
      return rng.pick(['connect', 'disconnect', 'error', 'message', 'ping', 'newListener']);
    case 11:
      return 'é'.repeat(rng.pick([128, 129]));
    case 12:
      return String(rng.pick([0, -1, 1e308, Number.MAX_SAFE_INTEGER + 2]));
    case 13:
      return '\r\nx-injected: 1';
    case 14:
      return Array.from({ length: rng.between(1, 20) }, () =>
        String.fromCharCode(rng.int(0x10000)),
      ).join('');
    default:
      return `u${rng.uint32().toString(36)}`;
  }
}

/** Any JSON value, shallow or deep, of any type. */
export function anyJson(rng: Prng, depth = 0): unknown {
  const leaf = depth > 3 || rng.chance(0.6);
  if (leaf) {
    switch (rng.int(9)) {
      case 0:
        return null;
      case 1:
        return rng.chance(0.5);
      case 2:
        return rng.pick([0, -1, 1.5, 1e21, -0, 2 ** 53 + 1, 100, 60_001]);
      case 3:
        return hostileString(rng);
      default:
        return `s${rng.int(1000)}`;
    }
  }
  if (rng.chance(0.5)) return Array.from({ length: rng.int(4) }, () => anyJson(rng, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = rng.int(4); i > 0; i--)
    o[rng.chance(0.3) ? hostileString(rng) : `k${i}`] = anyJson(rng, depth + 1);
  return o;
}

/** JSON text nested `depth` levels deep (arrays or objects), built without recursion. */
export function deepJson(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array'
    ? `${'['.repeat(depth)}${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/**
 * A copy of `valid` with one to three mutations: a field dropped, replaced by a value of
 * any type or a hostile string, or an unknown field added.
 */
export function mutate(rng: Prng, valid: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...valid };
  for (let n = rng.between(1, 3); n > 0; n--) {
    const keys = Object.keys(out);
    const key = keys.length > 0 ? rng.pick(keys) : 'x';
    switch (rng.int(5)) {
      case 0:
        delete out[key];
        break;
      case 1:
        out[key] = anyJson(rng);
        break;
      case 2:
        out[key] = hostileString(rng);
        break;
      case 3:
        out[key] = [out[key], anyJson(rng)];
        break;
      default:
        out[rng.chance(0.5) ? hostileString(rng) || 'extra' : 'extra'] = anyJson(rng);
    }
  }
  return out;
}

/**
 * Bytes of a JSON body: the value as JSON, or a corruption of it (truncated, invalid UTF-8
 * spliced in, a raw lone surrogate written as CESU-8, trailing garbage, another encoding).
 */
export function encodeBody(rng: Prng, value: unknown): Buffer {
  const text = JSON.stringify(value) ?? 'null';
  switch (rng.int(12)) {
    case 0:
      return Buffer.from(text.slice(0, rng.int(text.length)));
    case 1: {
      const at = rng.int(text.length + 1);
      const junk = rng.pick([[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe0, 0x80], [0x80]]);
      return Buffer.concat([
        Buffer.from(text.slice(0, at)),
        Buffer.from(junk),
        Buffer.from(text.slice(at)),
      ]);
    }
    case 2:
      return Buffer.from(`${text}${rng.pick(['x', ',', ']', '}', '\u0000', ' {} '])}`);
    case 3:
      return Buffer.from(text, 'utf16le');
    case 4:
      return Buffer.from(`\uFEFF${text}`);
    default:
      return Buffer.from(text);
  }
}

/** A path segment: an id of any shape, percent-encoded well or badly, or far too long. */
export function pathSegment(rng: Prng): string {
  switch (rng.int(12)) {
    case 0:
      return rng.pick(['%zz', '%', '%E0%A4%A', '%ED%A0%80', '%FF', '%C0%AF', '%00', '%2F', '%25']);
    case 1:
      return 'a'.repeat(rng.pick([256, 257, 768, 1024, 1025, 2048, 4096, 9000]));
    case 2:
      return '%F0%9F%98%80'.repeat(rng.pick([64, 65, 85, 86, 200]));
    case 3:
      return rng.pick(['', '.', '..', '...', '%2E%2E', '~', ';a=b', '*']);
    case 4:
      return 'x'.repeat(rng.pick([16_000, 20_000, 70_000])); // past Node's 16 KiB header limit
    case 5:
      return Buffer.from([0xc3, 0x28, 0x61, 0xff, 0xfe]).toString('latin1'); // raw bytes
    case 6:
      return `${encodeURIComponent(hostileString(rng).replace(/[\uD800-\uDFFF]/g, 'x'))}`;
    default:
      return `u${rng.uint32().toString(36)}`;
  }
}

/** One request: sent byte for byte by {@link rawRequest}. */
export type FuzzRequest = {
  method: string;
  /** The request target as latin1 text (each char one byte), so raw bytes pass through. */
  path: string;
  headers: Array<[string, string]>;
  body?: Buffer;
  /** What was generated, for the failure message. */
  label: string;
};

export type RawResponse = { status: number; headers: Record<string, string>; body: Buffer };

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'APPLICATION/JSON',
  'text/plain',
  'text/html',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/json\u0000',
  'json',
  '',
  ';',
  `application/${'j'.repeat(5000)}`,
];

/**
 * Headers for a request with `apiKey`: usually right, sometimes with a bad content type,
 * a bad or missing key, or odd extras (accept, encodings, huge values, raw bytes).
 */
export function fuzzHeaders(
  rng: Prng,
  apiKey: string,
  hasBody: boolean,
): { headers: Array<[string, string]>; label: string } {
  const headers: Array<[string, string]> = [];
  const notes: string[] = [];
  const auth = rng.int(10);
  if (auth === 0) notes.push('no auth');
  else if (auth === 1) {
    const bad = rng.pick([
      'Bearer',
      'Bearer ',
      `Basic ${apiKey}`,
      `Bearer ${apiKey}x`,
      `Bearer ${'k'.repeat(9000)}`,
      'Bearer \u00ff\u00fe',
      `bearer   ${apiKey}  `,
    ]);
    headers.push(['authorization', bad]);
    notes.push(`auth ${JSON.stringify(bad.slice(0, 40))}`);
  } else headers.push(['authorization', `Bearer ${apiKey}`]);
  if (hasBody || rng.chance(0.1)) {
    const ct = rng.chance(0.75) ? 'application/json' : rng.pick(CONTENT_TYPES);
    if (ct !== '' || rng.chance(0.5)) headers.push(['content-type', ct]);
    if (ct !== 'application/json') notes.push(`content-type ${JSON.stringify(ct.slice(0, 40))}`);
  }
  if (rng.chance(0.15)) {
    const extra = rng.pick<[string, string]>([
      ['accept', 'text/html'],
      ['accept', 'application/xml'],
      ['accept-encoding', 'gzip, br'],
      ['content-encoding', 'gzip'],
      ['idempotency-key', ''],
      ['idempotency-key', 'k'.repeat(256)],
      ['idempotency-key', '\u00e9\u00ff'],
      ['x-forwarded-for', 'not-an-ip'],
      ['x-large', 'v'.repeat(8000)],
      ['expect', '100-continue'],
    ]);
    headers.push(extra);
    notes.push(`${extra[0]}: ${JSON.stringify(extra[1].slice(0, 20))}`);
  }
  return { headers, label: notes.join(', ') };
}

/**
 * Sends `req` over a fresh connection exactly as given (HTTP/1.1, `connection: close`,
 * a correct `content-length` unless the request sets its own) and reads the whole answer.
 * Rejects when the server closes without an answer or does not answer in `timeoutMs`.
 */
export function rawRequest(
  baseUrl: string,
  req: FuzzRequest,
  timeoutMs = 10_000,
): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  const lines = [`${req.method} ${req.path} HTTP/1.1`, `host: ${hostname}:${port}`];
  for (const [k, v] of req.headers) lines.push(`${k}: ${v}`);
  if (req.body !== undefined && !req.headers.some(([k]) => k.toLowerCase() === 'content-length'))
    lines.push(`content-length: ${req.body.length}`);
  lines.push('connection: close', '', '');
  const head = Buffer.from(lines.join('\r\n'), 'latin1');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: hostname, port: Number(port) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => {
      socket.write(head);
      if (req.body !== undefined) socket.write(req.body);
    });
    socket.on('data', (b: Buffer) => chunks.push(b));
    // The server may reset after answering (a request it refused mid-body): keep the answer.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (err) {
        reject(err);
      }
    });
  });
}

/** Whether `res` is the load-shedding answer (503 `overloaded`, `Retry-After`), not the input's. */
function isShed(res: RawResponse): boolean {
  if (res.status !== 503) return false;
  try {
    const body = JSON.parse(res.body.toString('utf8')) as { error?: { message?: unknown } };
    return String(body.error?.message ?? '').startsWith('overloaded');
  } catch {
    return false;
  }
}

/**
 * {@link rawRequest}, sent again after `Retry-After` while the app sheds load (what a client
 * is told to do): on a loaded machine an app may answer 503 `overloaded` to any request,
 * and that answer says nothing of how it handles the input. Gives up after `attempts`.
 */
async function fuzzRequest(
  baseUrl: string,
  req: FuzzRequest,
  timeoutMs = 10_000,
  attempts = 10,
): Promise<RawResponse & { shed: number }> {
  for (let shed = 0; ; shed++) {
    const res = await rawRequest(baseUrl, req, timeoutMs);
    if (!isShed(res) || shed + 1 >= attempts) return { ...res, shed };
    const after = Number(res.headers['retry-after'] ?? 1);
    await new Promise((r) => setTimeout(r, Math.min(after, 5) * 1_000));
  }
}

function parseResponse(raw: Buffer): RawResponse {
  // Skip interim answers (`100 Continue` to `expect: 100-continue`).
  while (/^HTTP\/1\.[01] 1\d\d /.test(raw.subarray(0, 16).toString('latin1'))) {
    const end = raw.indexOf('\r\n\r\n');
    if (end < 0) break;
    raw = raw.subarray(end + 4);
  }
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`closed without an answer (${raw.length} bytes)`);
  const [statusLine, ...headerLines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!m) throw new Error(`not an HTTP answer: ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (headers['transfer-encoding']?.includes('chunked')) body = dechunk(body);
  else if (headers['content-length'] !== undefined)
    body = body.subarray(0, Number(headers['content-length']));
  return { status: Number(m[1]), headers, body };
}

function dechunk(b: Buffer): Buffer {
  const parts: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = b.indexOf('\r\n', i);
    if (eol < 0) break;
    const size = Number.parseInt(b.subarray(i, eol).toString('latin1'), 16);
    if (!(size > 0)) break;
    parts.push(b.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/**
 * What is wrong with an answer, or null: a status outside 2xx and 4xx, or a 4xx that is
 * not JSON `{ error: { code, message, details? } }` with `code` among `codes`.
 */
export function errorShapeProblem(res: RawResponse, codes: ReadonlySet<string>): string | null {
  if (res.status >= 200 && res.status < 300) return null;
  if (res.status < 400 || res.status >= 500) return `status ${res.status}`;
  if (!/^application\/json/.test(res.headers['content-type'] ?? ''))
    return `${res.status} with content-type ${res.headers['content-type']}`;
  let body: unknown;
  try {
    body = JSON.parse(res.body.toString('utf8'));
  } catch {
    return `${res.status} with a body that is not JSON`;
  }
  const error = (body as { error?: unknown } | null)?.error as Record<string, unknown> | undefined;
  const keys = body && typeof body === 'object' ? Object.keys(body) : [];
  if (
    !error ||
    typeof error !== 'object' ||
    keys.length !== 1 ||
    typeof error.code !== 'string' ||
    !codes.has(error.code) ||
    typeof error.message !== 'string' ||
    Object.keys(error).some((k) => k !== 'code' && k !== 'message' && k !== 'details')
  )
    return `${res.status} not in the error shape: ${res.body.toString('utf8').slice(0, 200)}`;
  return null;
}

/** True when `s` holds a lone surrogate (not well-formed Unicode). */
export const hasLoneSurrogate = (s: string): boolean => /\p{Surrogate}/u.test(s);

/** A generated request and whether a 2xx answer is right for what it sends (the oracle). */
export type FuzzCase = FuzzRequest & { acceptable: (body: unknown) => boolean };

/** The oracle's reading of a body: UTF-8 JSON (BOM allowed, as Fastify allows it), or undefined. */
function decodeFuzzBody(body: Buffer | undefined): unknown {
  if (body === undefined) return undefined;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(body).replace(/^\uFEFF/, '');
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Sends every case (8 at a time) and returns the problems: an answer outside the error
 * shape or its codes, or a 2xx for input the oracle refuses, or no answer. Logs the
 * statuses seen, and each problem with the seed that replays the run.
 */
export async function runFuzz(options: {
  name: string;
  baseUrl: string;
  cases: readonly FuzzCase[];
  codes: ReadonlySet<string>;
  seed: number;
  timeoutMs?: number;
}): Promise<string[]> {
  const { name, baseUrl, cases, codes, seed } = options;
  const failures: string[] = [];
  const statuses = new Map<number, number>();
  // Answers of load shedding (503 overloaded), sent again after Retry-After.
  let shed = 0;
  await runPool(cases, 8, async (c, i) => {
    let problem: string | null;
    try {
      const res = await fuzzRequest(baseUrl, c, options.timeoutMs);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      shed += res.shed;
      problem = errorShapeProblem(res, codes);
      if (!problem && res.status < 300 && !c.acceptable(decodeFuzzBody(c.body)))
        problem = `${res.status} for input the schema refuses: ${c.body?.toString('utf8').slice(0, 200)}`;
    } catch (err) {
      problem = `${(err as Error).message}: ${c.body?.toString('utf8').slice(0, 200)} ${JSON.stringify(c.headers).slice(0, 200)}`;
    }
    if (problem) failures.push(`#${i} ${problem}\n    ${c.label}`);
  });
  console.log(
    `${name} fuzz: statuses ${JSON.stringify(Object.fromEntries(statuses))}, ${shed} shed and sent again`,
  );
  if (failures.length > 0) console.log(`${name} fuzz: seed ${seed}\n${failures.join('\n')}`);
  return failures;
}
