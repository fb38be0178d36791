/**
 * The contract "once the client sees `connect`, the user is routable": clients that send
 * to themselves through the push API from their `connect` handler are all delivered. (That
 * the edge completes a handshake only once the presence write is stored, with JetStream
 * slowed: apps/edge/test/handshake.test.ts.)
 */
import { collect, mintToken, type Received, waitFor } from '@switchboard/testkit';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET, Stack } from './support/stack.js';

const CLIENTS = 200;

describe('send on connect', () => {
  let stack: Stack;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    stack = await Stack.start({ edges: 2 });
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await stack?.close();
  });

  it(`connect - ${CLIENTS} clients each sending to themselves on 'connect' are all delivered, and all receive`, async () => {
    const outcomes: Array<Record<string, unknown> | undefined> = [];
    const received: Received[][] = [];
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const userId = `eager-${i}`;
        const socket = io(stack.edgeUrl(i % 2), {
          auth: { token: await mintToken({ sub: userId, secret: SECRET }) },
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
        });
        sockets.push(socket);
        received[i] = collect(socket);
        await new Promise<void>((resolve, reject) => {
          socket.once('connect_error', reject);
          socket.once('connect', () => {
            // No wait of any kind: the first thing the app does after `connect`.
            void stack
              .post('/v1/messages', { to: userId, event: 'hello', data: { i } })
              .then(async (res) => {
                outcomes[i] = (await res.json()).results?.[0];
                resolve();
              }, reject);
          });
        });
      }),
    );
    const notDelivered = outcomes.filter((o) => o?.status !== 'delivered');
    expect(notDelivered).toEqual([]);
    await waitFor(() => received.every((r) => r.length === 1), {
      message: () =>
        `${received.filter((r) => r.length !== 1).length} clients without their message`,
    });
  });
});
