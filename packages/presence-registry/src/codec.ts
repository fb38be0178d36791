/** JSON encoding of KV values, shared by the writers and readers of presence. */
import { decodeUserKey, UserEntry } from '@switchboard/protocol';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const encodeJson = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));
export const decodeJson = <T>(bytes: Uint8Array): T => JSON.parse(decoder.decode(bytes)) as T;

/**
 * A `presence-users` entry as read from KV or a watch: the user id its key encodes, and the
 * validated entry (null for a delete or purge). Throws on a malformed key or value.
 */
export function readUserEntry(e: { key: string; operation: string; value: Uint8Array }): {
  userId: string;
  entry: UserEntry | null;
} {
  const userId = decodeUserKey(e.key);
  return { userId, entry: e.operation === 'PUT' ? UserEntry.parse(decodeJson(e.value)) : null };
}
