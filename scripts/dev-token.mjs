#!/usr/bin/env node
// Prints a development client token: `npm run token -- <userId> [ttlSeconds]`.
// Signs with AUTH_JWT_SECRET, or the development secret that `npm start` uses.
import { mintDevToken } from './dev-secrets.mjs';

const usage = 'usage: npm run token -- <userId> [ttlSeconds (1 to 31536000, default 86400)]';
const [userId, ttlText = '86400'] = process.argv.slice(2);
if (!userId) {
  console.error(usage);
  process.exit(2);
}
const ttl = Number(ttlText);
if (!/^\d+$/.test(ttlText) || ttl < 1 || ttl > 31_536_000) {
  console.error(
    `ttlSeconds must be a whole number of seconds from 1 to 31536000, not ${JSON.stringify(ttlText)}\n${usage}`,
  );
  process.exit(2);
}
try {
  console.log(await mintDevToken(userId, ttl));
} catch (err) {
  console.error(`could not mint a token: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
