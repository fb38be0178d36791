/** The one interface every OS push provider implements, and the notification it sends. */
import type { Device, FallbackMessage } from '@switchboard/protocol';

/** What a provider says about one device. */
export type SendResult =
  | { outcome: 'accepted'; detail?: string }
  /** The token is dead (unregistered, bad token): the device is removed. Final. */
  | { outcome: 'invalid-token'; detail: string }
  /** Try again later (throttled, provider down, timeout); `retryAfterMs` from the provider. */
  | { outcome: 'retry'; detail: string; retryAfterMs?: number }
  /**
   * Refused for good for this message (bad payload, not configured, host not allowed). Final.
   * `invalid`: the notification itself cannot be sent on this platform (a header-bound field
   * out of bounds): the message is also dead-lettered with the detail, for someone to see.
   */
  | { outcome: 'rejected'; detail: string; invalid?: boolean };

export type PushProvider = {
  readonly platform: Device['platform'];
  /** Sends one message to one device; never throws: every failure is a {@link SendResult}. */
  send(device: Device, message: FallbackMessage): Promise<SendResult>;
  close(): Promise<void>;
};

/** Parses a `Retry-After` header (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(
  header: string | null | undefined,
  now = Date.now(),
): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** String-only data for providers that require it (FCM), with the message id and event. */
export function dataOf(message: FallbackMessage): Record<string, string> {
  return { ...(message.notification.data ?? {}), sbMessageId: message.id, sbEvent: message.event };
}
