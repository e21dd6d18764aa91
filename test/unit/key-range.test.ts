import { describe, expect, it } from 'vitest';
import { splitAtBounds, splitIntegerRange, type KeyRange } from '../../lib/key-range';

/** Contiguous and complete: open at both ends, each range starting where the last one ended. */
function expectCoversKeySpace(ranges: KeyRange[]): void {
  expect(ranges.length).toBeGreaterThan(0);
  expect(ranges[0]!.after).toBeNull();
  expect(ranges.at(-1)!.upTo).toBeNull();
  for (let i = 1; i < ranges.length; i++) expect(ranges[i]!.after).toBe(ranges[i - 1]!.upTo);
}

/** Integers from min to max that fall in each range. */
function keysPerRange(ranges: KeyRange[], min: bigint, max: bigint): bigint[] {
  return ranges.map(({ after, upTo }) => {
    const low = after === null ? min : BigInt(after) + 1n > min ? BigInt(after) + 1n : min;
    const high = upTo === null ? max : BigInt(upTo) < max ? BigInt(upTo) : max;
    return high >= low ? high - low + 1n : 0n;
  });
}

describe('splitIntegerRange', () => {
  it('splits evenly, open at both ends', () => {
    expect(splitIntegerRange('1', '100', 4)).toEqual([
      { after: null, upTo: '25' },
      { after: '25', upTo: '50' },
      { after: '50', upTo: '75' },
      { after: '75', upTo: null },
    ]);
  });

  it('gives ranges whose widths differ by at most one key', () => {
    for (const [min, max, count] of [
      [1n, 10n, 3],
      [0n, 999n, 7],
      [-50n, 50n, 6],
      [17n, 1_000_003n, 1024],
    ] as const) {
      const ranges = splitIntegerRange(String(min), String(max), count);
      expectCoversKeySpace(ranges);
      expect(ranges).toHaveLength(count);
      const sizes = keysPerRange(ranges, min, max);
      expect(sizes.reduce((a, b) => a + b, 0n)).toBe(max - min + 1n);
      const smallest = sizes.reduce((a, b) => (b < a ? b : a));
      const largest = sizes.reduce((a, b) => (b > a ? b : a));
      expect(largest - smallest).toBeLessThanOrEqual(1n);
    }
  });

  it('is a single whole range for one shard or a single key', () => {
    expect(splitIntegerRange('5', '900', 1)).toEqual([{ after: null, upTo: null }]);
    expect(splitIntegerRange('42', '42', 16)).toEqual([{ after: null, upTo: null }]);
  });

  it('makes one range per key when asked for more shards than there are keys', () => {
    const ranges = splitIntegerRange('10', '13', 100);
    expect(ranges).toEqual([
      { after: null, upTo: '10' },
      { after: '10', upTo: '11' },
      { after: '11', upTo: '12' },
      { after: '12', upTo: null },
    ]);
  });

  it('handles negative keys', () => {
    const ranges = splitIntegerRange('-1000', '-1', 4);
    expectCoversKeySpace(ranges);
    expect(ranges.map((r) => r.upTo)).toEqual(['-751', '-501', '-251', null]);
  });

  it('keeps every digit of keys beyond 2^53', () => {
    const ranges = splitIntegerRange('9007199254740993', '9007199254741003', 2);
    expect(ranges).toEqual([
      { after: null, upTo: '9007199254740997' },
      { after: '9007199254740997', upTo: null },
    ]);
  });

  it('spans the whole bigint domain without overflow', () => {
    const min = -(2n ** 63n);
    const max = 2n ** 63n - 1n;
    const ranges = splitIntegerRange(String(min), String(max), 4);
    expectCoversKeySpace(ranges);
    expect(ranges.map((r) => r.upTo)).toEqual(['-4611686018427387905', '-1', '4611686018427387903', null]);
    expect(keysPerRange(ranges, min, max)).toEqual([2n ** 62n, 2n ** 62n, 2n ** 62n, 2n ** 62n]);
  });

  it('refuses bounds that are not integers, reversed bounds and impossible counts', () => {
    expect(() => splitIntegerRange('1.5', '10', 2)).toThrow(RangeError);
    expect(() => splitIntegerRange('', '10', 2)).toThrow(RangeError);
    expect(() => splitIntegerRange('10', '1', 2)).toThrow(/reversed/);
    expect(() => splitIntegerRange('1', '10', 0)).toThrow(/positive integer/);
    expect(() => splitIntegerRange('1', '10', 2.5)).toThrow(/positive integer/);
  });
});

describe('splitAtBounds', () => {
  it('covers the key space with one more range than bounds', () => {
    const ranges = splitAtBounds(['b', 'm', 't']);
    expectCoversKeySpace(ranges);
    expect(ranges).toHaveLength(4);
  });

  it('drops repeated bounds instead of making empty ranges', () => {
    expect(splitAtBounds(['a', 'a', 'a', 'q', 'q'])).toEqual([
      { after: null, upTo: 'a' },
      { after: 'a', upTo: 'q' },
      { after: 'q', upTo: null },
    ]);
  });

  it('is the whole key space without bounds', () => {
    expect(splitAtBounds([])).toEqual([{ after: null, upTo: null }]);
  });
});
