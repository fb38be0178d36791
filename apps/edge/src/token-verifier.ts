/**
 * TokenVerifier — stateless check of a client's JWT on connect (`jose`). The user id is
 * the `sub` claim; `exp` is required. HS256 with a shared secret, or RS256/ES256 with a
 * PEM public key or a JWKS URL.
 */

import { createPublicKey, webcrypto } from 'node:crypto';
import { MAX_USER_ID_BYTES, UserId } from '@switchboard/protocol';
import { createRemoteJWKSet, errors, importSPKI, type JWTVerifyGetKey, jwtVerify } from 'jose';

export class InvalidTokenError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'InvalidTokenError';
  }
}

/** A token that was valid but whose `exp` has passed: the client needs a fresh one. */
export class ExpiredTokenError extends InvalidTokenError {
  constructor(options?: ErrorOptions) {
    super('token expired', options);
    this.name = 'ExpiredTokenError';
  }
}

/** What a valid token says: whose it is and until when (ms since the epoch). */
export type VerifiedToken = { userId: string; expiresAt: number };

/** Longest a token may be: a JWT's three base64url parts; longer is refused unparsed. */
export const MAX_TOKEN_LENGTH = 8_192;
const JWT_SHAPE = /^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*$/;

/**
 * The cheap check before any admission budget or signature work: a string of at most
 * {@link MAX_TOKEN_LENGTH} characters shaped like a compact JWS.
 */
export function looksLikeJwt(token: unknown): token is string {
  return typeof token === 'string' && token.length <= MAX_TOKEN_LENGTH && JWT_SHAPE.test(token);
}

export type TokenVerifierOptions = {
  jwtSecret?: string;
  publicKeyPem?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
};

type Key = webcrypto.CryptoKey | JWTVerifyGetKey;

export class TokenVerifier {
  readonly #key: Key;
  readonly #algorithms: string[];
  readonly #issuer: string | undefined;
  readonly #audience: string | undefined;

  private constructor(key: Key, algorithms: string[], options: TokenVerifierOptions) {
    this.#key = key;
    this.#algorithms = algorithms;
    this.#issuer = options.issuer;
    this.#audience = options.audience;
  }

  static async create(options: TokenVerifierOptions): Promise<TokenVerifier> {
    if (options.jwksUrl) {
      return new TokenVerifier(
        createRemoteJWKSet(new URL(options.jwksUrl)),
        ['RS256', 'ES256'],
        options,
      );
    }
    // Keys are imported once as CryptoKeys: a raw secret or KeyObject is converted again on
    // every verification (13% of the edge's CPU in a connection storm, measured).
    if (options.publicKeyPem) {
      const alg =
        createPublicKey(options.publicKeyPem).asymmetricKeyType === 'ec' ? 'ES256' : 'RS256';
      return new TokenVerifier(
        (await importSPKI(options.publicKeyPem, alg)) as webcrypto.CryptoKey,
        [alg],
        options,
      );
    }
    if (options.jwtSecret) {
      const key = await webcrypto.subtle.importKey(
        'raw',
        new TextEncoder().encode(options.jwtSecret),
        { name: 'HMAC', hash: 'SHA-256' },
        false,
        ['verify'],
      );
      return new TokenVerifier(key, ['HS256'], options);
    }
    throw new Error('TokenVerifier needs a secret, a public key or a JWKS URL');
  }

  /**
   * The user id and expiry of a valid token; throws {@link ExpiredTokenError} for a token
   * whose `exp` has passed and {@link InvalidTokenError} for anything else wrong.
   */
  async verify(token: unknown): Promise<VerifiedToken> {
    if (typeof token !== 'string' || token.length === 0)
      throw new InvalidTokenError('missing token');
    if (!looksLikeJwt(token)) throw new InvalidTokenError('not a compact JWT');
    try {
      // One call for both kinds of key; jose accepts a CryptoKey and a key resolver alike.
      const { payload } = await jwtVerify(token, this.#key as unknown as Uint8Array, {
        algorithms: this.#algorithms,
        requiredClaims: ['sub', 'exp'],
        ...(this.#issuer ? { issuer: this.#issuer } : {}),
        ...(this.#audience ? { audience: this.#audience } : {}),
      });
      // The same rule as every user id the API takes: 1 to 256 bytes of well-formed
      // Unicode without control characters.
      const sub = UserId.safeParse(payload.sub);
      if (!sub.success) {
        throw new InvalidTokenError(
          `sub must be a user id of 1 to ${MAX_USER_ID_BYTES} bytes of well-formed Unicode without control characters`,
        );
      }
      return { userId: sub.data, expiresAt: (payload.exp as number) * 1000 };
    } catch (err) {
      if (err instanceof InvalidTokenError) throw err;
      if (err instanceof errors.JWTExpired) throw new ExpiredTokenError({ cause: err });
      throw new InvalidTokenError('token rejected', { cause: err });
    }
  }
}
