/**
 * `@switchboard/client`: the Switchboard client for browsers and Node. Connects to an edge
 * with a token from `getToken()`, delivers messages to typed handlers, acks them, drops
 * duplicates, refreshes the token before it expires, and reconnects with jittered backoff.
 *
 * @example
 * import { createClient } from '@switchboard/client';
 *
 * const client = createClient<{ 'dm.new': { text: string } }>({
 *   url: 'https://edge.example.com',
 *   getToken: () => fetch('/api/switchboard-token').then((r) => r.text()),
 * });
 * client.onState(({ state }) => console.log(state));
 * client.on('dm.new', async (data, meta) => {
 *   await showMessage(data.text); // acked when this resolves, if the sender asked
 * });
 *
 * @packageDocumentation
 */
export { type BackoffOptions, backoffDelay, defaultBackoff, resolveBackoff } from './backoff.js';
export {
  type Ack,
  type AnyMessageHandler,
  type ClientOptions,
  type ConnectionState,
  createClient,
  type EventMap,
  type MessageHandler,
  type RefreshOutcome,
  type StateChange,
  type SwitchboardClient,
} from './client.js';
export {
  type CloseReason,
  CloseReasons,
  type ConnectError,
  ConnectErrors,
  ControlEvents,
  type MessageMeta,
  type RefreshResult,
} from './protocol.js';
export { tokenExpiresAt } from './token.js';
