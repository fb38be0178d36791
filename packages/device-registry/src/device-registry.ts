/**
 * DeviceRegistry — a user's OS push devices in the `devices` bucket, one key per device:
 * `<userKey>.<deviceId>` → {@link Device}. Listing reads the user's keys by prefix.
 */
import type { KV } from '@nats-io/kv';
import type { Device, DeviceRegistration } from '@switchboard/protocol/devices';
import { deviceKey } from '@switchboard/protocol/subjects';
import { encodeUserKey } from '@switchboard/protocol/user-key';

export class DeviceRegistry {
  readonly #kv: KV;

  constructor(kv: KV) {
    this.#kv = kv;
  }

  /** Creates or replaces a device; returns the stored record. */
  async put(userId: string, deviceId: string, registration: DeviceRegistration): Promise<Device> {
    const device: Device = { deviceId, ...registration, updatedAt: Date.now() };
    await this.#kv.put(deviceKey(userId, deviceId), JSON.stringify(device));
    return device;
  }

  /** The device, or null. */
  async get(userId: string, deviceId: string): Promise<Device | null> {
    const e = await this.#kv.get(deviceKey(userId, deviceId));
    return e?.operation === 'PUT' ? e.json<Device>() : null;
  }

  /** Removes a device; false when there was none. */
  async remove(userId: string, deviceId: string): Promise<boolean> {
    const e = await this.#kv.get(deviceKey(userId, deviceId));
    if (e?.operation !== 'PUT') return false;
    await this.#kv.delete(deviceKey(userId, deviceId));
    return true;
  }

  /**
   * Removes a device only if it still has `token` (compare-and-set): a device that
   * re-registered with a new token since the provider rejected the old one is kept.
   */
  async removeIfToken(userId: string, deviceId: string, token: string): Promise<boolean> {
    const e = await this.#kv.get(deviceKey(userId, deviceId));
    if (e?.operation !== 'PUT' || e.json<Device>().token !== token) return false;
    try {
      await this.#kv.delete(deviceKey(userId, deviceId), { previousSeq: e.revision });
      return true;
    } catch {
      return false;
    }
  }

  /** Every device of the user, ordered by device id. */
  async list(userId: string): Promise<Device[]> {
    const keys: string[] = [];
    for await (const k of await this.#kv.keys(`${encodeUserKey(userId)}.*`)) keys.push(k);
    const devices = await Promise.all(keys.map((k) => this.#kv.get(k)));
    return devices
      .filter((e) => e?.operation === 'PUT')
      .map((e) => e!.json<Device>())
      .sort((a, b) => a.deviceId.localeCompare(b.deviceId));
  }
}
