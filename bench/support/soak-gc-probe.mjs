// Preloaded into the soak's Node server processes (`node --expose-gc --import
// bench/support/soak-gc-probe.mjs`): on SIGUSR2 it runs one full (mark-compact) GC and
// writes the memory figures after it, and how long the GC took, to
// $SOAK_PROBE_DIR/<pid>.json (written to a temporary name, then renamed, so a reader never
// sees half a file). What remains after a full GC is what the process retains: the soak
// fits its trend to these figures instead of the GC sawtooth.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

// biome-ignore lint/suspicious/noUndeclaredEnvVars: set by bench/soak.mjs for this preload only, no build input
const dir = process.env.SOAK_PROBE_DIR;
let probes = 0;
process.on('SIGUSR2', () => {
  const start = performance.now();
  if (typeof globalThis.gc === 'function') globalThis.gc();
  const gcMs = performance.now() - start;
  const m = process.memoryUsage();
  if (!dir) return;
  const file = join(dir, `${process.pid}.json`);
  writeFileSync(
    `${file}.tmp`,
    JSON.stringify({
      at: Date.now(),
      probe: ++probes,
      gcMs,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
    }),
  );
  renameSync(`${file}.tmp`, file);
});
