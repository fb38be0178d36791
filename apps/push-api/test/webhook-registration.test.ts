/** Webhook devices are checked against WEBHOOK_ALLOWED_HOSTS when they are registered. */
import { http } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, Stack } from './support/stack.js';

describe('webhook registration', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({
      edges: 0,
      env: { WEBHOOK_ALLOWED_HOSTS: 'hooks.example.com,hooks.example.com:8443' },
    });
  });
  afterAll(() => stack?.close());

  const put = (token: string) =>
    http(`${stack.apiUrl}/v1/users/w1/devices/hook-1`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ platform: 'webhook', token }),
    });

  it.each([
    ['another host', 'https://evil.example.net/hook'],
    ['an allowed host on another port', 'https://hooks.example.com:9000/hook'],
    ['credentials in the URL', 'https://user:pw@hooks.example.com/hook'],
  ])('webhooks - a URL with %s is refused with 400 naming the token', async (_, token) => {
    const res = await put(token);
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.error.code).toBe('validation_failed');
    expect(body.error.message).toMatch(/^token: /);
  });

  it('webhooks - an allowed host and port is registered', async () => {
    expect((await put('https://hooks.example.com/hook')).status).toBe(200);
    expect((await put('https://hooks.example.com:8443/hook')).status).toBe(200);
  });
});
