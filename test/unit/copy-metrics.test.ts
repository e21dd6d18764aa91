/**
 * The copy's gauges say what runs on this worker now: two attempts of one shard that overlap
 * (a heartbeat timed out, the old attempt has not stopped yet) keep the shard's gauges until the
 * last one ends, and nothing a view records after its end brings a gauge back. The source's
 * health gauges go with the migration's last copy on the worker.
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createCopyMetrics } from '../../activities/copy/metrics';

async function series(registry: Registry): Promise<string[]> {
  const text = await registry.metrics();
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
}

const health = { replicaLagSeconds: 7, longestQuerySeconds: 3, longestQueryPid: 42, unreadSlot: null };

describe('copy metrics', () => {
  it('keeps a shard gauge while an overlapping attempt still runs, and leaves none once both end', async () => {
    const registry = new Registry();
    const metrics = createCopyMetrics(registry);
    const first = metrics.shard('orders', 0);
    const second = metrics.shard('orders', 0);
    first.throttle('paused');
    first.end();
    expect(await series(registry)).toContain('ferry_throttled{migration="orders",shard="0",reason="paused"} 1');
    expect(await series(registry)).toContain('ferry_copies_running{migration="orders"} 1');

    second.end();
    // A late report from an attempt that has ended does not bring its gauges back.
    first.throttle('rate');
    second.throttle('paused');
    const after = await series(registry);
    expect(after.filter((line) => line.startsWith('ferry_throttled'))).toEqual([]);
    expect(after).toContain('ferry_copies_running{migration="orders"} 0');
  });

  it("removes the source's health gauges when the migration's last copy on this worker ends", async () => {
    const registry = new Registry();
    const metrics = createCopyMetrics(registry);
    const shard0 = metrics.shard('orders', 0);
    const shard1 = metrics.shard('orders', 1);
    const other = metrics.shard('invoices', 0);
    shard0.sourceHealth(health);
    other.sourceHealth(health);
    shard0.end();
    expect(await series(registry)).toContain('ferry_source_replica_lag_seconds{migration="orders"} 7');

    shard1.end();
    shard0.sourceHealth(health);
    const after = await series(registry);
    expect(after.some((line) => line.startsWith('ferry_source_replica_lag_seconds{migration="orders"}'))).toBe(false);
    expect(after.some((line) => line.startsWith('ferry_source_longest_query_seconds{migration="orders"}'))).toBe(false);
    expect(after).toContain('ferry_source_replica_lag_seconds{migration="invoices"} 7');
    other.end();
  });

  it('counts the rows an attempt copied even when it reports them after its end', async () => {
    const registry = new Registry();
    const metrics = createCopyMetrics(registry);
    const view = metrics.shard('orders', 2);
    view.end();
    view.batch({ rows: 10, written: 9, failed: 1, seconds: 0.1, nextBatchSize: 100, rowsPerSecond: null });
    const after = await series(registry);
    expect(after).toContain('ferry_rows_copied_total{migration="orders",shard="2"} 9');
    expect(after.some((line) => line.startsWith('ferry_batch_size_rows'))).toBe(false);
  });
});
