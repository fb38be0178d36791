import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  ExpiredTokenError,
  InvalidTokenError,
  looksLikeJwt,
  MAX_TOKEN_LENGTH,
  TokenVerifier,
} from '../src/token-verifier.js';

const sign = (alg: string, key: Parameters<SignJWT['sign']>[0], sub = 'user-1') =>
  new SignJWT({})
    .setProtectedHeader({ alg })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 60)
    .sign(key);

describe('token verifier', () => {
  it.each([
    ['ec', 'ES256', { namedCurve: 'P-256' }],
    ['rsa', 'RS256', { modulusLength: 2048 }],
  ] as const)(
    'token verifier - %s public key: %s tokens pass, others fail',
    async (type, alg, params) => {
      const { privateKey, publicKey } = generateKeyPairSync(
        type as 'ec',
        params as { namedCurve: string },
      );
      const verifier = await TokenVerifier.create({
        publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      });
      expect((await verifier.verify(await sign(alg, privateKey))).userId).toBe('user-1');
      // A token signed with another key, or with HS256 and the public key as secret, is refused.
      const other = generateKeyPairSync(type as 'ec', params as { namedCurve: string }).privateKey;
      await expect(verifier.verify(await sign(alg, other))).rejects.toThrow(InvalidTokenError);
      const hs = await sign(
        'HS256',
        new TextEncoder().encode(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
      );
      await expect(verifier.verify(hs)).rejects.toThrow(InvalidTokenError);
    },
  );

  it('token verifier - issuer and audience are checked when configured', async () => {
    const secret = 'issuer-test-secret-issuer-test-secret-00';
    const verifier = await TokenVerifier.create({
      jwtSecret: secret,
      issuer: 'https://auth.example.com',
      audience: 'switchboard',
    });
    const key = new TextEncoder().encode(secret);
    const good = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u')
      .setIssuer('https://auth.example.com')
      .setAudience('switchboard')
      .setExpirationTime('1m')
      .sign(key);
    expect((await verifier.verify(good)).userId).toBe('u');
    await expect(verifier.verify(await sign('HS256', key, 'u'))).rejects.toThrow(InvalidTokenError);
  });

  it('token verifier - says when a token expires, and tells expired apart from invalid', async () => {
    const secret = 'expiry-test-secret-expiry-test-secret-00';
    const key = new TextEncoder().encode(secret);
    const verifier = await TokenVerifier.create({ jwtSecret: secret });
    const exp = Math.floor(Date.now() / 1000) + 90;
    const ok = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u')
      .setExpirationTime(exp)
      .sign(key);
    expect(await verifier.verify(ok)).toEqual({ userId: 'u', expiresAt: exp * 1000 });
    const old = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 5)
      .sign(key);
    await expect(verifier.verify(old)).rejects.toThrow(ExpiredTokenError);
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 5)
      .sign(new TextEncoder().encode('another-secret-another-secret-another'));
    const err = await verifier.verify(forged).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidTokenError);
    expect(err).not.toBeInstanceOf(ExpiredTokenError);
  });

  it('token verifier - the shape check takes compact JWTs only, and none too long', () => {
    expect(looksLikeJwt('eyJh.eyJz.c2ln')).toBe(true);
    expect(looksLikeJwt('eyJh.eyJz.')).toBe(true); // alg none still reaches the real check
    for (const bad of [
      undefined,
      42,
      '',
      'not-a-jwt',
      'a.b',
      'a b.c.d',
      `${'a'.repeat(MAX_TOKEN_LENGTH)}.bb.cc`,
    ])
      expect(looksLikeJwt(bad)).toBe(false);
  });
});
