/** The device registry: where OS push reaches a user. */
import { z } from 'zod';

export const Platform = z.enum(['apns', 'fcm', 'webhook']);
export type Platform = z.infer<typeof Platform>;

export const DeviceId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,128}$/, 'device id must be 1-128 characters of [A-Za-z0-9_-]');

/** APNs device tokens are hex; 32 bytes today, up to 100 bytes allowed by Apple. */
const APNS_TOKEN = /^[0-9a-fA-F]{64,200}$/;
/** FCM registration tokens: long URL-safe strings with ':' separators. */
const FCM_TOKEN = /^[A-Za-z0-9_:\-.]{32,4096}$/;
/**
 * An APNs topic: a bundle id (letters, digits, `-`, dot-separated), possibly with Apple's
 * suffixes (`.voip`, `.complication`, ...), at most 255 characters. It is sent as the
 * `apns-topic` header, so nothing else may pass.
 */
export const APNS_TOPIC = /^(?=.{1,255}$)[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/;
/** An app id of any platform: printable, no spaces or control characters. */
const APP_ID = /^[\x21-\x7e]{1,255}$/;

export const DeviceRegistration = z
  .object({
    platform: Platform,
    /** APNs device token (hex), FCM registration token, or the webhook URL. */
    token: z.string().min(1).max(4096),
    /** APNs topic (bundle id) or FCM app id; defaults come from the provider config. */
    appId: z.string().min(1).max(255).optional(),
    /** APNs development environment. */
    sandbox: z.boolean().optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    const bad = (message: string) => ctx.addIssue({ code: 'custom', path: ['token'], message });
    if (d.platform === 'apns' && !APNS_TOKEN.test(d.token))
      bad('an APNs token is 64-200 hex characters');
    if (d.platform === 'fcm' && !FCM_TOKEN.test(d.token))
      bad('an FCM token is 32-4096 characters of [A-Za-z0-9_:.-]');
    if (d.platform === 'webhook') {
      let url: URL | undefined;
      try {
        url = new URL(d.token);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:'))
        bad('a webhook token is an http(s) URL');
    }
    if (d.appId !== undefined) {
      if (d.platform === 'apns' && !APNS_TOPIC.test(d.appId))
        ctx.addIssue({
          code: 'custom',
          path: ['appId'],
          message:
            'an APNs appId is the bundle id (the apns-topic): [A-Za-z0-9-] parts joined by dots',
        });
      else if (!APP_ID.test(d.appId))
        ctx.addIssue({
          code: 'custom',
          path: ['appId'],
          message: 'an appId is 1-255 printable ASCII characters without spaces',
        });
    }
    if (d.sandbox !== undefined && d.platform !== 'apns') {
      ctx.addIssue({ code: 'custom', path: ['sandbox'], message: 'sandbox applies to apns only' });
    }
  })
  .meta({
    id: 'DeviceRegistration',
    example: { platform: 'apns', token: 'a'.repeat(64), appId: 'com.example.app' },
  });
export type DeviceRegistration = z.infer<typeof DeviceRegistration>;

export const Device = z
  .object({
    deviceId: z.string(),
    platform: Platform,
    token: z.string(),
    appId: z.string().optional(),
    sandbox: z.boolean().optional(),
    updatedAt: z.number(),
  })
  .meta({ id: 'Device' });
export type Device = z.infer<typeof Device>;

export const DeviceList = z
  .object({ userId: z.string(), devices: z.array(Device) })
  .meta({ id: 'DeviceList' });
export type DeviceList = z.infer<typeof DeviceList>;

/**
 * Why a webhook URL may not be used with this allow-list, or `undefined` when it may.
 * An entry is `host` (the scheme's default port: 443 for https:, 80 for http:) or
 * `host:port`; host and port must both match. `requireHttps` refuses `http:` (outside
 * development). Used at registration (push API) and before every send (OS push).
 */
export function webhookUrlRefusal(
  token: string,
  allowedHosts: readonly string[],
  options: { requireHttps: boolean },
): string | undefined {
  let url: URL;
  try {
    url = new URL(token);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'not an http(s) URL';
  if (options.requireHttps && url.protocol !== 'https:') return 'webhooks must use https:';
  if (url.username || url.password) return 'a webhook URL may not carry credentials';
  const defaultPort = url.protocol === 'https:' ? '443' : '80';
  const port = url.port || defaultPort;
  const allowed = allowedHosts.some((entry) => {
    let e: URL;
    try {
      e = new URL(`${url.protocol}//${entry.trim()}`);
    } catch {
      return false;
    }
    return e.hostname === url.hostname && (e.port || defaultPort) === port;
  });
  return allowed ? undefined : `host ${url.host} is not in WEBHOOK_ALLOWED_HOSTS`;
}
