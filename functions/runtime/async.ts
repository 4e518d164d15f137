// Small promise helpers shared by the dispatcher, the reaper and the watches.

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Run `work` over `items` with at most `limit` in flight. */
export async function inPool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  });
  await Promise.all(lanes);
}
