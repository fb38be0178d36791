/**
 * The client tests' rig: testkit's {@link Stack} (nats-server, edges, the push API and, for
 * the demo, presence, each as its own process); helpers that record a client's states.
 */
import {
  type ClientOptions,
  createClient,
  type EventMap,
  type RefreshOutcome,
  type StateChange,
  type SwitchboardClient,
} from '@switchboard/client';
import { waitFor } from '@switchboard/testkit';

export {
  STACK_API_KEY as API_KEY,
  STACK_SECRET as SECRET,
  Stack,
  type StackOptions,
} from '@switchboard/testkit';

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
