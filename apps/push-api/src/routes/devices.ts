/** The device registry API: where OS push reaches a user. */
import type { HttpApp } from '@switchboard/http';
import { ApiError } from '@switchboard/http';
import {
  Device,
  DeviceId,
  DeviceList,
  DeviceRegistration,
  ErrorBody,
  ErrorCodes,
  UserId,
  webhookUrlRefusal,
} from '@switchboard/protocol';
import { z } from 'zod';
import type { DeviceStore } from '../ports.js';

const errors = {
  400: ErrorBody,
  401: ErrorBody,
  404: ErrorBody,
  413: ErrorBody,
  429: ErrorBody,
  503: ErrorBody,
};
const DeviceParams = z.object({ userId: UserId, deviceId: DeviceId });

/** A registry failure is a 503 naming it; too many devices a 409 (route-errors.ts). */
const config = { dependency: 'the device registry' };

export type DeviceRoutesOptions = {
  devices: DeviceStore;
  /**
   * Where webhook devices may point (the same list OS push gets as `WEBHOOK_ALLOWED_HOSTS`);
   * unset: not checked at registration (OS push still refuses what is not allowed).
   */
  webhooks?: { allowedHosts: readonly string[]; requireHttps: boolean };
};

export async function deviceRoutes(app: HttpApp, opts: DeviceRoutesOptions): Promise<void> {
  app.put(
    '/v1/users/:userId/devices/:deviceId',
    {
      schema: {
        summary: 'Register or replace a device for OS push',
        tags: ['devices'],
        params: DeviceParams,
        body: DeviceRegistration,
        response: { 200: Device, ...errors },
      },
      config,
    },
    async (req) => {
      if (req.body.platform === 'webhook' && opts.webhooks) {
        const refusal = webhookUrlRefusal(req.body.token, opts.webhooks.allowedHosts, {
          requireHttps: opts.webhooks.requireHttps,
        });
        if (refusal !== undefined)
          throw new ApiError(400, ErrorCodes.validationFailed, `token: ${refusal}`, {
            details: [{ path: ['token'], message: refusal }],
          });
      }
      return opts.devices.put(req.params.userId, req.params.deviceId, req.body);
    },
  );

  app.delete(
    '/v1/users/:userId/devices/:deviceId',
    {
      schema: {
        summary: 'Remove a device',
        tags: ['devices'],
        params: DeviceParams,
        response: { 204: z.null().describe('removed'), ...errors },
      },
      config,
    },
    async (req, reply) => {
      const removed = await opts.devices.remove(req.params.userId, req.params.deviceId);
      if (!removed) throw ApiError.notFound(`no device ${req.params.deviceId} for this user`);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/users/:userId/devices',
    {
      schema: {
        summary: "A user's devices",
        tags: ['devices'],
        params: z.object({ userId: UserId }),
        response: { 200: DeviceList, ...errors },
      },
      config,
    },
    async (req) => ({
      userId: req.params.userId,
      devices: await opts.devices.list(req.params.userId),
    }),
  );
}
