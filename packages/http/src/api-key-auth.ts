/**
 * Bearer API-key authentication. Keys are compared as SHA-256 digests in constant time,
 * and several keys can be valid at once (rotation). Routes opt out with
 * `config: { public: true }`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from './api-error.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** No API key needed (health, metrics, docs). */
    public?: boolean;
  }
  interface FastifyRequest {
    /**
     * Which configured key authenticated the request: the first 16 hex digits of its
     * SHA-256 (stable across reorderings of API_KEYS, and no secret). Rate limits, message
     * status and idempotency keys are per key id.
     */
    apiKeyId?: string;
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Returns a checker that gives the index of the presented key among `keys`, or -1. */
export function apiKeyChecker(keys: readonly string[]): (presented: string) => number {
  const digests = keys.map(digest);
  return (presented) => {
    const d = digest(presented);
    let found = -1;
    // Compare against every key so timing does not tell which one matched.
    digests.forEach((k, i) => {
      if (timingSafeEqual(k, d)) found = i;
    });
    return found;
  };
}

/** The public id of an API key: the first 16 hex digits of its SHA-256. */
export function apiKeyIdOf(key: string): string {
  return digest(key).toString('hex').slice(0, 16);
}

export const apiKeyAuth = fp<{ keys: readonly string[] }>(
  async (app: FastifyInstance, opts) => {
    const check = apiKeyChecker(opts.keys);
    const ids = opts.keys.map(apiKeyIdOf);
    app.addHook('onRequest', async (req) => {
      if (req.routeOptions.config?.public === true) return;
      // Unknown routes are 404 for everyone; only real routes need a key.
      if (req.routeOptions.url === undefined) return;
      const header = req.headers.authorization;
      const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
      const index = m ? check(m[1]!) : -1;
      if (index < 0) throw ApiError.unauthorized();
      req.apiKeyId = ids[index];
    });
  },
  { name: 'switchboard-api-key-auth' },
);
