/** `GET /v1/messages/:id`: what happened to a message, per recipient, as a timeline (24 h). */
import type { HttpApp } from '@switchboard/http';
import { ApiError } from '@switchboard/http';
import {
  ErrorBody,
  MessageId,
  MessageStatus,
  type StatusRecord,
  type TimelineEntry,
} from '@switchboard/protocol';
import { z } from 'zod';
import type { StatusRecords } from '../ports.js';

const PROVIDER_STEP = {
  accepted: 'provider-accepted',
  rejected: 'provider-rejected',
  retry: 'provider-retry',
  'device-removed': 'device-removed',
  'no-devices': 'no-devices',
  'dead-lettered': 'dead-lettered',
} as const;

/**
 * Folds the stored records into one timeline per recipient: the push API's steps as it
 * took them, then the OS push worker's, in time order. Causal order, not one sort by time:
 * a worker can take a fallback message (and record a provider step) before the push API
 * has finished the whole send, whose end time the send's last steps carry.
 */
export function buildStatus(id: string, records: StatusRecord[]): MessageStatus | null {
  // A large multicast is recorded in several send records: merge their recipients.
  const sends = records.filter((r) => r.kind === 'send');
  const send = sends[0] && { ...sends[0], recipients: sends.flatMap((r) => r.recipients) };
  const byUser = new Map<
    string,
    { status: MessageStatus['recipients'][number]['status']; timeline: TimelineEntry[] }
  >();
  if (send) {
    for (const r of send.recipients) {
      const timeline: TimelineEntry[] = [{ at: send.acceptedAt, step: 'accepted' }];
      for (const nodeId of r.nodes) timeline.push({ at: send.acceptedAt, step: 'routed', nodeId });
      if (r.status === 'delivered') {
        timeline.push({
          at: send.finishedAt,
          step: send.ack ? 'acked' : 'delivered',
          detail: `${r.connections ?? 0} connection(s)`,
        });
      } else {
        timeline.push({
          at: send.finishedAt,
          step: r.status === 'fallback' ? 'queued-for-fallback' : 'dropped',
          detail: r.reason,
        });
      }
      byUser.set(r.userId, { status: r.status, timeline });
    }
  }
  const providerSteps = new Map<string, TimelineEntry[]>();
  for (const r of records) {
    if (r.kind !== 'provider') continue;
    if (!byUser.has(r.userId)) byUser.set(r.userId, { status: 'fallback', timeline: [] });
    const steps = providerSteps.get(r.userId) ?? [];
    steps.push({
      at: r.at,
      step: PROVIDER_STEP[r.outcome],
      ...(r.detail === undefined ? {} : { detail: r.detail }),
      ...(r.deviceId === undefined ? {} : { deviceId: r.deviceId }),
      ...(r.platform === undefined ? {} : { platform: r.platform }),
    });
    providerSteps.set(r.userId, steps);
  }
  if (byUser.size === 0) return null;
  return {
    id,
    event: send?.event ?? '',
    recipients: [...byUser].map(([userId, e]) => ({
      userId,
      status: e.status,
      timeline: [...e.timeline, ...(providerSteps.get(userId) ?? []).sort((a, b) => a.at - b.at)],
    })),
  };
}

export type StatusRoutesOptions = {
  /** A message's stored records (`readStatus` over the NATS connection). */
  readStatus: StatusRecords;
};

export async function statusRoutes(app: HttpApp, opts: StatusRoutesOptions): Promise<void> {
  app.get(
    '/v1/messages/:id',
    {
      schema: {
        summary: 'What happened to a message, per recipient (kept 24 h)',
        description:
          'The timeline of each recipient: accepted, routed to node, delivered / acked, queued for fallback, provider accepted or rejected per device, device removed, dead-lettered.',
        tags: ['messages'],
        params: z.object({ id: MessageId }),
        response: {
          200: MessageStatus,
          400: ErrorBody,
          401: ErrorBody,
          404: ErrorBody,
          503: ErrorBody,
        },
      },
      config: { dependency: 'message status' },
    },
    async (req) => {
      const records = await opts.readStatus(req.params.id);
      // Per API key: another key's records of the same id are not this caller's message.
      // Records from before owners were recorded carry none and stay readable.
      const owner = req.apiKeyId;
      const mine = records.filter((r) => r.owner === undefined || r.owner === owner);
      const status = buildStatus(req.params.id, mine);
      if (!status) throw ApiError.notFound(`no message ${req.params.id} in the last 24 hours`);
      return status;
    },
  );
}
