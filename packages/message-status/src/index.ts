/** @switchboard/message-status: message status records in the PUSH_STATUS stream: batched writes by the push API, reads for GET /v1/messages/:id. */
export * from './status-stream.js';
export * from './stream.js';
