/**
 * A client given both edges' URLs survives the drain of the edge it is on: it reconnects to
 * the other (the drained one refuses with `draining`) and keeps receiving, acks included.
 */
import { mintToken, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connected, type Recorded, recordedClient, SECRET, Stack } from './support.js';

describe('client across an edge drain', () => {
  let stack: Stack;
  let r: Recorded<{ 'dm.new': { n: number } }> | undefined;

  beforeAll(async () => {
    stack = await Stack.start({ edges: 2 });
  });
  afterAll(async () => {
    r?.client.close();
    await stack?.close();
  });

  it('drain - the client moves to the other edge and keeps receiving', async () => {
    const urls = [stack.edgeUrl(0), stack.edgeUrl(1)];
    r = recordedClient({
      url: urls,
      getToken: () => mintToken({ sub: 'mover', secret: SECRET }),
      transports: ['websocket'],
      reconnect: { minDelayMs: 100, maxDelayMs: 1_000 },
    });
    const got: number[] = [];
    r.client.on('dm.new', (data) => {
      got.push(data.n);
    });
    await connected(r);
    expect(r.client.url).toBe(urls[0]);
    const send = async (n: number) => {
      const res = await stack.post('/v1/messages', {
        to: 'mover',
        event: 'dm.new',
        data: { n },
        ack: true,
        ackTimeoutMs: 3_000,
      });
      return (await res.json()).results;
    };
    expect(await send(1)).toEqual([{ userId: 'mover', status: 'delivered', connections: 1 }]);

    await stack.edges[0]!.stop();
    await waitFor(() => r!.client.url === urls[1], {
      message: () => `not on the other edge; states ${JSON.stringify(r!.states)}`,
    });
    expect(await send(2)).toEqual([{ userId: 'mover', status: 'delivered', connections: 1 }]);
    expect(got).toEqual([1, 2]);
    const lost = r.states.find((s) => s.state === 'reconnecting')!;
    expect(lost.reason).toBe('transport close');
    expect(lost.url).toBe(urls[1]);
    expect(lost.delayMs!).toBeGreaterThanOrEqual(100);
  });
});
