import { http } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './support/stack.js';

describe('push-api errors', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 0, env: { BODY_LIMIT_BYTES: String(1024 * 1024) } });
  });
  afterAll(() => stack?.close());

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
