/**
 * The client tests' rig: the push API's real test stack (nats-server, edges, push API) and,
 * for the demo, the presence service next to it; helpers that record a client's states.
 */
import {
  type ClientOptions,
  createClient,
  type EventMap,
  type RefreshOutcome,
  type StateChange,
  type SwitchboardClient,
} from '@switchboard/client';
import { loadConfig as loadPresenceConfig } from '@switchboard/presence/config';
import { type RunningPresence, startPresence } from '@switchboard/presence/start-presence';
import { waitFor } from '@switchboard/testkit';
import { API_KEY, log, type Stack } from '../../../apps/push-api/test/support/stack.js';

export {
  API_KEY,
  SECRET,
  Stack,
  type StackOptions,
} from '../../../apps/push-api/test/support/stack.js';

/** The presence service on its own port, on the stack's NATS, with the stack's API key. */
export function startStackPresence(stack: Stack, apiKeys = API_KEY): Promise<RunningPresence> {
  return startPresence(
    loadPresenceConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      NATS_URL: stack.nats.url,
      API_KEYS: apiKeys,
      LEASE_TTL_MS: String(stack.leaseTtlMs),
    }),
    log,
  );
}

/** A client with everything it reports recorded. */
export type Recorded<E extends EventMap = EventMap> = {
  client: SwitchboardClient<E>;
  states: StateChange[];
  refreshes: RefreshOutcome[];
  errors: unknown[];
};

export function recordedClient<E extends EventMap = EventMap>(options: ClientOptions): Recorded<E> {
  const states: StateChange[] = [];
  const refreshes: RefreshOutcome[] = [];
  const errors: unknown[] = [];
  const client = createClient<E>({
    ...options,
    autoConnect: false,
    onError: (err) => errors.push(err),
  });
  client.onState((s) => states.push(s));
  client.onRefresh((r) => refreshes.push(r));
  if (options.autoConnect !== false) client.connect();
  return { client, states, refreshes, errors };
}

export async function connected(r: Recorded<EventMap>, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => r.client.state === 'connected', {
    timeoutMs,
    message: () => `not connected; states ${JSON.stringify(r.states)}`,
  });
}
