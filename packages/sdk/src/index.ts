/**
 * `@switchboard/sdk`: the Switchboard client for backend services (Node 20+, no runtime
 * dependencies). Send, multicast and broadcast messages, read presence, manage the devices
 * OS push uses, and ask what happened to a message.
 *
 * @example
 * import { createSwitchboard, SwitchboardError } from '@switchboard/sdk';
 *
 * const sb = createSwitchboard({
 *   apiUrl: 'http://127.0.0.1:3000',
 *   presenceUrl: 'http://127.0.0.1:3001',
 *   apiKey: process.env.SWITCHBOARD_API_KEY!,
 * });
 * const { results } = await sb.send({ to: '42', event: 'dm.new', data: { text: 'hi' } });
 *
 * @packageDocumentation
 */
export {
  type CallOptions,
  createSwitchboard,
  type SendOptions,
  type Switchboard,
  type SwitchboardOptions,
} from './client.js';
export { SwitchboardError, SwitchboardNetworkError } from './errors.js';
export type { RetryOptions } from './retry.js';
export type * from './types.js';
