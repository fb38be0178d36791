/** LogProvider — prints what it would send. The default of `npm start`. */
import type { Device, FallbackMessage } from '@switchboard/protocol';
import type { Logger } from 'pino';
import type { PushProvider, SendResult } from './push-provider.js';

export class LogProvider implements PushProvider {
  readonly platform: Device['platform'];
  readonly #log: Logger;

  constructor(platform: Device['platform'], log: Logger) {
    this.platform = platform;
    this.#log = log;
  }

  async send(device: Device, message: FallbackMessage): Promise<SendResult> {
    this.#log.info(
      {
        platform: this.platform,
        deviceId: device.deviceId,
        id: message.id,
        userId: message.userId,
        notification: message.notification,
      },
      'would send OS push',
    );
    return { outcome: 'accepted', detail: 'logged' };
  }

  async close(): Promise<void> {}
}

/** Refuses every device of a platform that is not configured: visible in the status, never silent. */
export class UnconfiguredProvider implements PushProvider {
  readonly platform: Device['platform'];

  constructor(platform: Device['platform']) {
    this.platform = platform;
  }

  async send(): Promise<SendResult> {
    return { outcome: 'rejected', detail: `${this.platform} is not configured` };
  }

  async close(): Promise<void> {}
}
