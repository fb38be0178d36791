import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import {
  findNatsServer,
  NatsCluster,
  NatsServer,
  NatsServerNotFoundError,
} from '../src/nats-server.js';

describe('testkit nats-server', () => {
  it('nats-server - starts on a free port (never 4222) with JetStream, and stops', async () => {
    const server = await NatsServer.start();
    expect(server.port).not.toBe(4222);
    const nc = await connect({ servers: server.url });
    const info = await (await jetstreamManager(nc)).getAccountInfo();
    expect(info.limits).toBeDefined();
    await nc.close();
    await server.stop();
    expect(server.running).toBe(false);
    await expect(
      connect({ servers: server.url, reconnect: false, timeout: 500 }),
    ).rejects.toThrow();
  });

  it('nats-server - restarts on the same port with its JetStream store', async () => {
    const server = await NatsServer.start();
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'KEEP', subjects: ['keep.>'] });
    await nc.close();
    await server.kill();
    await server.restart();
    const nc2 = await connect({ servers: server.url });
    expect((await (await jetstreamManager(nc2)).streams.info('KEEP')).config.name).toBe('KEEP');
    await nc2.close();
    await server.stop();
  });

  it('nats-server - a 3-node cluster replicates a stream R3', async () => {
    await using cluster = await NatsCluster.start({ size: 3 });
    const nc = await connect({ servers: cluster.urls });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.add({ name: 'R3', subjects: ['r3.>'], num_replicas: 3 });
    expect(info.config.num_replicas).toBe(3);
    expect((info.cluster?.replicas?.length ?? 0) + 1).toBe(3);
    await nc.close();
  });

  it('nats-server - a missing binary fails with an install hint', () => {
    expect(() => findNatsServer({ env: { PATH: '/nonexistent' }, extraDirs: [] })).toThrow(
      NatsServerNotFoundError,
    );
    expect(() => findNatsServer({ env: { PATH: '/nonexistent' }, extraDirs: [] })).toThrow(
      /apt-get install -y nats-server/,
    );
    expect(findNatsServer()).toMatch(/nats-server$/);
  });
});
