/** Rate smoothing, ETA, bars, and the watch view's frames, lines and JSON. */
import { describe, expect, it } from 'vitest';
import type { MigrationReport } from '../../operator';
import { sampleOf, watchFrame, watchJson, watchLine, type WatchSample } from '../../cli/watch';
import { addLiveCopy, copyProgressOf, etaSeconds, formatDuration, nextRate, progressBar, remainingRows, type CopyProgress, type RateState, type ShardCounts } from '../../lib/progress';
import { newMigrationStatus, type MigrationStatus, type ShardStatus } from '../../lib/status';

describe('a running copy call, added to its shard', () => {
  const heartbeat: CopyProgress = { cursor: '250', rowsRead: 50, rowsWritten: 48, rowsFailed: 0, batches: 1, batchSize: 50, throttleReason: null };

  it("adds the call's counts to what the shard reported before it, and moves the cursor on", () => {
    const shard: ShardCounts = { cursor: '200', rowsRead: 200, rowsWritten: 190, rowsFailed: 2 };
    addLiveCopy(shard, copyProgressOf(heartbeat)!);
    expect(shard).toEqual({ cursor: '250', rowsRead: 250, rowsWritten: 238, rowsFailed: 2 });
  });

  it('keeps the cursor the shard has while the call has copied nothing yet', () => {
    const shard: ShardCounts = { cursor: '200', rowsRead: 200, rowsWritten: 190, rowsFailed: 0 };
    addLiveCopy(shard, copyProgressOf({ ...heartbeat, cursor: null, rowsRead: 0, rowsWritten: 0 })!);
    expect(shard).toEqual({ cursor: '200', rowsRead: 200, rowsWritten: 190, rowsFailed: 0 });
  });

  it('reads what holds the call back now, when the heartbeat says', () => {
    expect(copyProgressOf({ ...heartbeat, throttleReason: 'holding: lock-waits' })?.throttleReason).toBe('holding: lock-waits');
    expect(copyProgressOf(heartbeat)?.throttleReason).toBeNull();
    expect(copyProgressOf({ cursor: '1', rowsRead: 1, rowsWritten: 1 })).not.toHaveProperty('throttleReason');
  });

  it('reads nothing from details that are not a copier heartbeat', () => {
    for (const details of [undefined, null, 42, 'x', { cursor: '1' }, { rowsRead: '5', rowsWritten: 1 }]) expect(copyProgressOf(details)).toBeNull();
  });
});

describe('nextRate', () => {
  it('has no rate from one sample, and the plain rate from two', () => {
    const first = nextRate(null, { atMs: 0, rows: 0 });
    expect(first.rowsPerSecond).toBeNull();
    expect(nextRate(first, { atMs: 2000, rows: 1000 }).rowsPerSecond).toBe(500);
  });

  it('moves halfway to a new rate after one half-life, whatever the sampling interval', () => {
    const settled: RateState = { atMs: 0, rows: 0, rowsPerSecond: 100 };
    const once = nextRate(settled, { atMs: 10_000, rows: 3000 }, 10);
    expect(once.rowsPerSecond).toBeCloseTo(200, 6);
    let stepped = settled;
    for (let i = 1; i <= 10; i++) stepped = nextRate(stepped, { atMs: i * 1000, rows: i * 300 }, 10);
    expect(stepped.rowsPerSecond).toBeCloseTo(200, 6);
  });

  it('settles on a steady rate and smooths a burst', () => {
    let state: RateState | null = null;
    for (let i = 0; i <= 60; i++) state = nextRate(state, { atMs: i * 1000, rows: i * 1000 });
    expect(state!.rowsPerSecond).toBeCloseTo(1000, 6);
    const burst = nextRate(state, { atMs: 61_000, rows: 61_000 + 10_000 });
    expect(burst.rowsPerSecond).toBeGreaterThan(1000);
    expect(burst.rowsPerSecond).toBeLessThan(2000);
  });

  it('counts a dip in live rows as no progress, and does not count the recovery twice', () => {
    let state = nextRate(null, { atMs: 0, rows: 1000 });
    state = nextRate(state, { atMs: 1000, rows: 2000 });
    state = nextRate(state, { atMs: 2000, rows: 1500 });
    expect(state.rows).toBe(2000);
    state = nextRate(state, { atMs: 3000, rows: 2000 });
    expect(state.rows).toBe(2000);
    expect(state.rowsPerSecond).toBeLessThan(1000);
  });

  it('ignores a sample taken at the same moment', () => {
    const state = nextRate({ atMs: 1000, rows: 10, rowsPerSecond: 5 }, { atMs: 1000, rows: 20 });
    expect(state).toEqual({ atMs: 1000, rows: 20, rowsPerSecond: 5 });
  });
});

describe('remainingRows and etaSeconds', () => {
  it('divides what is left by the rate', () => {
    expect(etaSeconds(remainingRows(10_000, 4000), 200)).toBe(30);
  });
  it('is unknown without an estimate or a rate, and never negative', () => {
    expect(remainingRows(null, 5)).toBeNull();
    expect(remainingRows(100, 250)).toBe(0);
    expect(etaSeconds(null, 10)).toBeNull();
    expect(etaSeconds(100, null)).toBeNull();
    expect(etaSeconds(100, 0)).toBeNull();
    expect(etaSeconds(0, 0)).toBe(0);
  });
});

describe('progressBar', () => {
  it('fills in eighths of a cell and keeps its width', () => {
    expect(progressBar(0, 10)).toBe('░'.repeat(10));
    expect(progressBar(1, 10)).toBe('█'.repeat(10));
    expect(progressBar(0.5, 10)).toBe('█████░░░░░');
    expect(progressBar(0.55, 10)).toBe('█████▌░░░░');
    for (const f of [0, 0.01, 0.333, 0.5, 0.99, 1, 1.5, -1, NaN]) expect([...progressBar(f, 17)].length).toBe(17);
  });
  it('has a plain ASCII form', () => {
    expect(progressBar(0.3, 10, false)).toBe('###-------');
    expect(progressBar(2, 4, false)).toBe('####');
  });
});

describe('formatDuration', () => {
  it('reads at a glance', () => {
    expect(formatDuration(44.6)).toBe('45s');
    expect(formatDuration(185)).toBe('3m 05s');
    expect(formatDuration(7620)).toBe('2h 07m');
    expect(formatDuration(3 * 86_400 + 4 * 3600)).toBe('3d 04h');
    expect(formatDuration(null)).toBe('unknown');
  });
});

function shard(index: number, overrides: Partial<ShardStatus> = {}): ShardStatus {
  return {
    index,
    range: { after: null, upTo: null },
    partitionValue: null,
    state: 'running',
    cursor: null,
    rowsRead: 0,
    rowsWritten: 0,
    rowsFailed: 0,
    batchSize: 1000,
    throttleReason: null,
    error: null,
    ...overrides,
  };
}

function report(overrides: Partial<MigrationStatus> = {}, runState: MigrationReport['runState'] = 'running'): MigrationReport {
  const status: MigrationStatus = {
    ...newMigrationStatus({
      migrationId: 'ferry/users/20250101-000000Z',
      planName: 'users',
      execute: true,
      startedAt: '2025-01-01T00:00:00.000Z',
      throttle: { rowsPerSecond: 5000, batchSize: 1000, concurrency: 2 },
    }),
    phase: 'backfilling',
    inspection: {
      source: { name: 'public.users', exists: true, estimatedRows: 10_000, keyType: 'bigint' },
    } as unknown as MigrationStatus['inspection'],
    shards: [shard(0, { rowsRead: 3000, rowsWritten: 3000, throttleReason: 'rows/s limit (2500 rows/s for this shard)' }), shard(1, { rowsRead: 1000, rowsWritten: 990, rowsFailed: 10 })],
    rowsRead: 4000,
    rowsWritten: 3990,
    rowsFailed: 10,
    unresolvedFailures: 10,
    ...overrides,
  };
  return { migrationId: status.migrationId, runState, status, failure: null };
}

const gateAt = (name: string): MigrationStatus['gate'] => ({
  name,
  description: name === 'cleanup' ? 'finish' : 'move application reads to the new table',
  waitingSince: '2025-01-01T00:10:00.000Z',
  expiresAt: null,
  reminders: 0,
  approveCommand: `ferry approve x --gate ${name} --by <you>`,
  figures: null,
});

const sample = (r: MigrationReport, rowsPerSecond: number | null = 1000, eta: number | null = 6): WatchSample => ({ report: r, rowsPerSecond, etaSeconds: eta });

describe('sampleOf', () => {
  it('gives the rate and the time left from the estimate', () => {
    const first = sampleOf(report({ rowsRead: 2000 }), null, 0);
    expect(first.sample.rowsPerSecond).toBeNull();
    expect(first.sample.etaSeconds).toBeNull();
    const second = sampleOf(report({ rowsRead: 4000 }), first.rate, 2000);
    expect(second.sample.rowsPerSecond).toBe(1000);
    expect(second.sample.etaSeconds).toBe(6);
  });
  it('has no rate or time left while paused, and measures afresh once copying again', () => {
    const paused = report({ rowsRead: 4000, paused: { since: '2025-01-01T00:01:00Z', by: null, reason: 'peak hours' } });
    const next = sampleOf(paused, { atMs: 0, rows: 2000, rowsPerSecond: 1000 }, 1000);
    expect(next.sample).toMatchObject({ rowsPerSecond: null, etaSeconds: null });
    expect(next.rate).toBeNull();
    const text = watchFrame(next.sample, { columns: 160, rows: 40 }).join('\n');
    expect(text).not.toContain('ETA');
    expect(text).not.toContain('slowed');
    const resumed = sampleOf(report({ rowsRead: 4000 }), next.rate, 600_000);
    expect(resumed.sample.rowsPerSecond).toBeNull(); // not 4000 rows over the ten minutes paused
  });
  it('shows no rate or ETA while verifying, at a gate, or while dual writes soak', () => {
    for (const phase of ['verifying', 'awaiting-approval', 'dual-write'] as const) {
      const next = sampleOf(report({ phase, rowsRead: 10_000 }), { atMs: 0, rows: 10_000, rowsPerSecond: 2100 }, 5000);
      expect(next.sample, phase).toMatchObject({ rowsPerSecond: null, etaSeconds: null });
      const text = watchFrame(next.sample, { columns: 200, rows: 40 }).join('\n');
      expect(text, phase).not.toContain('ETA');
      expect(text, phase).not.toContain('slowed');
      expect(watchLine(next.sample), phase).not.toMatch(/ETA/);
    }
  });
  it('has nothing left once the migration has ended', () => {
    const ended = sampleOf(report({ phase: 'completed', rowsRead: 9000 }, 'completed'), { atMs: 0, rows: 0, rowsPerSecond: 100 }, 1000);
    expect(ended.sample.etaSeconds).toBe(0);
  });
});

describe('watchFrame', () => {
  it('shows phase, bars, rate, ETA, throttle reasons, failures and shards, each within the width', () => {
    const lines = watchFrame(sample(report()), { columns: 100, rows: 40 });
    const text = lines.join('\n');
    expect(text).toContain('phase     backfilling');
    expect(text).toMatch(/progress {2}█{20}░{30} {2}40\.0% {2}4,000 of ~10,000 rows read/);
    expect(text).toContain('rate      1,000 rows/s, ETA 6s');
    expect(text).toContain('rows/s limit (2500 rows/s for this shard) (shard 0)');
    expect(text).toContain('failures  10 unresolved');
    expect(text).toContain('shards    2 running, 0 done, 0 pending, 0 failed');
    expect(text).toMatch(/ {2}0 █{12}░{8} {2}60\.0% running 3,000 rows, batch 1,000/);
    expect(text).not.toContain('\x1b');
    for (const line of lines) expect(line.length).toBeLessThan(100);
    for (const line of watchFrame(sample(report()), { columns: 40, rows: 40 })) expect(line.length).toBeLessThan(40);
  });

  it('labels a pause PAUSED, with by whom and why, instead of the shards reasons', () => {
    const text = watchFrame(sample(report({ paused: { since: '2025-01-01T00:01:00Z', by: 'alice', reason: 'peak hours' } })), { columns: 160, rows: 40 }).join('\n');
    expect(text).toMatch(/^PAUSED {4}for \S.* by alice: peak hours \(since 2025-01-01T00:01:00Z/m);
    expect(text).not.toContain('rows/s limit (2500');
    expect(text).not.toContain('slowed');
  });

  it('tells a verification pass under way and what the last one found', () => {
    const v = { clean: false, passes: 1, rowsChecked: 10_000, missing: 3, extra: 0, value: 2, repaired: 5, inFlight: 0, forcedBy: null };
    const text = watchFrame(sample(report({ phase: 'verifying', verification: v })), { columns: 200, rows: 40 }).join('\n');
    expect(text).toContain('pass 2 under way; pass 1 found 3 missing, 0 extra, 2 differing in 10,000 rows, 5 repaired');
    const live = report({ phase: 'verifying', verification: v, verifyPass: { pass: 2, shardsVerified: 3, shardsRunning: 2, shards: 8 } });
    expect(watchFrame(sample(live), { columns: 200, rows: 40 }).join('\n')).toContain('pass 2 (3 of 8 shards verified, 2 checking); pass 1 found 3 missing');
  });

  it('cuts a long shard list to the terminal height, running shards first', () => {
    const shards = Array.from({ length: 100 }, (_, i) => shard(i, { state: i === 57 ? 'running' : 'done', rowsRead: 100 }));
    const lines = watchFrame(sample(report({ shards })), { columns: 120, rows: 20 });
    expect(lines.length).toBeLessThanOrEqual(20);
    expect(lines.find((l) => /^ {2}\s*\d+ /.test(l))).toMatch(/^ {2}57 /);
    expect(lines.at(-1)).toMatch(/\.\.\. \d+ more shards/);
  });

  it('shows the gate it waits at, for how long, and the approve command only when it would be taken', () => {
    const clean = { clean: true, passes: 1, rowsChecked: 10_000, missing: 0, extra: 0, value: 0, repaired: 0, inFlight: 0, forcedBy: null };
    const gated = report({ phase: 'awaiting-approval', gate: gateAt('cutover-reads'), verification: clean });
    const text = watchFrame(sample(gated), { columns: 200, rows: 40 }).join('\n');
    expect(text).toMatch(/gate {6}waiting at cutover-reads for \S.* \(since 2025-01-01T00:10:00.000Z\): move application reads to the new table/);
    expect(text).toContain('verification clean after 1 pass, 10,000 rows checked');
    expect(text).toContain('approve with: ferry approve x --gate cutover-reads --by <you>');
    expect(watchFrame(sample(report()), { columns: 120, rows: 40 }).join('\n')).not.toContain('gate');

    const unclean = report({ phase: 'awaiting-approval', gate: gateAt('cutover-reads'), verification: { ...clean, clean: false, missing: 4 } });
    const refused = watchFrame(sample(unclean), { columns: 240, rows: 40 }).join('\n');
    expect(refused).not.toContain('approve with:');
    expect(refused).toContain('approval would be refused: verification is not clean (4 missing, 0 extra, 0 differing)');
    expect(refused).toContain('ferry verify ferry/users/20250101-000000Z');

    // Keys of unresolved failed records are not compared: a clean verdict says how many were left out.
    const withFailures = report({ phase: 'awaiting-approval', gate: gateAt('cutover-reads'), verification: clean, rowsFailed: 3, unresolvedFailures: 2 });
    expect(watchFrame(sample(withFailures), { columns: 240, rows: 40 }).join('\n')).toContain(
      'verification clean after 1 pass, 10,000 rows checked; 2 rows with unresolved failed records left out (ferry failures ferry/users/20250101-000000Z)',
    );
  });

  it('says how a run that ended without a status failed', () => {
    const lines = watchFrame(sample({ migrationId: 'm', runState: 'failed', status: null, failure: 'boom' }), { columns: 80, rows: 24 });
    expect(lines).toEqual(['migration m: failed', 'failure: boom']);
  });
});

describe('watchLine and watchJson', () => {
  it('prints one plain line without escape codes', () => {
    const line = watchLine(sample(report()), new Date('2025-01-01T12:34:56Z'));
    expect(line).toBe(
      '12:34:56 backfilling: 4,000 of ~10,000 rows read (40.0%), 3,990 written, 1,000 rows/s, ETA 6s, 10 failed (10 unresolved), slowed: rows/s limit (2500 rows/s for this shard) (shard 0)',
    );
  });
  it('prints the report with rowsPerSecond and etaSeconds as one line of JSON', () => {
    const json = watchJson(sample(report(), 1234.5, 4.9));
    expect(json).not.toContain('\n');
    expect(JSON.parse(json)).toMatchObject({ runState: 'running', status: { rowsRead: 4000 }, rowsPerSecond: 1234.5, etaSeconds: 4.9 });
  });
});
