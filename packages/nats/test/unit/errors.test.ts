/** Errors read by class and JetStream code: what counts as NATS being unavailable, and what does not. */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import {
  ClosedConnectionError,
  errors,
  NoRespondersError,
  TimeoutError,
} from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import {
  CasRetriesExhaustedError,
  isCasConflict,
  isConsumerNotFound,
  isNatsUnavailable,
  isStreamNotFound,
  RequestMuxClosedError,
  subjectCovers,
} from '../../src/index.js';

const apiError = (err_code: number, code = 404) =>
  new JetStreamApiError({ code, err_code, description: 'whatever the server says' });

describe('nats errors (unit)', () => {
  it('JetStream answers are told apart by code, not by their text', () => {
    expect(isStreamNotFound(apiError(JetStreamApiCodes.StreamNotFound))).toBe(true);
    expect(isStreamNotFound(apiError(JetStreamApiCodes.ConsumerNotFound))).toBe(false);
    expect(isConsumerNotFound(apiError(JetStreamApiCodes.ConsumerNotFound))).toBe(true);
    expect(isStreamNotFound(new Error('stream not found'))).toBe(false);
    expect(isCasConflict(apiError(JetStreamApiCodes.StreamWrongLastSequence, 400))).toBe(true);
    expect(isCasConflict(apiError(JetStreamApiCodes.StreamNotFound))).toBe(false);
  });

  it('NATS failing is unavailable; a bad argument or a bug of ours is not', () => {
    for (const err of [
      new TimeoutError(),
      new NoRespondersError('push.v1.node.e1'),
      new ClosedConnectionError(),
      apiError(JetStreamApiCodes.StreamNotFound),
      new CasRetriesExhaustedError('k', 8),
      new RequestMuxClosedError('push.v1.node.e1'),
    ])
      expect([err.name, isNatsUnavailable(err)]).toEqual([err.name, true]);
    for (const err of [
      new TypeError('x is undefined'),
      new Error('timeout'),
      new errors.InvalidSubjectError('a b'),
      new errors.InvalidArgumentError('bad'),
    ])
      expect([err.name, isNatsUnavailable(err)]).toEqual([err.name, false]);
  });

  it('subjectCovers: wildcards in the filter and in the subject', () => {
    expect(subjectCovers('status.v1.>', 'status.v1.batch.>')).toBe(true);
    expect(subjectCovers('status.v1.message.>', 'status.v1.batch.>')).toBe(false);
    expect(subjectCovers('a.*', 'a.>')).toBe(false);
    expect(subjectCovers('a.*', 'a.b')).toBe(true);
  });
});
