/**
 * A KV watch that tells when the bucket's current content has been delivered, so that a
 * reader can answer from memory only once it holds the snapshot.
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';

export type SnapshotWatch = { stop(): void };

type Log = { warn(obj: object, msg: string): void };

/**
 * Watches every key of `kv` (last values first, then updates) and resolves once the
 * snapshot is in, or after `timeoutMs` (a key that expires meanwhile would hold it back).
 * `onEntry` runs for every entry, in stream order; `initial` is true for snapshot entries.
 * An entry whose handler throws is logged and skipped: one bad key never ends the watch.
 */
export async function watchWithSnapshot(
  kv: KV,
  onEntry: (e: KvWatchEntry, initial: boolean) => void,
  timeoutMs = 2_000,
  log?: Log,
): Promise<SnapshotWatch> {
  const iter = await kv.watch();
  // Every entry up to the stream's last sequence at this point belongs to the snapshot.
  const status = await kv.status();
  const lastSeq = status.streamInfo.state.last_seq;
  let loaded = status.streamInfo.state.messages === 0;
  let markLoaded: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markLoaded = resolve;
  });
  if (loaded) markLoaded();
  void (async () => {
    for await (const e of iter) {
      try {
        onEntry(e, !loaded);
      } catch (err) {
        log?.warn({ err, key: e.key, revision: e.revision }, 'skipped a watch entry that failed');
      }
      if (!loaded && e.revision >= lastSeq) {
        loaded = true;
        markLoaded();
      }
    }
  })();
  const timer = setTimeout(() => {
    loaded = true;
    markLoaded();
  }, timeoutMs);
  await ready;
  clearTimeout(timer);
  return { stop: () => iter.stop() };
}
