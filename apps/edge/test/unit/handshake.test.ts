/**
 * The handshake's decisions, with the hub's index, presence and the verifier in memory:
 * each `connect_error` code and the order of the checks (what a refusal spends), the
 * client being routable at `connect` (the presence write before `next()`), leaving the
 * index on every way out, the expiry wheel and `$refresh`.
 */
import { waitFor } from '@switchboard/testkit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { clientAddress, Handshake, type HandshakeOptions } from '../../src/handshake.js';
import {
  FakeHub,
  FakePresence,
  FakeSocket,
  FakeVerifier,
  log,
  metricsRig,
  token,
} from './fakes.js';

const stops: Array<() => void> = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
  vi.restoreAllMocks();
});

function rig(
  config: Partial<HandshakeOptions['config']> = {},
  expiry?: HandshakeOptions['expiry'],
) {
  const hub = new FakeHub();
  const presence = new FakePresence();
  const verifier = new FakeVerifier();
  const { metrics, value } = metricsRig({ connections: () => hub.connections });
  const state = { draining: false };
  const handshake = new Handshake({
    config: {
      maxConnections: 1_000,
      maxConnectsPerSecond: 0,
      maxConnectsPerIpPerSecond: 0,
      trustProxy: false,
      tokenExpiryWarningMs: 30_000,
      ...config,
    },
    verifier,
    hub,
    presence,
    metrics,
    log,
    draining: () => state.draining,
    ...(expiry ? { expiry } : {}),
  });
  stops.push(() => handshake.stop());
  /** Runs one handshake to its end: the `connect_error` message, `connected`, or `no answer`. */
  const attempt = async (socket: FakeSocket) => {
    let outcome = 'no answer';
    await handshake.authenticate(socket.edge, (err) => {
      outcome = err?.message ?? 'connected';
    });
    if (outcome === 'connected') handshake.connected(socket.edge);
    return outcome;
  };
  const rejected = (reason: string) =>
    value('switchboard_edge_connections_rejected_total', { reason });
  return { handshake, hub, presence, verifier, state, value, attempt, rejected };
}

describe('handshake (unit)', () => {
  it('a valid token joins the index, is written to presence, then connects', async () => {
    const { hub, presence, attempt, value } = rig();
    const socket = new FakeSocket(token('alice'));
    expect(await attempt(socket)).toBe('connected');
    expect(socket.data.userId).toBe('alice');
    expect([...hub.index.get('alice')]).toEqual([socket]);
    expect(presence.sets).toEqual([['alice', 1]]);
    expect(await value('switchboard_edge_connections_accepted_total')).toBe(1);
    // On disconnect the socket leaves the index and its removal is written, once.
    socket.receive('disconnect', 'transport close');
    socket.conn.close();
    expect(hub.connections).toBe(0);
    expect(presence.sets).toEqual([
      ['alice', 1],
      ['alice', 0],
    ]);
  });

  it('the handshake completes only once the presence write is stored', async () => {
    const { presence, attempt } = rig();
    presence.writes = 'held';
    let outcome = '';
    const done = attempt(new FakeSocket(token('bob'))).then((o) => {
      outcome = o;
    });
    await waitFor(() => presence.waiting === 1);
    expect(outcome).toBe('');
    presence.settle(true);
    await done;
    expect(outcome).toBe('connected');
  });

  it('a presence write that fails is connect_error unavailable, and the socket leaves the index', async () => {
    const { hub, presence, attempt, rejected } = rig();
    presence.writes = 'failing';
    expect(await attempt(new FakeSocket(token('carol')))).toBe('unavailable');
    expect(hub.connections).toBe(0);
    expect(presence.sets).toEqual([
      ['carol', 1],
      ['carol', 0],
    ]);
    expect(await rejected('unavailable')).toBe(1);
  });

  it('a drain that starts while the write is waited on refuses with draining', async () => {
    const { hub, presence, state, attempt } = rig();
    presence.writes = 'held';
    const outcome = attempt(new FakeSocket(token('dave')));
    await waitFor(() => presence.waiting === 1);
    state.draining = true;
    presence.settle(true);
    expect(await outcome).toBe('draining');
    expect(hub.connections).toBe(0);
  });

  it('a transport closed during the wait leaves the index and gets no answer', async () => {
    const { hub, presence, attempt } = rig();
    presence.writes = 'held';
    const socket = new FakeSocket(token('erin'));
    const outcome = attempt(socket);
    await waitFor(() => presence.waiting === 1);
    socket.conn.close();
    expect(hub.connections).toBe(0);
    presence.settle(true);
    expect(await outcome).toBe('no answer');
    expect(presence.sets).toEqual([
      ['erin', 1],
      ['erin', 0],
    ]);
  });

  it('a transport closed while the token was checked never joins the index', async () => {
    const { hub, presence, verifier, attempt } = rig();
    const release = verifier.hold();
    const socket = new FakeSocket(token('fay'));
    const outcome = attempt(socket);
    socket.conn.readyState = 'closed';
    release();
    expect(await outcome).toBe('no answer');
    expect(hub.connections).toBe(0);
    expect(presence.sets).toEqual([]);
  });

  it('past the per-user cap (counted across the cluster) is too_many_connections', async () => {
    const { hub, presence, attempt, rejected } = rig();
    presence.cap = 2;
    presence.elsewhere.set('gus', 1);
    expect(await attempt(new FakeSocket(token('gus')))).toBe('connected');
    expect(await attempt(new FakeSocket(token('gus')))).toBe('too_many_connections');
    expect(hub.index.get('gus').size).toBe(1);
    expect(presence.sets.at(-1)).toEqual(['gus', 1]);
    expect(await rejected('too_many_connections')).toBe(1);
  });

  it.each([
    ['no token', 'unauthorized', undefined],
    ['junk', 'unauthorized', 'not-a-jwt'],
    ['a bad signature', 'unauthorized', token('forged')],
    ['an expired token', 'expired', token('expired')],
    ['a verifier failure', 'unauthorized', token('crash')],
  ])('%s is connect_error %s, counted by reason', async (_, reason, t) => {
    const { attempt, rejected, hub } = rig();
    const errors = vi.spyOn(log, 'error');
    expect(await attempt(new FakeSocket(t))).toBe(reason);
    expect(await rejected(reason)).toBe(1);
    expect(hub.connections).toBe(0);
    // Only an unexpected failure is logged as an error; a bad token is the client's.
    expect(errors).toHaveBeenCalledTimes(t === token('crash') ? 1 : 0);
  });

  it('junk is refused before any signature check or budget', async () => {
    const { attempt, verifier } = rig({ maxConnectsPerIpPerSecond: 1 });
    for (let i = 0; i < 5; i++) expect(await attempt(new FakeSocket('junk'))).toBe('unauthorized');
    expect(verifier.calls).toBe(0);
    // The address's burst (twice the rate) is untouched.
    expect(await attempt(new FakeSocket(token('h1')))).toBe('connected');
    expect(await attempt(new FakeSocket(token('h2')))).toBe('connected');
  });

  it('a draining node refuses with draining (not counted as a rejection)', async () => {
    const { attempt, state, verifier, rejected } = rig();
    state.draining = true;
    expect(await attempt(new FakeSocket(token('ivy')))).toBe('draining');
    expect(verifier.calls).toBe(0);
    expect(await rejected('draining')).toBe(0);
  });

  it('at the node connection cap: overloaded, before the token is checked', async () => {
    const { attempt, verifier } = rig({ maxConnections: 1 });
    expect(await attempt(new FakeSocket(token('jo')))).toBe('connected');
    const calls = verifier.calls;
    expect(await attempt(new FakeSocket(token('kim')))).toBe('overloaded');
    expect(verifier.calls).toBe(calls);
  });

  it('per address: JWT-shaped attempts past the rate are overloaded, other addresses are not', async () => {
    const { attempt, verifier } = rig({ maxConnectsPerIpPerSecond: 1 });
    // Burst 2: a forged token spends one, as a real one would.
    expect(await attempt(new FakeSocket(token('forged')))).toBe('unauthorized');
    expect(await attempt(new FakeSocket(token('lee')))).toBe('connected');
    const calls = verifier.calls;
    expect(await attempt(new FakeSocket(token('lee')))).toBe('overloaded');
    expect(verifier.calls).toBe(calls);
    expect(await attempt(new FakeSocket(token('lee'), { address: '10.0.0.2' }))).toBe('connected');
  });

  it('the node admission rate is spent by verified clients only', async () => {
    const { attempt } = rig({ maxConnectsPerSecond: 1 });
    for (let i = 0; i < 3; i++)
      expect(await attempt(new FakeSocket(token('forged')))).toBe('unauthorized');
    expect(await attempt(new FakeSocket(token('max')))).toBe('connected');
    expect(await attempt(new FakeSocket(token('max')))).toBe('overloaded');
  });

  it('the client address: the first X-Forwarded-For entry behind a trusted proxy only', () => {
    const behind = new FakeSocket(undefined, {
      address: '10.9.9.9',
      headers: { 'x-forwarded-for': ' 203.0.113.7 , 10.0.0.1' },
    });
    expect(clientAddress(behind.edge, true)).toBe('203.0.113.7');
    expect(clientAddress(behind.edge, false)).toBe('10.9.9.9');
    const listed = new FakeSocket(undefined, {
      address: '10.9.9.9',
      headers: { 'x-forwarded-for': ['198.51.100.1', '198.51.100.2'] },
    });
    expect(clientAddress(listed.edge, true)).toBe('198.51.100.1');
    const empty = new FakeSocket(undefined, {
      address: '10.9.9.9',
      headers: { 'x-forwarded-for': '' },
    });
    expect(clientAddress(empty.edge, true)).toBe('10.9.9.9');
  });

  it('expiry: a socket is warned, then closed with reason expired; one that left is not', async () => {
    let now = 1_000_000;
    const { handshake, hub, verifier, attempt } = rig(
      { tokenExpiryWarningMs: 1_000 },
      { tickMs: 5, clock: () => now },
    );
    verifier.expiries.set('nia', now + 2_000);
    verifier.expiries.set('gone', now + 2_000);
    const socket = new FakeSocket(token('nia'));
    const gone = new FakeSocket(token('gone'));
    expect(await attempt(socket)).toBe('connected');
    expect(await attempt(gone)).toBe('connected');
    gone.receive('disconnect', 'client namespace disconnect');
    handshake.start();
    expect(socket.sentOf('$expiring')).toEqual([]);
    now += 1_000;
    await waitFor(() => socket.sentOf('$expiring').length === 1);
    expect(socket.sentOf('$expiring')).toEqual([{ expiresAt: 1_002_000 }]);
    expect(hub.closed).toEqual([]);
    now += 1_000;
    await waitFor(() => hub.closed.length === 1);
    expect(hub.closed).toEqual([[socket, 'expired']]);
    expect(gone.sentOf('$expiring')).toEqual([]);
  });

  it('a token already inside the warning window is warned at connect', async () => {
    const { verifier, attempt } = rig({ tokenExpiryWarningMs: 60_000 });
    const expiresAt = Date.now() + 10_000;
    verifier.expiries.set('olga', expiresAt);
    const socket = new FakeSocket(token('olga'));
    expect(await attempt(socket)).toBe('connected');
    expect(socket.sentOf('$expiring')).toEqual([{ expiresAt }]);
  });

  it('$refresh: same user ok (new expiry), another user forbidden, expired, junk unauthorized', async () => {
    const { verifier, attempt, value } = rig();
    const socket = new FakeSocket(token('pat'));
    expect(await attempt(socket)).toBe('connected');
    // One turn after each answer: the socket takes the next refresh once the last one has
    // settled (a real client's next request arrives over the network, later still).
    const refresh = async (t: unknown) => {
      const answer = await new Promise<unknown>((resolve) =>
        socket.receive('$refresh', t, resolve),
      );
      await new Promise((r) => setImmediate(r));
      return answer;
    };
    expect(await refresh(token('someone-else'))).toEqual({ ok: false, error: 'forbidden' });
    expect(await refresh(token('expired'))).toEqual({ ok: false, error: 'expired' });
    expect(await refresh('garbage')).toEqual({ ok: false, error: 'unauthorized' });
    const later = Date.now() + 7_200_000;
    verifier.expiries.set('pat', later);
    expect(await refresh(token('pat'))).toEqual({ ok: true, expiresAt: later });
    expect(socket.data.expiresAt).toBe(later);
    for (const outcome of ['ok', 'forbidden', 'expired', 'unauthorized'])
      expect(await value('switchboard_edge_token_refreshes_total', { outcome })).toBe(1);
    // Without an ack function the refresh still happens; nothing is called.
    socket.receive('$refresh', token('pat'), 'not-a-function');
  });

  it('$refresh: one at a time per socket, a second meanwhile is unauthorized at once', async () => {
    const { verifier, attempt } = rig();
    const socket = new FakeSocket(token('quinn'));
    expect(await attempt(socket)).toBe('connected');
    const release = verifier.hold();
    const answers: unknown[] = [];
    socket.receive('$refresh', token('quinn'), (r: unknown) => answers.push(r));
    socket.receive('$refresh', token('quinn'), (r: unknown) => answers.push(r));
    expect(answers).toEqual([{ ok: false, error: 'unauthorized' }]);
    release();
    await waitFor(() => answers.length === 2);
    expect(answers[1]).toMatchObject({ ok: true });
    // Free again once answered.
    const third = await new Promise((r) => socket.receive('$refresh', token('quinn'), r));
    expect(third).toMatchObject({ ok: true });
  });
});
