import { describe, expect, it } from 'vitest';
import { RESERVED_EVENT_NAMES, SendMessageRequest } from '../../src/message.js';
import { fallbackSubject, nodeSubject } from '../../src/subjects.js';

describe('protocol schemas', () => {
  it('send request - defaults ack to false and ackTimeoutMs to 5000', () => {
    expect(SendMessageRequest.parse({ to: '1', event: 'dm.new' })).toEqual({
      to: '1',
      event: 'dm.new',
      ack: false,
      ackTimeoutMs: 5000,
    });
  });

  it('send request - every reserved Socket.IO name is refused as event', () => {
    for (const event of RESERVED_EVENT_NAMES) {
      expect(SendMessageRequest.safeParse({ to: '1', event }).success, event).toBe(false);
    }
  });

  it('send request - a user id is limited by UTF-8 bytes, not characters', () => {
    expect(SendMessageRequest.safeParse({ to: 'a'.repeat(256), event: 'e' }).success).toBe(true);
    expect(SendMessageRequest.safeParse({ to: 'é'.repeat(128), event: 'e' }).success).toBe(true);
    expect(SendMessageRequest.safeParse({ to: 'é'.repeat(129), event: 'e' }).success).toBe(false);
  });

  it('subjects - node and fallback subjects', () => {
    expect(nodeSubject('edge-1')).toBe('push.v1.node.edge-1');
    expect(fallbackSubject('bob@x.io')).toBe('push.v1.fallback.bob=40x=2Eio');
  });
});
