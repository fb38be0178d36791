/** The public send API's shapes: what services post and what they get back. */
import { z } from 'zod';
import { isWellFormedUnicode, MAX_USER_ID_BYTES } from './user-key.js';

/** Names Socket.IO reserves or uses for its own events: a message may not use them. */
export const RESERVED_EVENT_NAMES: ReadonlySet<string> = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'error',
  'message',
  'newListener',
  'removeListener',
  'ping',
  'pong',
  'reconnect',
  'reconnect_attempt',
  'reconnect_error',
  'reconnect_failed',
  'reconnecting',
]);

export const Limits = {
  maxRecipients: 10_000,
  maxEventNameLength: 100,
  maxMessageIdLength: 128,
  defaultAckTimeoutMs: 5_000,
  minAckTimeoutMs: 100,
  maxAckTimeoutMs: 60_000,
} as const;

const utf8 = new TextEncoder();

/** UTF-8 length, without encoding when the string is short enough to fit whatever it holds. */
const fitsUtf8 = (s: string, max: number) => s.length * 3 <= max || utf8.encode(s).length <= max;

// biome-ignore lint/suspicious/noControlCharactersInRegex: this is the check for them
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

export const UserId = z
  .string()
  .min(1, 'user id must not be empty')
  .refine((s) => fitsUtf8(s, MAX_USER_ID_BYTES), {
    message: `user id must be at most ${MAX_USER_ID_BYTES} bytes`,
  })
  // A lone surrogate has no UTF-8: such ids would collide on one key (U+FFFD).
  .refine(isWellFormedUnicode, {
    message: 'user id must be well-formed Unicode (no lone surrogate)',
  })
  // Ids travel in NATS headers (the fallback dedup id), where CR or LF cannot go.
  .refine((s) => !CONTROL_CHARACTER.test(s), {
    message: 'user id must not contain control characters',
  });

export const EventName = z
  .string()
  .min(1)
  .max(Limits.maxEventNameLength)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/,
    'event must start with a letter or digit and use [A-Za-z0-9._:/-]',
  )
  .refine((s) => !RESERVED_EVENT_NAMES.has(s), { message: 'event name is reserved by Socket.IO' });

export const MessageId = z
  .string()
  .min(1)
  .max(Limits.maxMessageIdLength)
  .regex(/^[A-Za-z0-9._:-]+$/, 'id must use [A-Za-z0-9._:-]');

/** What OS push shows when the message cannot be delivered in real time. */
export const FallbackNotification = z
  .object({
    title: z.string().max(256).optional(),
    body: z.string().max(4096).optional(),
    data: z
      .record(z.string(), z.string())
      .refine((d) => !Object.hasOwn(d, 'aps'), {
        message: '"aps" is reserved: it is the APNs dictionary the notification builds',
      })
      .optional(),
    /** Sent as `apns-collapse-id` (Apple: at most 64 bytes) and FCM `collapse_key`. */
    collapseKey: z
      .string()
      .min(1)
      .refine((k) => Buffer.byteLength(k, 'utf8') <= 64, {
        message: 'collapseKey is at most 64 bytes in UTF-8 (the apns-collapse-id limit)',
      })
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
      .refine((k) => !/[\u0000-\u001f\u007f]/.test(k), {
        message: 'collapseKey may not contain control characters (it is an HTTP header value)',
      })
      .optional(),
    ttlSeconds: z.number().int().min(0).max(2_419_200).optional(),
    priority: z.enum(['high', 'normal']).optional(),
  })
  .strict()
  .meta({ id: 'FallbackNotification' });
export type FallbackNotification = z.infer<typeof FallbackNotification>;

export const SendMessageRequest = z
  .object({
    to: z.union([UserId, z.array(UserId).min(1).max(Limits.maxRecipients)]),
    event: EventName,
    data: z.unknown().optional(),
    id: MessageId.optional(),
    ack: z.boolean().default(false),
    ackTimeoutMs: z
      .number()
      .int()
      .min(Limits.minAckTimeoutMs)
      .max(Limits.maxAckTimeoutMs)
      .default(Limits.defaultAckTimeoutMs),
    fallback: FallbackNotification.optional(),
  })
  .strict()
  .meta({
    id: 'SendMessageRequest',
    example: {
      to: '42',
      event: 'dm.new',
      data: { from: '7', text: 'hi' },
      fallback: { title: 'New message' },
    },
  });
export type SendMessageRequest = z.infer<typeof SendMessageRequest>;

export const RecipientStatus = z.enum(['delivered', 'fallback', 'dropped']);
export type RecipientStatus = z.infer<typeof RecipientStatus>;

/** Why a recipient was not delivered in real time. */
export const UndeliveredReason = z.enum([
  'offline',
  'ack-timeout',
  'node-unavailable',
  'fallback-failed',
  /** The send's deadline (`SEND_TIMEOUT_MS`) came before this recipient's OS push hand-off was tried. */
  'deadline',
]);
export type UndeliveredReason = z.infer<typeof UndeliveredReason>;

export const RecipientResult = z.object({
  userId: z.string(),
  status: RecipientStatus,
  /** Connections the message reached (delivered) or that acked (ack asked). */
  connections: z.number().int().optional(),
  reason: UndeliveredReason.optional(),
});
export type RecipientResult = z.infer<typeof RecipientResult>;

export const SendMessageResponse = z
  .object({ id: z.string(), results: z.array(RecipientResult) })
  .meta({ id: 'SendMessageResponse' });
export type SendMessageResponse = z.infer<typeof SendMessageResponse>;
