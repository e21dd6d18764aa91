/** Read comparisons: what the caller gets, every category, retries within a budget, the kill switch. */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { compareRows, createReadComparer, ReadMismatchError, type Mismatch, type ReadComparer, type ReadComparerOptions } from '../../client/compare-reads';
import { clientMetrics } from '../../client/metrics';
import { initialFlags, type Flags } from '../../lib/flags';
import { fakeFlags, memoryLogger, metricValue, type FakeFlags } from '../support/client-fakes';

interface User {
  id: number;
  name: string;
  tags?: string[];
  born?: Date;
}

const key = (user: User) => String(user.id);
const ann: User = { id: 1, name: 'Ann', tags: ['a'], born: new Date('1990-01-01T00:00:00Z') };
const bob: User = { id: 2, name: 'Bob' };
const cy: User = { id: 3, name: 'Cy' };

function setup(flags: FakeFlags, options: Partial<ReadComparerOptions> = {}) {
  const registry = new Registry();
  const logger = memoryLogger();
  const mismatches: Mismatch[] = [];
  const comparer = createReadComparer({
    flags,
    metrics: clientMetrics(registry),
    logger,
    migration: 'm',
    retryDelayMs: 0,
    onMismatch: (m) => void mismatches.push(m),
    ...options,
  });
  const comparisons = (result: string, reason: string, name = 'users') =>
    metricValue(registry, 'ferry_client_read_comparisons_total', { name, result, reason });
  return { comparer, registry, logger, mismatches, comparisons };
}

const compared = () => fakeFlags({ writeNew: true, comparePercent: 100 });

afterEach(() => {
  vi.useRealTimers();
});

describe('comparing rows', () => {
  it('finds nothing in equal reads, deep-equal fields included', () => {
    const copy = { ...ann, tags: ['a'], born: new Date('1990-01-01T00:00:00Z') };
    expect(compareRows('users', [ann, bob], [copy, { ...bob }], key)).toBeUndefined();
  });

  it('lists the keys missing from new and extra in new on a length mismatch', () => {
    expect(compareRows('users', [ann, bob], [bob, cy], key)).toMatchObject({ category: 'length', missing: ['1'], extra: ['3'], oldCount: 2, newCount: 2 });
    expect(compareRows('users', [ann, bob], [ann], key)).toMatchObject({ category: 'length', missing: ['2'], extra: [] });
  });

  it('names the fields that differ on a value mismatch, compared by deep equality', () => {
    const changed = [{ ...ann, tags: ['a', 'b'] }, { ...bob, name: 'Rob', extra: 1 }];
    expect(compareRows('users', [ann, bob], changed, key)).toMatchObject({ category: 'value', keys: ['1', '2'], fields: ['extra', 'name', 'tags'] });
    expect(compareRows('users', [ann], [{ ...ann, born: new Date('1990-01-02T00:00:00Z') }], key)).toMatchObject({ fields: ['born'] });
  });

  it('sees rows in another order, unless order does not matter', () => {
    expect(compareRows('users', [ann, bob, cy], [ann, cy, bob], key)).toMatchObject({ category: 'order', keys: ['2', '3'] });
    expect(compareRows('users', [ann, bob, cy], [ann, cy, bob], key, false)).toBeUndefined();
  });
});

describe('compareReads', () => {
  it('reads only the old store when the flags compare no reads', async () => {
    const { comparer } = setup(fakeFlags({ writeNew: true, comparePercent: 0 }));
    const newRead = vi.fn(async () => [bob]);
    expect(await comparer.compareReads('users', { old: async () => [ann], new: newRead, key })).toEqual([ann]);
    expect(newRead).not.toHaveBeenCalled();
  });

  it('compares the percentage of reads the flags ask for', async () => {
    let draw = 0;
    const draws = [0.1, 0.3, 0.29, 0.9];
    const { comparer } = setup(fakeFlags({ comparePercent: 30 }), { random: () => draws[draw++]! });
    const newRead = vi.fn(async () => [ann]);
    for (let i = 0; i < 4; i += 1) await comparer.compareReads('users', { old: async () => [ann], new: newRead, key, await: true });
    expect(newRead).toHaveBeenCalledTimes(2);
  });

  it('returns the old result and counts a match', async () => {
    const { comparer, comparisons, registry } = setup(compared());
    const result = await comparer.compareReads('users', { old: async () => [ann, bob], new: async () => [{ ...ann }, { ...bob }], key, await: true });
    expect(result).toEqual([ann, bob]);
    expect(await comparisons('match', 'equal')).toBe(1);
    const exposition = await registry.metrics();
    expect(exposition).toContain('ferry_client_read_duration_seconds_count{name="users",side="old"} 1');
    expect(exposition).toContain('ferry_client_read_duration_seconds_count{name="users",side="new"} 1');
  });

  it.each([
    ['length', [ann, bob], [ann], { missing: ['2'], extra: [] }],
    ['order', [ann, bob], [bob, ann], { keys: ['1', '2'] }],
    ['value', [ann, bob], [ann, { ...bob, name: 'Rob' }], { keys: ['2'], fields: ['name'] }],
  ] as const)('reports a persistent %s mismatch by keys and field names, never values', async (category, oldRows, newRows, detail) => {
    const { comparer, comparisons, mismatches, logger } = setup(compared());
    const result = await comparer.compareReads('users', { old: async () => [...oldRows], new: async () => [...newRows], key, await: true });
    expect(result).toEqual(oldRows);
    expect(mismatches).toEqual([expect.objectContaining({ name: 'users', category, ...detail })]);
    expect(await comparisons('mismatch', category)).toBe(1);
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]!.details).toMatchObject({ name: 'users', category });
    expect(JSON.stringify(logger.lines)).not.toMatch(/Ann|Bob|Rob/);
  });

  it('compares single-row reads, a missing row included', async () => {
    const { comparer, mismatches } = setup(compared());
    expect(await comparer.compareReads('user', { old: async () => ann, new: async () => ({ ...ann }), key, await: true })).toEqual(ann);
    expect(await comparer.compareReads<User | null>('user', { old: async () => ann, new: async () => null, key, await: true })).toEqual(ann);
    expect(mismatches).toEqual([expect.objectContaining({ category: 'length', missing: ['1'], extra: [] })]);
  });

  it('keeps a new-store error from the caller, and counts it', async () => {
    const { comparer, comparisons, logger } = setup(compared());
    const failing = async (): Promise<User[]> => Promise.reject(Object.assign(new Error('value Ann broke it'), { code: '22P02' }));
    expect(await comparer.compareReads('users', { old: async () => [ann], new: failing, key, await: true })).toEqual([ann]);
    expect(await comparisons('error', 'new-error')).toBe(1);
    expect(logger.lines[0]!.details).toEqual({ name: 'users', errorName: 'Error', code: '22P02' });
  });

  it("passes the old store's error on, as if there were no comparison", async () => {
    const { comparer } = setup(compared());
    await expect(comparer.compareReads('users', { old: async () => Promise.reject(new Error('old down')), new: async () => [ann], key })).rejects.toThrow('old down');
  });

  it('returns early: the caller does not wait for the new read', async () => {
    const { comparer, comparisons } = setup(compared());
    let finishNew!: (rows: User[]) => void;
    const newRead = new Promise<User[]>((resolve) => (finishNew = resolve));
    expect(await comparer.compareReads('users', { old: async () => [ann], new: () => newRead, key })).toEqual([ann]);
    expect(await comparisons('match', 'equal')).toBe(0);
    finishNew([ann]);
    await vi.waitFor(async () => expect(await comparisons('match', 'equal')).toBe(1));
  });

  it('returns the new result once reads come from new, and compares with old', async () => {
    const { comparer, mismatches } = setup(fakeFlags({ readFrom: 'new', comparePercent: 100 }));
    expect(await comparer.compareReads('users', { old: async () => [ann], new: async () => [bob], key, await: true })).toEqual([bob]);
    expect(mismatches).toEqual([expect.objectContaining({ category: 'length', missing: ['1'], extra: ['2'] })]);
    await expect(comparer.compareReads('users', { old: async () => [ann], new: async () => Promise.reject(new Error('new down')), key })).rejects.toThrow('new down');
  });
});

describe('retrying a mismatch', () => {
  it('reads both stores again after 500 ms (the default) and drops a difference that went away', async () => {
    vi.useFakeTimers();
    const { comparer, comparisons, mismatches } = setup(compared(), { retryDelayMs: undefined });
    let calls = 0;
    const lagging = async () => (calls++ === 0 ? [] : [ann]);
    const comparing = comparer.compareReads('users', { old: async () => [ann], new: lagging, key, await: true });
    await vi.advanceTimersByTimeAsync(499);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(await comparing).toEqual([ann]);
    expect(calls).toBe(2);
    expect(mismatches).toEqual([]);
    expect(await comparisons('match', 'equal-on-retry')).toBe(1);
  });

  it('retries at most 10 mismatches a minute (the default), in fixed windows; the rest count as unverified', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { comparer, comparisons, mismatches } = setup(compared());
    const newRead = vi.fn(async () => [bob]);
    const read = () => comparer.compareReads('users', { old: async () => [ann], new: newRead, key, await: true });
    for (let i = 0; i < 12; i += 1) await read();
    expect(mismatches).toHaveLength(10);
    expect(await comparisons('unverified', 'length')).toBe(2);
    expect(newRead).toHaveBeenCalledTimes(22);

    vi.advanceTimersByTime(59_000);
    await read();
    expect(await comparisons('unverified', 'length')).toBe(3);
    vi.advanceTimersByTime(1_000); // A new window: a full allowance again.
    await read();
    expect(mismatches).toHaveLength(11);
  });
});

describe('test mode', () => {
  it('throws on any mismatch, and on a failing new read', async () => {
    const { comparer } = setup(compared(), { throwOnMismatch: true });
    const mismatch = comparer.compareReads('users', { old: async () => [ann], new: async () => [{ ...ann, name: 'Anne' }], key });
    await expect(mismatch).rejects.toBeInstanceOf(ReadMismatchError);
    await expect(mismatch).rejects.toMatchObject({ mismatch: { category: 'value', keys: ['1'], fields: ['name'] } });
    await expect(comparer.compareReads('users', { old: async () => [ann], new: async () => Promise.reject(new Error('no table')), key })).rejects.toThrow(
      'new-store read of users failed',
    );
    expect(await comparer.compareReads('users', { old: async () => [ann], new: async () => [ann], key })).toEqual([ann]);
  });

  it('throws on a mismatch past the retry allowance too', async () => {
    const { comparer } = setup(compared(), { throwOnMismatch: true, retries: { perWindow: 0 } });
    await expect(comparer.compareReads('users', { old: async () => [ann], new: async () => [], key })).rejects.toBeInstanceOf(ReadMismatchError);
  });
});

describe('the read kill switch', () => {
  const failing = vi.fn(async (): Promise<User[]> => Promise.reject(new Error('new down')));
  const readFailing = (comparer: ReadComparer) => comparer.compareReads('users', { old: async () => [ann], new: failing, key, await: true });

  it('stops new reads after repeated errors until the cool-down', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const { comparer, comparisons, registry } = setup(compared(), { killSwitch: { maxErrors: 3, windowMs: 1000, coolDownMs: 5000 } });
    failing.mockClear();
    for (let i = 0; i < 3; i += 1) await readFailing(comparer);
    expect(comparer.killSwitch()).toMatchObject({ tripped: true, recentErrors: 3 });
    expect(await metricValue(registry, 'ferry_client_kill_switch_tripped', { migration: 'm', path: 'read' })).toBe(1);

    expect(await readFailing(comparer)).toEqual([ann]);
    expect(failing).toHaveBeenCalledTimes(3);
    expect(await comparisons('skipped', 'kill-switch')).toBe(1);

    vi.advanceTimersByTime(5000);
    expect(comparer.killSwitch().tripped).toBe(false);
    expect(await metricValue(registry, 'ferry_client_kill_switch_tripped', { migration: 'm', path: 'read' })).toBe(0);
    await readFailing(comparer);
    expect(failing).toHaveBeenCalledTimes(4);
  });

  it('resets when the flags change', async () => {
    const flags = compared();
    const { comparer } = setup(flags, { killSwitch: { maxErrors: 2 } });
    await readFailing(comparer);
    await readFailing(comparer);
    expect(comparer.killSwitch().tripped).toBe(true);
    flags.set({ comparePercent: 50 });
    expect(comparer.killSwitch().tripped).toBe(false);
  });

  it('never stops new reads the caller depends on', async () => {
    // A source whose flags change without a new version, so the switch stays tripped.
    let flags: Flags = { ...initialFlags, comparePercent: 100, version: 4 };
    const comparer = createReadComparer({ flags: { get: async () => flags }, killSwitch: { maxErrors: 1 }, retryDelayMs: 0, logger: memoryLogger() });
    await readFailing(comparer);
    expect(comparer.killSwitch().tripped).toBe(true);
    flags = { ...flags, readFrom: 'new' };
    expect(await comparer.compareReads('users', { old: async () => [ann], new: async () => [bob], key })).toEqual([bob]);
    expect(comparer.killSwitch().tripped).toBe(true);
  });
});
