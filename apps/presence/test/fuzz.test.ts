/**
 * Seeded fuzz of the presence API over real HTTP: generated invalid paths, query bodies and
 * headers. Every answer is 2xx (only for input that is valid) or 4xx in the documented error
 * shape; never 5xx, and the service still serves afterwards. `FUZZ_SEED=<seed>` replays a
 * run, `FUZZ_CASES=<n>` sizes it.
 */

import { ErrorCodes, PresenceQueryRequest } from '@switchboard/protocol';
import {
  anyJson,
  deepJson,
  encodeBody,
  type FuzzCase,
  fuzzHeaders,
  fuzzSettings,
  hasLoneSurrogate,
  hostileString,
  http,
  mutate,
  Prng,
  pathSegment,
  runFuzz,
} from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, PresenceRig } from './support.js';

const { seed, cases } = fuzzSettings(process.env, 2_000);
const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCodes));

type Case = FuzzCase;

const validQuery = (rng: Prng): Record<string, unknown> => ({
  userIds: Array.from({ length: rng.between(1, 5) }, (_, i) => `user-${i}`),
});

const queryOk = (body: unknown) =>
  PresenceQueryRequest.safeParse(body).success &&
  (body as { userIds: string[] }).userIds.every((id) => !hasLoneSurrogate(id));

function queryBody(rng: Prng): { body: Buffer; label: string } {
  switch (rng.int(12)) {
    case 0: {
      const depth = rng.pick([63, 64, 1_000, 30_000]);
      return {
        body: Buffer.from(deepJson(depth, rng.chance(0.5) ? 'array' : 'object')),
        label: `nested ${depth} deep`,
      };
    }
    case 1:
      return {
        body: Buffer.from(
          JSON.stringify({ userIds: Array.from({ length: rng.pick([1_000, 1_001]) }, String) }),
        ),
        label: 'many ids',
      };
    case 2:
      return {
        body: Buffer.from(JSON.stringify({ userIds: ['x'.repeat(300 * 1024)] })),
        label: 'body over the limit',
      };
    case 3: {
      const id = hostileString(rng);
      return {
        body: Buffer.from(JSON.stringify({ userIds: ['ok', id] })),
        label: `id ${JSON.stringify(id.slice(0, 40))}`,
      };
    }
    case 4:
      return { body: Buffer.from(JSON.stringify(anyJson(rng))), label: 'any JSON' };
    default: {
      const v = validQuery(rng);
      return { body: encodeBody(rng, rng.chance(0.8) ? mutate(rng, v) : v), label: 'mutated' };
    }
  }
}

function generate(rng: Prng): Case {
  const route = rng.int(6);
  const auth = fuzzHeaders(rng, API_KEY, route >= 3 && route < 5);
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
  switch (route) {
    case 0:
    case 1:
    case 2:
      return make(
        'GET',
        `/v1/presence/${pathSegment(rng)}${rng.chance(0.1) ? `?userId=${pathSegment(rng)}` : ''}`,
        undefined,
        () => true,
      );
    case 3:
    case 4:
      return make('POST', '/v1/presence/query', queryBody(rng), queryOk);
    default: {
      const method = rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
      const path = rng.pick([
        `/v1/presence/${pathSegment(rng)}/${pathSegment(rng)}`,
        '/v1/presence/query',
        '/v1/presence',
        `/v1/${pathSegment(rng)}`,
        `/${hostileString(rng).replace(/[^\x21-\x7e]/g, '_')}`,
        `/healthz?${'q'.repeat(rng.pick([10, 17_000]))}`,
      ]);
      return make(method, path, rng.chance(0.4) ? queryBody(rng) : undefined, () => true);
    }
  }
}

describe('presence fuzz', () => {
  let rig: PresenceRig;
  beforeAll(async () => {
    rig = await PresenceRig.start();
  });
  afterAll(() => rig?.close());

  it(`fuzz - ${cases} generated requests get 2xx or a documented 4xx, never 5xx (seed ${seed})`, async () => {
    console.log(`presence fuzz: seed ${seed}, ${cases} cases (FUZZ_SEED=${seed} to replay)`);
    const rng = new Prng(seed);
    const all = Array.from({ length: cases }, () => generate(rng));
    const failures = await runFuzz({
      name: 'presence',
      baseUrl: rig.presence.url,
      cases: all,
      codes: CODES,
      seed,
    });
    expect(failures.slice(0, 20), `seed ${seed}: ${failures.length} failures`).toEqual([]);

    // Still alive and serving.
    expect((await http(`${rig.presence.url}/healthz`)).status).toBe(200);
    const view = await rig.get('/v1/presence/after-fuzz');
    expect(view.status).toBe(200);
    expect(await view.json()).toMatchObject({ userId: 'after-fuzz', online: false });
  }, 120_000);
});
