import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { InvalidTokenError, TokenVerifier } from '../src/token-verifier.js';

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
      expect(await verifier.verify(await sign(alg, privateKey))).toBe('user-1');
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
    expect(await verifier.verify(good)).toBe('u');
    await expect(verifier.verify(await sign('HS256', key, 'u'))).rejects.toThrow(InvalidTokenError);
  });
});
