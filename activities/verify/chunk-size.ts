/**
 * The size of verification's checksum chunks: the plan's `verify.chunkSize` is the first and the
 * largest; after a chunk that differs the next ones halve, and after an equal one they grow back
 * by a quarter.
 */

/**
 * The smallest chunk the size adapts down to where chunks differ: a differing chunk is read row
 * by row, so where differences are scattered, smaller chunks cost less. A chunk size below this
 * stays fixed.
 */
export const MIN_ADAPTED_CHUNK = 1000;
/** After an equal chunk the next ones grow by this factor (from 1,000 keys to 10,000 in 11 chunks). */
const CHUNK_GROWTH = 1.25;

export interface ChunkSizes {
  min: number;
  max: number;
}

export function chunkSizesOf(planned: number): ChunkSizes {
  const max = Math.max(1, Math.trunc(planned));
  return { min: Math.min(max, MIN_ADAPTED_CHUNK), max };
}

/** Halved at once, grown back slowly: scattered differences keep chunks near the smallest. */
export function nextChunkSize(current: number, sizes: ChunkSizes, differed: boolean): number {
  return differed ? Math.max(sizes.min, Math.ceil(current / 2)) : Math.min(sizes.max, Math.ceil(current * CHUNK_GROWTH));
}
