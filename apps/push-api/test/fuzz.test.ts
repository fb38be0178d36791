/**
 * Seeded fuzz of the push API over real HTTP: generated invalid bodies, headers and paths
 * against the messages, broadcast, status and devices routes. Every answer is 2xx (only
 * for input that is valid) or 4xx in the documented error shape; never 5xx, and the app
 * still serves afterwards. `FUZZ_SEED=<seed>` replays a run, `FUZZ_CASES=<n>` sizes it.
 */

import {
  DeviceId,
  DeviceRegistration,
  ErrorCodes,
  MessageId,
  SendMessageRequest,
  UserId,
} from '@switchboard/protocol';
import {
  anyJson,
  deepJson,
  encodeBody,
  errorShapeProblem,
  type FuzzCase,
  type FuzzRequest,
  fuzzHeaders,
  fuzzSettings,
  hasLoneSurrogate,
  hostileString,
  http,
  mutate,
  Prng,
  pathSegment,
  rawRequest,
  runFuzz,
} from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { API_KEY, Stack } from './support/stack.js';

const { seed, cases } = fuzzSettings(process.env, 3_000);
const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCodes));
const BODY_LIMIT = 64 * 1024;

type Case = FuzzCase;

const validSend = (rng: Prng): Record<string, unknown> => ({
  to: rng.chance(0.5) ? `user-${rng.int(50)}` : [`user-${rng.int(50)}`, 'alice@example.com'],
  event: 'dm.new',
  data: { text: 'hi', n: rng.int(100) },
  ...(rng.chance(0.3) ? { fallback: { title: 'New message', ttlSeconds: 60 } } : {}),
  ...(rng.chance(0.2) ? { ack: true, ackTimeoutMs: 100 } : {}),
});

const validDevice = (rng: Prng): Record<string, unknown> =>
  rng.pick([
    { platform: 'apns', token: 'a'.repeat(64), appId: 'com.example.app', sandbox: true },
    { platform: 'fcm', token: `fcm:${'t'.repeat(40)}` },
    { platform: 'webhook', token: 'https://example.com/hook' },
  ]);

const wellFormedIds = (v: unknown): boolean => {
  const to = (v as { to?: unknown }).to;
  const ids = Array.isArray(to) ? to : [to];
  return ids.every((id) => typeof id === 'string' && !hasLoneSurrogate(id));
};

const parses =
  (schema: z.ZodType, extra: (v: unknown) => boolean = () => true) =>
  (body: unknown) =>
    schema.safeParse(body).success && extra(body);

function bodyFor(rng: Prng, valid: Record<string, unknown>): { body: Buffer; label: string } {
  const kind = rng.int(20);
  if (kind === 0) {
    const depth = rng.pick([63, 64, 1_000, 10_000, 30_000]);
    const inner = deepJson(depth, rng.chance(0.5) ? 'array' : 'object');
    return {
      body: Buffer.from(`${JSON.stringify(valid).slice(0, -1)},"data":${inner}}`),
      label: `data nested ${depth} deep`,
    };
  }
  if (kind === 1) {
    const depth = rng.pick([1_000, 30_000]);
    return { body: Buffer.from(deepJson(depth, 'array')), label: `body nested ${depth} deep` };
  }
  if (kind === 2) {
    return {
      body: Buffer.from(JSON.stringify({ ...valid, data: 'x'.repeat(BODY_LIMIT + 1) })),
      label: 'body over the limit',
    };
  }
  if (kind === 3) {
    return {
      body: Buffer.from(JSON.stringify({ ...valid, to: Array.from({ length: 10_001 }, String) })),
      label: '10,001 recipients',
    };
  }
  if (kind === 4) {
    return {
      body: Buffer.from(JSON.stringify(anyJson(rng))),
      label: 'any JSON',
    };
  }
  if (kind === 5 && 'to' in valid) {
    const id = hostileString(rng);
    return {
      body: Buffer.from(JSON.stringify({ ...valid, to: rng.chance(0.5) ? id : ['ok', id] })),
      label: `to ${JSON.stringify(id.slice(0, 40))}`,
    };
  }
  const value = rng.chance(0.85) ? mutate(rng, valid) : valid;
  return { body: encodeBody(rng, value), label: 'mutated' };
}

function generate(rng: Prng): Case {
  const route = rng.int(10);
  const auth = fuzzHeaders(rng, API_KEY, route < 6);
  const make = (
    method: string,
    path: string,
    body: { body: Buffer; label: string } | undefined,
    acceptable: Case['acceptable'],
  ): Case => ({
    method,
    path,
    headers: auth.headers,
    ...(body ? { body: body.body } : {}),
    label: [`${method} ${path.slice(0, 120)}`, body?.label, auth.label].filter(Boolean).join(' | '),
    acceptable,
  });
  const seg = () => (rng.chance(0.6) ? pathSegment(rng) : `user-${rng.int(50)}`);
  switch (route) {
    case 0:
    case 1:
    case 2:
      return make(
        'POST',
        '/v1/messages',
        bodyFor(rng, validSend(rng)),
        parses(SendMessageRequest, wellFormedIds),
      );
    case 3:
      return make(
        'POST',
        '/v1/broadcast',
        bodyFor(rng, { event: 'system.notice', data: { a: 1 } }),
        parses(z.object({ event: z.string(), data: z.unknown().optional() })),
      );
    case 4:
    case 5: {
      const user = seg();
      const device = rng.chance(0.5) ? pathSegment(rng) : 'phone-1';
      return make(
        'PUT',
        `/v1/users/${user}/devices/${device}`,
        bodyFor(rng, validDevice(rng)),
        parses(DeviceRegistration),
      );
    }
    case 6:
      return make(
        'DELETE',
        `/v1/users/${seg()}/devices/${pathSegment(rng)}`,
        undefined,
        () => true,
      );
    case 7:
      return make('GET', `/v1/users/${seg()}/devices`, undefined, () => true);
    case 8:
      return make('GET', `/v1/messages/${pathSegment(rng)}`, undefined, () => true);
    default: {
      const method = rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']);
      const path = rng.pick([
        `/v1/${pathSegment(rng)}`,
        `/v1/messages/${pathSegment(rng)}/${pathSegment(rng)}`,
        `/${hostileString(rng).replace(/[^\x21-\x7e]/g, '_')}`,
        '//v1/messages',
        '/v1/messages?to=x',
        `/v1/messages?${'q'.repeat(rng.pick([100, 17_000]))}`,
        '/docs/static/%zz',
        `/docs/${'a'.repeat(2000)}`,
      ]);
      return make(method, path, rng.chance(0.3) ? bodyFor(rng, {}) : undefined, () => true);
    }
  }
}

describe('push-api fuzz', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({
      edges: 0,
      env: { BODY_LIMIT_BYTES: String(BODY_LIMIT), RATE_LIMIT_PER_MINUTE: '10000000' },
    });
  });
  afterAll(() => stack?.close());

  it(`fuzz - ${cases} generated requests get 2xx or a documented 4xx, never 5xx (seed ${seed})`, async () => {
    console.log(`push-api fuzz: seed ${seed}, ${cases} cases (FUZZ_SEED=${seed} to replay)`);
    const rng = new Prng(seed);
    const all = Array.from({ length: cases }, () => generate(rng));
    const failures = await runFuzz({
      name: 'push-api',
      baseUrl: stack.apiUrl,
      cases: all,
      codes: CODES,
      seed,
      timeoutMs: 5_000,
    });
    expect(failures.slice(0, 20), `seed ${seed}: ${failures.length} failures`).toEqual([]);

    // Still alive and serving.
    expect((await http(`${stack.apiUrl}/healthz`)).status).toBe(200);
    const ok = await stack.post('/v1/messages', { to: 'after-fuzz', event: 'dm.new' });
    expect(ok.status).toBe(200);
  }, 120_000);

  const AUTH: Array<[string, string]> = [['authorization', `Bearer ${API_KEY}`]];
  it.each<[string, FuzzRequest, number, string]>([
    [
      'a request line over 16 KiB',
      { method: 'GET', path: `/v1/messages/${'x'.repeat(20_000)}`, headers: AUTH, label: '' },
      431,
      'bad_request',
    ],
    [
      'a request line Node cannot parse',
      { method: 'GET', path: '/v1/messages/a\u00ff b', headers: AUTH, label: '' },
      400,
      'bad_request',
    ],
  ])('errors - %s gets %i %s in the error shape', async (_name, req, status, code) => {
    const res = await rawRequest(stack.apiUrl, req, 5_000);
    expect(res.status).toBe(status);
    expect(errorShapeProblem(res, CODES)).toBeNull();
    expect(JSON.parse(res.body.toString()).error.code).toBe(code);
  });

  it('fuzz - the oracle agrees with the schemas on a few hand-picked inputs', () => {
    expect(UserId.safeParse('a').success).toBe(true);
    expect(DeviceId.safeParse('phone-1').success).toBe(true);
    expect(MessageId.safeParse('m-1').success).toBe(true);
    expect(wellFormedIds({ to: ['a', 'a\uD800'] })).toBe(false);
    expect(wellFormedIds({ to: '😀' })).toBe(true);
  });
});
