import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { apiKeys, DevSecrets, durationMs, natsServers, port } from '../../src/fields.js';
import { ConfigError, readEnv } from '../../src/load.js';

describe('config', () => {
  const shape = {
    PORT: port(3000),
    NATS_URL: natsServers,
    LEASE_TTL_MS: durationMs(10_000, 1_000),
  };

  it('config - defaults apply to unset and empty variables', () => {
    expect(readEnv(shape, { PORT: '' })).toEqual({
      PORT: 3000,
      NATS_URL: ['nats://127.0.0.1:4222'],
      LEASE_TTL_MS: 10_000,
    });
  });

  it('config - NATS_URL takes the comma-separated servers of a cluster', () => {
    expect(
      readEnv(shape, { NATS_URL: 'nats://a:4222, nats://b:4222,nats://c:4222' }).NATS_URL,
    ).toEqual(['nats://a:4222', 'nats://b:4222', 'nats://c:4222']);
  });

  it('config - a bad value names the variable', () => {
    const err = (() => {
      try {
        readEnv(shape, { PORT: 'eighty', LEASE_TTL_MS: '5' });
      } catch (e) {
        return e;
      }
    })() as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.issues.map((i) => i.variable).sort()).toEqual(['LEASE_TTL_MS', 'PORT']);
    expect(err.message).toMatch(/PORT:/);
  });

  it('config - a missing required variable says it is required', () => {
    expect(() => readEnv({ API_KEYS: apiKeys(false) }, {})).toThrow(/API_KEYS: is required/);
  });

  it('config - development secrets are refused with NODE_ENV=production', () => {
    const shape2 = { API_KEYS: apiKeys(true) };
    expect(() => readEnv(shape2, { API_KEYS: DevSecrets.apiKey })).toThrow(
      /API_KEYS: is a development secret/,
    );
    expect(readEnv(shape2, { API_KEYS: 'a-real-production-key-123' }).API_KEYS).toEqual([
      'a-real-production-key-123',
    ]);
    expect(readEnv({ API_KEYS: apiKeys(false) }, { API_KEYS: DevSecrets.apiKey }).API_KEYS).toEqual(
      [DevSecrets.apiKey],
    );
  });

  it('config - a short secret is refused', () => {
    expect(() => readEnv({ K: apiKeys(false) }, { K: 'short' })).toThrow(/at least 16/);
    expect(() => readEnv({ N: z.coerce.number().int() }, { N: '1.5' })).toThrow(ConfigError);
  });

  it('config - the dev secrets of npm start are the ones refused in production', async () => {
    const { DEV_SECRETS } = await import('../../../../scripts/dev-secrets.mjs');
    expect(DEV_SECRETS).toEqual(DevSecrets);
  });

  it('config - a set but invalid value says what was wrong, not that it is required, and never echoes it', () => {
    expect(() => readEnv({ PORT: port(3000) }, { PORT: 'abc' })).toThrow(
      /PORT: Invalid input: expected number/,
    );
    expect(() => readEnv({ K: apiKeys(false) }, { K: 'short-secret' })).not.toThrow(/short-secret/);
  });
});
