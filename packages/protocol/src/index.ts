/** @switchboard/protocol: the wire contract between the parts: subjects and bucket names, message, delivery and status schemas, Socket.IO events, user keys and message ids. */
export * from './delivery.js';
export * from './devices.js';
export * from './errors.js';
export * from './fallback.js';
export * from './message.js';
export * from './message-id.js';
export * from './presence.js';
export * from './socket.js';
export * from './status.js';
export * from './subjects.js';
export * from './user-key.js';
