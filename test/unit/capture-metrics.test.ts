/**
 * The change apply's gauges on a worker say what its calls found lately: a migration whose apply
 * ran no call there for CAPTURE_GAUGE_TTL_MS has no series on it (another worker has the current
 * figures, or the capture ended), while the counter of keys applied stays.
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CAPTURE_GAUGE_TTL_MS, createCaptureMetrics } from '../../activities/capture/metrics';

describe('capture gauges', () => {
  it('go once no call of the change apply set them for a while, and come back with the next', async () => {
    let now = 1_000_000;
    const registry = new Registry();
    const metrics = createCaptureMetrics(registry, () => now);
    const series = async () => (await registry.metrics()).split('\n').filter((line) => line.startsWith('ferry_capture_'));
    metrics.recordCaptureLag('orders', { changesWaiting: 5000, oldestSeconds: 12, walBytesHeld: 4096 }, true);
    metrics.recordCaptureLag('users', { changesWaiting: 3, oldestSeconds: 1 }, false);
    metrics.captureKeysApplied.inc({ migration: 'orders' }, 7);
    expect(await series()).toEqual([
      'ferry_capture_changes_waiting{migration="orders"} 5000',
      'ferry_capture_changes_waiting{migration="users"} 3',
      'ferry_capture_oldest_change_seconds{migration="orders"} 12',
      'ferry_capture_oldest_change_seconds{migration="users"} 1',
      'ferry_capture_wal_held_bytes{migration="orders"} 4096',
      'ferry_capture_keys_applied_total{migration="orders"} 7',
    ]);

    now += CAPTURE_GAUGE_TTL_MS / 2;
    metrics.recordCaptureLag('users', { changesWaiting: 0, oldestSeconds: 0 }, false);
    now += CAPTURE_GAUGE_TTL_MS / 2 + 1;
    expect(await series()).toEqual([
      'ferry_capture_changes_waiting{migration="users"} 0',
      'ferry_capture_oldest_change_seconds{migration="users"} 0',
      'ferry_capture_keys_applied_total{migration="orders"} 7',
    ]);

    metrics.recordCaptureLag('orders', { changesWaiting: 10, oldestSeconds: 2, walBytesHeld: 0 }, true);
    now += CAPTURE_GAUGE_TTL_MS + 1;
    metrics.recordCaptureLag('orders', { changesWaiting: 0, oldestSeconds: 0, walBytesHeld: 0 }, true);
    expect(await series()).toEqual([
      'ferry_capture_changes_waiting{migration="orders"} 0',
      'ferry_capture_oldest_change_seconds{migration="orders"} 0',
      'ferry_capture_wal_held_bytes{migration="orders"} 0',
      'ferry_capture_keys_applied_total{migration="orders"} 7',
    ]);
  });
});
