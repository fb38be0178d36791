/**
 * Runs `task` over `items` with at most `concurrency` running at a time, started in order;
 * resolves when all have settled (a task that throws rejects the whole run, so tasks that
 * must not stop the others catch their own errors).
 */
export async function runPool<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await task(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}
