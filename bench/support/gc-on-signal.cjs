// Preloaded (`node --expose-gc -r bench/support/gc-on-signal.cjs`) into server processes for
// the memory scenario: on SIGUSR2 it runs a full GC and writes the process's memory figures to
// $BENCH_MEM_DIR/<pid>.json, which the benchmark reads beside VmRSS from /proc.
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');

process.on('SIGUSR2', () => {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    globalThis.gc();
  }
  const m = process.memoryUsage();
  const dir = process.env.BENCH_MEM_DIR;
  if (!dir) return;
  writeFileSync(
    join(dir, `${process.pid}.json`),
    JSON.stringify({ at: Date.now(), rss: m.rss, heapUsed: m.heapUsed, external: m.external }),
  );
});
