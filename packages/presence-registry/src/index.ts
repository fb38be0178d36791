/** @switchboard/presence-registry: who is online where: node leases and user entries in JetStream KV, written by edges (NodeLease, UserRegistrar) and read by the push API and presence (LeaseTable, PresenceReader, PresenceMirror). */
export * from './buckets.js';
export * from './codec.js';
export * from './kv-snapshot-watch.js';
export * from './lease-table.js';
export * from './node-lease.js';
export * from './open-reader.js';
export * from './presence-mirror.js';
export * from './presence-reader.js';
export * from './user-registrar.js';
