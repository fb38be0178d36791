/**
 * The JSON body parser of every HTTP app: Fastify's own (prototype poisoning refused), after
 * two checks on the raw bytes that it does not make.
 */
import { isUtf8 } from 'node:buffer';
import { ErrorCodes } from '@switchboard/protocol';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './api-error.js';

/**
 * Deepest nesting of arrays and objects a body may have. Serializing code downstream
 * (`JSON.stringify`, fingerprints, Socket.IO) recurses: a 1 MiB body of brackets nests
 * 500,000 deep and overflows the stack, which would surface as a 5xx.
 */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = [0x5b, 0x7b]; // [ {
const CLOSE = [0x5d, 0x7d]; // ] }

/** True when the JSON text in `bytes` nests arrays and objects deeper than `max`; one pass, no parse. */
export function nestsDeeperThan(bytes: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) inString = true;
    else if (b === OPEN[0] || b === OPEN[1]) {
      if (++depth > max) return true;
    } else if (b === CLOSE[0] || b === CLOSE[1]) depth--;
  }
  return false;
}

/**
 * Replaces the `application/json` parser: a body that is not UTF-8 (RFC 8259; Fastify would
 * read invalid bytes as U+FFFD, so distinct user ids would arrive as one) or that nests
 * deeper than {@link MAX_JSON_DEPTH} gets 400 `bad_request`; anything else goes to
 * Fastify's parser.
 */
export function useJsonBodyParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const bytes = body as Buffer;
    if (!isUtf8(bytes)) {
      done(new ApiError(400, ErrorCodes.badRequest, 'the body is not valid UTF-8'), undefined);
      return;
    }
    if (nestsDeeperThan(bytes, MAX_JSON_DEPTH)) {
      done(
        new ApiError(
          400,
          ErrorCodes.badRequest,
          `the body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`,
        ),
        undefined,
      );
      return;
    }
    parseJson(req, bytes.toString('utf8'), done);
  });
}
