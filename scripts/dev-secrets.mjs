// The development secrets `npm start` hands to the apps, and the dev token and client use.
// Every app refuses them with NODE_ENV=production; packages/config's DevSecrets must equal
// these (a test checks it).
export const DEV_SECRETS = {
  apiKey: 'sb_dev_0000000000000000000000000000',
  jwtSecret: 'switchboard-dev-jwt-secret-do-not-use-in-production',
};

/** An HS256 client token for `userId`, signed with AUTH_JWT_SECRET or the dev secret. */
export async function mintDevToken(userId, ttlSeconds = 86_400) {
  const { SignJWT } = await import('jose');
  const secret = process.env.AUTH_JWT_SECRET || DEV_SECRETS.jwtSecret;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userId)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
}
