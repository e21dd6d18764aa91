/** Dual writes: which stores are written, what the caller gets, and the kill switch. */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createDualWriter, type DualWriter, type DualWriterOptions } from '../../client/dual-write';
import { clientMetrics } from '../../client/metrics';
import { initialFlags, type Flags } from '../../lib/flags';
import { fakeFlags, memoryLogger, metricValue, type FakeFlags } from '../support/client-fakes';

const rows = (rowCount: number) => ({ rowCount });
const fail = (code = '42P01') => Object.assign(new Error('relation "users_v2" does not exist, value 1234-secret'), { code });

function setup(flags: FakeFlags, options: Partial<DualWriterOptions> = {}) {
  const registry = new Registry();
  const logger = memoryLogger();
  const writer = createDualWriter({ flags, metrics: clientMetrics(registry), logger, migration: 'm', ...options });
  return { writer, registry, logger };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('dual writes', () => {
  it('writes only the old store before a migration turns new writes on', async () => {
    const { writer } = setup(fakeFlags());
    const write = vi.fn(async () => rows(1));
    expect(await writer.write('insert-user', { old: async () => rows(1), new: write })).toEqual(rows(1));
    expect(write).not.toHaveBeenCalled();
  });

  it('writes old, then new, and returns the old result', async () => {
    const { writer } = setup(fakeFlags({ writeNew: true }));
    const order: string[] = [];
    const result = await writer.write('insert-user', {
      old: async () => (order.push('old'), { rowCount: 1, which: 'old' }),
      new: async () => (order.push('new'), { rowCount: 1, which: 'new' }),
    });
    expect(order).toEqual(['old', 'new']);
    expect(result).toEqual({ rowCount: 1, which: 'old' });
  });

  it('returns the new result once old writes are off, and passes its errors on', async () => {
    const flags = fakeFlags({ writeOld: false, writeNew: true, readFrom: 'new' });
    const { writer } = setup(flags);
    const old = vi.fn(async () => rows(1));
    expect(await writer.write('insert-user', { old, new: async () => rows(3) })).toEqual(rows(3));
    expect(old).not.toHaveBeenCalled();
    await expect(writer.write('insert-user', { old, new: async () => Promise.reject(fail()) })).rejects.toThrow('does not exist');
  });

  it('records a different number of rows touched, with counts and no values', async () => {
    const { writer, registry, logger } = setup(fakeFlags({ writeNew: true }));
    await writer.write('update-user', { old: async () => rows(2), new: async () => rows(1) });
    await writer.write('update-user', { old: async () => rows(1), new: async () => rows(1) });
    expect(await metricValue(registry, 'ferry_client_dual_write_mismatches_total', { name: 'update-user' })).toBe(1);
    expect(logger.lines).toEqual([{ message: 'ferry: dual write touched different numbers of rows', details: { name: 'update-user', oldRows: 2, newRows: 1 } }]);
  });

  it('keeps a new-store error from the caller while the old write succeeded, and logs no values', async () => {
    const { writer, registry, logger } = setup(fakeFlags({ writeNew: true }));
    expect(await writer.write('insert-user', { old: async () => rows(1), new: async () => Promise.reject(fail()) })).toEqual(rows(1));
    expect(await metricValue(registry, 'ferry_client_dual_write_errors_total', { name: 'insert-user', side: 'new' })).toBe(1);
    expect(JSON.stringify(logger.lines)).not.toContain('secret');
    expect(logger.lines[0]).toEqual({ message: 'ferry: new-store write failed; the old write stands', details: { name: 'insert-user', errorName: 'Error', code: '42P01' } });
  });

  it('passes an old-store error on and does not write new', async () => {
    const { writer, registry } = setup(fakeFlags({ writeNew: true }));
    const write = vi.fn(async () => rows(1));
    await expect(writer.write('insert-user', { old: async () => Promise.reject(new Error('old down')), new: write })).rejects.toThrow('old down');
    expect(write).not.toHaveBeenCalled();
    expect(await metricValue(registry, 'ferry_client_dual_write_errors_total', { name: 'insert-user', side: 'old' })).toBe(1);
  });

  it('once reads come from new, writes new first and returns its result; its error reaches the caller and old is not written', async () => {
    const { writer, registry } = setup(fakeFlags({ writeNew: true, readFrom: 'new' }));
    const order: string[] = [];
    const result = await writer.write('insert-user', {
      old: async () => (order.push('old'), { rowCount: 1, which: 'old' }),
      new: async () => (order.push('new'), { rowCount: 1, which: 'new' }),
    });
    expect(order).toEqual(['new', 'old']);
    expect(result).toEqual({ rowCount: 1, which: 'new' });
    const old = vi.fn(async () => rows(1));
    await expect(writer.write('insert-user', { old, new: async () => Promise.reject(fail('23514')) })).rejects.toThrow('does not exist');
    expect(old).not.toHaveBeenCalled();
    expect(await metricValue(registry, 'ferry_client_dual_write_errors_total', { name: 'insert-user', side: 'new' })).toBe(1);
  });

  it('once reads come from new, passes an old-store error on too and switches no write off: an abort goes back to old alone', async () => {
    const { writer, registry } = setup(fakeFlags({ writeNew: true, readFrom: 'new' }), { killSwitch: { maxErrors: 1 } });
    for (let i = 0; i < 3; i++) {
      await expect(writer.write('insert-user', { old: async () => Promise.reject(fail()), new: async () => rows(1) })).rejects.toThrow('does not exist');
    }
    expect(writer.killSwitch().tripped).toBe(false);
    expect(await metricValue(registry, 'ferry_client_dual_write_errors_total', { name: 'insert-user', side: 'old' })).toBe(3);
    const old = vi.fn(async () => rows(1));
    const write = vi.fn(async () => rows(1));
    expect(await writer.write('insert-user', { old, new: write })).toEqual(rows(1));
    expect(write).toHaveBeenCalledOnce();
    expect(old).toHaveBeenCalledOnce();
    expect(await metricValue(registry, 'ferry_client_dual_write_skipped_total', { name: 'insert-user' })).toBe(0);
  });

  it('refuses a hard delete without the pool of the new store, before writing anything', async () => {
    const { writer } = setup(fakeFlags({ writeNew: true }));
    const old = vi.fn(async () => rows(1));
    await expect(writer.delete('delete-user', { table: 'public.users_v2', key: '1', old, new: async () => rows(1) })).rejects.toThrow('pass `pool`');
    expect(old).not.toHaveBeenCalled();
  });
});

describe('the dual-write kill switch', () => {
  const failingWrite = (writer: DualWriter, write = vi.fn(async () => Promise.reject(fail()))) =>
    writer.write('insert-user', { old: async () => rows(1), new: write });

  it('stops new writes after 5 errors in 60 s (the defaults), and old writes go on', async () => {
    const { writer, registry } = setup(fakeFlags({ writeNew: true }));
    for (let i = 0; i < 4; i += 1) await failingWrite(writer);
    expect(writer.killSwitch()).toMatchObject({ tripped: false, recentErrors: 4 });
    await failingWrite(writer);
    expect(writer.killSwitch()).toMatchObject({ tripped: true, version: 1 });
    expect(await metricValue(registry, 'ferry_client_kill_switch_tripped', { migration: 'm', path: 'write' })).toBe(1);

    const write = vi.fn(async () => rows(1));
    expect(await writer.write('insert-user', { old: async () => rows(1), new: write })).toEqual(rows(1));
    expect(write).not.toHaveBeenCalled();
    expect(await metricValue(registry, 'ferry_client_dual_write_skipped_total', { name: 'insert-user' })).toBe(1);
  });

  it('counts errors in a sliding window: errors spread wider than it never trip', async () => {
    vi.useFakeTimers();
    const { writer } = setup(fakeFlags({ writeNew: true }), { killSwitch: { maxErrors: 3, windowMs: 1000 } });
    for (let i = 0; i < 6; i += 1) {
      await failingWrite(writer);
      vi.advanceTimersByTime(600);
    }
    expect(writer.killSwitch().tripped).toBe(false);
  });

  it('resets after the cool-down, also on the gauge with no write to notice', async () => {
    vi.useFakeTimers();
    const { writer, registry } = setup(fakeFlags({ writeNew: true }), { killSwitch: { maxErrors: 2, windowMs: 1000, coolDownMs: 10_000 } });
    await failingWrite(writer);
    await failingWrite(writer);
    expect(writer.killSwitch()).toMatchObject({ tripped: true, until: new Date(Date.now() + 10_000) });
    vi.advanceTimersByTime(9_999);
    expect(writer.killSwitch().tripped).toBe(true);
    vi.advanceTimersByTime(1);
    expect(writer.killSwitch().tripped).toBe(false);
    expect(await metricValue(registry, 'ferry_client_kill_switch_tripped', { migration: 'm', path: 'write' })).toBe(0);
    const write = vi.fn(async () => rows(1));
    await writer.write('insert-user', { old: async () => rows(1), new: write });
    expect(write).toHaveBeenCalledOnce();
  });

  it('resets when the flags change, heard through onChange or seen as a new version', async () => {
    const flags = fakeFlags({ writeNew: true });
    const { writer } = setup(flags, { killSwitch: { maxErrors: 1 } });
    await failingWrite(writer);
    expect(writer.killSwitch().tripped).toBe(true);
    flags.set({ comparePercent: 5 });
    expect(writer.killSwitch().tripped).toBe(false);

    await failingWrite(writer);
    expect(writer.killSwitch().tripped).toBe(true);
    flags.set({ comparePercent: 6 }, true); // A flag source without notifications.
    const write = vi.fn(async () => rows(1));
    await writer.write('insert-user', { old: async () => rows(1), new: write });
    expect(write).toHaveBeenCalledOnce();
    expect(writer.killSwitch().tripped).toBe(false);
  });

  it('never keeps writes from the new store while it is the only one written', async () => {
    // A source whose flags change without a new version, so the switch stays tripped.
    let flags: Flags = { ...initialFlags, writeNew: true, version: 7 };
    const writer = createDualWriter({ flags: { get: async () => flags }, killSwitch: { maxErrors: 1 }, logger: memoryLogger() });
    await failingWrite(writer);
    expect(writer.killSwitch().tripped).toBe(true);
    flags = { ...flags, writeOld: false, readFrom: 'new' };
    const write = vi.fn(async () => rows(1));
    expect(await writer.write('insert-user', { old: async () => rows(9), new: write })).toEqual(rows(1));
    expect(write).toHaveBeenCalledOnce();
  });
});
