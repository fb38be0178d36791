/** @switchboard/device-registry: a user's OS push devices (APNs, FCM, webhook) in the `devices` KV bucket, one entry per user changed by compare-and-set. */
export * from './device-registry.js';
