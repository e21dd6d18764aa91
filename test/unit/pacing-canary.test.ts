/**
 * Which errors make the pacing canary give up its WAL write for good: only the server's refusals
 * of the write, never an error that passes (a cancel, a shutdown, a lost connection).
 */
import { describe, expect, it } from 'vitest';
import { canaryErrorPasses } from '../../activities/copy/pacing-sampler';

describe('the canary after an error', () => {
  it.each([
    ['57014', 'a cancelled canary'],
    ['57P01', 'a shutdown'],
    ['08006', 'a connection failure'],
    ['40001', 'a serialization failure'],
    ['53300', 'too many connections'],
    ['55P03', 'a lock timeout'],
  ])('keeps its write after %s (%s)', (code) => {
    expect(canaryErrorPasses(code)).toBe(true);
  });

  it.each([
    ['42501', 'EXECUTE revoked'],
    ['42883', 'no such function'],
    ['25006', 'a read-only transaction'],
    ['XX000', 'a standby, which assigns no transaction id'],
  ])('falls back after %s (%s)', (code) => {
    expect(canaryErrorPasses(code)).toBe(false);
  });

  it('falls back on an error without a code', () => {
    expect(canaryErrorPasses(undefined)).toBe(false);
  });
});
