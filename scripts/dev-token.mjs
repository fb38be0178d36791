#!/usr/bin/env node
// Prints a development client token: `npm run token -- <userId> [ttlSeconds]`.
// Signs with AUTH_JWT_SECRET, or the development secret that `npm start` uses.
import { mintDevToken } from './dev-secrets.mjs';

const [userId, ttl = '86400'] = process.argv.slice(2);
if (!userId) {
  console.error('usage: npm run token -- <userId> [ttlSeconds]');
  process.exit(2);
}
console.log(await mintDevToken(userId, Number(ttl)));
