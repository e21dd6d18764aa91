/** What `compare-commits` measures on each checkout, shared by the driver and its per-checkout runner. */

/** The bench's pinned throttle: every checkout gets the same one, whatever its defaults. */
export const PINNED = { batchSize: 10_000, concurrency: 2, shards: 2 } as const;

export const PATHS = ['sameDb', 'crossDb', 'jsTransform', 'verify', 'verifyJsTransform', 'sameDbDefaults', 'crossDbDefaults', 'jsTransformDefaults'] as const;
export type PathName = (typeof PATHS)[number];
/** One checkout's round: rows/s per path, or why the path gave none. */
export type RoundResult = Partial<Record<PathName, { rowsPerSec: number | null; ms: number | null; error?: string }>>;
