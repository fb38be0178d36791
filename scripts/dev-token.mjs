#!/usr/bin/env node
// Prints a development client token: `npm run token -- <userId> [ttlSeconds]`.
// Signs with AUTH_JWT_SECRET, or the development secret that `npm start` uses.
import { SignJWT } from 'jose';
import { DEV_SECRETS } from './dev-secrets.mjs';

const [userId, ttl = '86400'] = process.argv.slice(2);
if (!userId) {
  console.error('usage: npm run token -- <userId> [ttlSeconds]');
  process.exit(2);
}
const secret = process.env.AUTH_JWT_SECRET || DEV_SECRETS.jwtSecret;
const now = Math.floor(Date.now() / 1000);
const token = await new SignJWT({})
  .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
  .setSubject(userId)
  .setIssuedAt(now)
  .setExpirationTime(now + Number(ttl))
  .sign(new TextEncoder().encode(secret));
console.log(token);
