// A child process of the soak that does nothing but measure its own event-loop delay, the
// same way the apps do (perf_hooks.monitorEventLoopDelay, 100 ms resolution, reset at each
// read). On a shared machine a window where the canary lags too was a stall of the machine
// (another process had the cores), not of the app.
//
// IPC: { cmd: 'read' } → { cmd: 'read', p99Ms, maxMs } (delay beyond the 100 ms period).
import { monitorEventLoopDelay } from 'node:perf_hooks';

const RESOLUTION_MS = 100;
const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
h.enable();
const beyond = (ns) => Math.max(0, ns / 1e6 - RESOLUTION_MS);

process.on('message', (m) => {
  if (m?.cmd !== 'read') return;
  const out =
    h.count > 0
      ? { cmd: 'read', p99Ms: beyond(h.percentile(99)), maxMs: beyond(h.max) }
      : { cmd: 'read', p99Ms: null, maxMs: null };
  h.reset();
  process.send(out);
});
process.send({ ready: true });
