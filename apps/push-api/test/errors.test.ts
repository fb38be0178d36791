import { http, type TestResponse } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, SECOND_API_KEY, Stack } from './support/stack.js';

type ErrorJson = { error: { code: string; message: string; details?: Array<{ field: string }> } };

describe('push-api errors', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 1, env: { BODY_LIMIT_BYTES: String(1024 * 1024) } });
  });
  afterAll(() => stack?.close());

  const expectError = async (
    res: TestResponse,
    status: number,
    code: string,
  ): Promise<ErrorJson> => {
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const body = (await res.json()) as ErrorJson;
    expect(body.error.code).toBe(code);
    expect(typeof body.error.message).toBe('string');
    return body;
  };

  it('auth - a missing, malformed or unknown API key gets 401', async () => {
    const body = { to: 'u', event: 'e' };
    await expectError(
      await stack.post('/v1/messages', body, { authorization: '' }),
      401,
      'unauthorized',
    );
    await expectError(
      await stack.post('/v1/messages', body, { authorization: 'Basic abc' }),
      401,
      'unauthorized',
    );
    await expectError(
      await stack.post('/v1/messages', body, { authorization: 'Bearer nope' }),
      401,
      'unauthorized',
    );
    await expectError(
      await stack.post('/v1/messages', body, { authorization: `Bearer ${API_KEY}x` }),
      401,
      'unauthorized',
    );
  });

  it('auth - every configured key works (rotation)', async () => {
    const res = await stack.post(
      '/v1/messages',
      { to: 'u', event: 'e' },
      { authorization: `Bearer ${SECOND_API_KEY}` },
    );
    expect(res.status).toBe(200);
  });

  it('validation - malformed JSON gets 400 bad_request', async () => {
    await expectError(await stack.post('/v1/messages', '{"to":'), 400, 'bad_request');
  });

  it('validation - a non-JSON content type gets 415', async () => {
    const res = await http(`${stack.apiUrl}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', authorization: `Bearer ${API_KEY}` },
      body: 'hello',
    });
    await expectError(res, 415, 'unsupported_media_type');
  });

  it.each([
    ['missing to', { event: 'e' }, 'body.to'],
    ['empty recipient list', { to: [], event: 'e' }, 'body.to'],
    ['empty user id', { to: '', event: 'e' }, 'body.to'],
    ['user id over 256 bytes', { to: 'é'.repeat(129), event: 'e' }, 'body.to'],
    ['missing event', { to: 'u' }, 'body.event'],
    ['reserved event connect', { to: 'u', event: 'connect' }, 'body.event'],
    ['reserved event disconnect', { to: 'u', event: 'disconnect' }, 'body.event'],
    ['reserved event error', { to: 'u', event: 'error' }, 'body.event'],
    ['event with spaces', { to: 'u', event: 'dm new' }, 'body.event'],
    [
      'ack timeout too small',
      { to: 'u', event: 'e', ack: true, ackTimeoutMs: 5 },
      'body.ackTimeoutMs',
    ],
    [
      'ack timeout too large',
      { to: 'u', event: 'e', ack: true, ackTimeoutMs: 600_000 },
      'body.ackTimeoutMs',
    ],
    ['unknown field', { to: 'u', event: 'e', priority: 'high' }, 'body'],
    ['bad fallback', { to: 'u', event: 'e', fallback: { title: 7 } }, 'body.fallback.title'],
    ['bad id', { to: 'u', event: 'e', id: 'has space' }, 'body.id'],
  ])('validation - %s gets 400 naming the field', async (_name, body, field) => {
    const err = await expectError(await stack.post('/v1/messages', body), 400, 'validation_failed');
    expect(err.error.details?.map((d) => d.field)).toContain(field);
  });

  it('validation - more than 10,000 recipients gets 400', async () => {
    const to = Array.from({ length: 10_001 }, (_, i) => `${i}`);
    const err = await expectError(
      await stack.post('/v1/messages', { to, event: 'e' }),
      400,
      'validation_failed',
    );
    expect(err.error.details?.map((d) => d.field)).toContain('body.to');
  });

  it('limits - a body over the limit gets 413', async () => {
    await expectError(
      await stack.post('/v1/messages', { to: 'u', event: 'e', data: 'x'.repeat(1024 * 1024) }),
      413,
      'payload_too_large',
    );
  });

  it('routes - an unknown route gets a JSON 404', async () => {
    await expectError(await stack.post('/v1/nope', {}), 404, 'not_found');
  });

  it('health - /healthz, /readyz and /metrics answer without a key', async () => {
    expect((await http(`${stack.apiUrl}/healthz`)).status).toBe(200);
    const ready = await http(`${stack.apiUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { nats: true } });
    const metrics = await (await http(`${stack.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/process_cpu_user_seconds_total/);
  });
});

describe('push-api docs', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 0 });
  });
  afterAll(() => stack?.close());

  it('docs - the OpenAPI document is generated from the zod schemas and public', async () => {
    const res = await http(`${stack.apiUrl}/docs/json`);
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/messages', '/v1/broadcast']),
    );
    expect(doc.components.schemas.SendMessageRequest.properties.to).toBeDefined();
    expect(doc.components.schemas.SendMessageRequest.example).toMatchObject({ event: 'dm.new' });
    expect((await http(`${stack.apiUrl}/docs`)).status).toBe(200);
    // Tidy: public routes need no key, identical request/response forms appear once, only
    // this app's schemas are listed, every response is described.
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.paths['/v1/messages'].post.security).toBeUndefined();
    expect(doc.components.schemas.ErrorInput).toBeUndefined();
    expect(doc.components.schemas.Error).toBeDefined();
    expect(doc.components.schemas.PresenceQueryResponse).toBeUndefined();
    expect(JSON.stringify(doc)).not.toContain('Default Response');
    expect(doc.paths['/v1/messages'].post.responses['200'].description).toBe(
      'OK: SendMessageResponse',
    );
  });
});
