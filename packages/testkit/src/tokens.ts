/** Client JWTs as an application backend would mint them. */
import { SignJWT } from 'jose';

export type MintTokenOptions = {
  /** The user id, the token's `sub`. */
  sub: string;
  secret: string;
  /** Seconds until expiry (default 3600); negative mints an expired token. */
  expiresInSeconds?: number;
  extraClaims?: Record<string, unknown>;
};

/** An HS256 token whose `sub` is the user id. */
export async function mintToken(options: MintTokenOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...options.extraClaims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresInSeconds ?? 3600))
    .sign(new TextEncoder().encode(options.secret));
}
