/**
 * Verification and the change apply of a capture migration, driven activity by activity (no
 * workflow), for tests that hold verification's verdict against a comparison of their own: a
 * whole pass over the key space, the applier after the backfill, the applier until no change
 * waits, and, for logical capture, the reader of the slot.
 */
import { createChangeApplier } from '../../activities/capture/applier';
import { createLogicalReader, snapshotReadThrough } from '../../activities/capture/logical-reader';
import type { Databases } from '../../activities/connections';
import { transformDirFromEnv } from '../../activities/transform/load';
import { createVerifier, type VerifyShardInput, type VerifyShardResult } from '../../activities/verify/verifier';
import { capturesLogically, startOfCapture, type ApplyCursor } from '../../lib/capture';
import { wholeKeySpace } from '../../lib/key-range';
import type { Plan } from '../../lib/plan';
import { runActivity } from './activities';

/**
 * The ledger these tests (and scripts/bench/verify-damaged.ts) migrate: a balance in numeric
 * becomes cents, the note is kept.
 */
export const LEDGER_TABLES = `
  CREATE TABLE ledger (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
  CREATE TABLE ledger_v2 (id int PRIMARY KEY, cents bigint NOT NULL, note text);`;

export const LEDGER_TRANSFORM_SQL = { id: 'id', cents: '(balance * 100)::bigint', note: 'note' };

/**
 * The comparison of the test's own, sharing no code with Ferry's verifier: md5 of each row's
 * text, the source reshaped by hand; the key and category of every row that differs.
 */
export const LEDGER_DIFFERENCES_SQL = `
  SELECT COALESCE(s.id, t.id)::text AS key,
         CASE WHEN t.id IS NULL THEN 'missing' WHEN s.id IS NULL THEN 'extra' ELSE 'value' END AS category
    FROM (SELECT id, md5(row(id, (balance * 100)::bigint, note)::text) AS h FROM ledger) AS s
    FULL JOIN (SELECT id, md5(row(id, cents, note)::text) AS h FROM ledger_v2) AS t ON t.id = s.id
   WHERE s.h IS DISTINCT FROM t.h ORDER BY COALESCE(s.id, t.id)`;

export type PassInput = Omit<VerifyShardInput, 'cursor' | 'shard' | 'chunkSize' | 'pass' | 'inFlightDelayMs'>;

export function captureVerification(databases: Databases) {
  // The worker's transform directory, as the verifier's: a module transform is applied as it is verified.
  const applier = createChangeApplier(databases, transformDirFromEnv()).activities;

  /** The applier after the backfill (pruning what it applied), from `cursor` for `seconds`. */
  const apply = (migrationId: string, plan: Plan, cursor: ApplyCursor, seconds: number) =>
    runActivity(applier.applyChanges, { migrationId, plan, cursor, rowsPerSecond: null, prune: true, maxSeconds: seconds });

  /** Pass 1 over the whole key space, call after call, with a 10 ms in-flight delay; the counts summed. */
  async function verifyAll(input: PassInput, chunkSize = 1000): Promise<VerifyShardResult> {
    const verifier = createVerifier(databases);
    const total = { done: false, cursor: null as string | null, rowsChecked: 0, inFlight: 0, mismatches: { missing: 0, extra: 0, value: 0 }, examples: [] as VerifyShardResult['examples'] };
    while (!total.done) {
      const result = await runActivity(verifier.verifyShard, { ...input, chunkSize, pass: 1, inFlightDelayMs: 10, shard: { range: wholeKeySpace, partitionValue: null }, cursor: total.cursor });
      Object.assign(total, { done: result.done, cursor: result.cursor });
      total.rowsChecked += result.rowsChecked;
      total.inFlight += result.inFlight;
      for (const category of ['missing', 'extra', 'value'] as const) total.mismatches[category] += result.mismatches[category];
      total.examples.push(...result.examples);
    }
    return total as VerifyShardResult;
  }

  /**
   * A pass with the applier running beside it from the start of capture, as after a backfill:
   * the pass starts `verifyAfterMs` after the applier, or the applier `applyAfterMs` after the pass.
   */
  async function verifyWhileApplying(
    migrationId: string,
    plan: Plan,
    { verifyAfterMs = 0, applyAfterMs = 0, chunkSize }: { verifyAfterMs?: number; applyAfterMs?: number; chunkSize?: number } = {},
  ): Promise<{ result: VerifyShardResult; cursor: ApplyCursor }> {
    let cursor = startOfCapture;
    let verifying = true;
    const applying = (async () => {
      await new Promise((resolve) => setTimeout(resolve, applyAfterMs));
      while (verifying) cursor = (await apply(migrationId, plan, cursor, 0.5)).cursor;
    })();
    let result: VerifyShardResult;
    try {
      await new Promise((resolve) => setTimeout(resolve, verifyAfterMs));
      result = await verifyAll({ migrationId, plan }, chunkSize);
    } finally {
      verifying = false;
      await applying;
    }
    return { result, cursor };
  }

  /** The applier, with the writers stopped, until no change waits (under logical capture, once the reader has logged every change). */
  async function catchUp(migrationId: string, plan: Plan, from: ApplyCursor = startOfCapture): Promise<void> {
    if (capturesLogically(plan) && (await snapshotReadThrough(databases.pool(plan.source.connection), migrationId, 30_000)) === null) {
      throw new Error(`the reader did not log ${migrationId}'s changes within 30 s`);
    }
    let cursor = from;
    for (let round = 0; round < 20; round += 1) {
      const done = await runActivity(applier.applyChanges, { migrationId, plan, cursor, rowsPerSecond: null, prune: true, returnWhenCaughtUp: true, maxSeconds: 2 });
      cursor = done.cursor;
      if (done.lag.changesWaiting === 0) return;
    }
    throw new Error(`the applier did not catch up with ${migrationId}'s changes`);
  }

  /** The reader of a logical capture's slot, call after call, until stopped. */
  function startReader(migrationId: string, plan: Plan): { stop(): Promise<void> } {
    const reader = createLogicalReader(databases);
    let reading = true;
    const loop = (async () => {
      while (reading) await runActivity(reader.readLogicalChanges, { migrationId, plan, maxSeconds: 0.5 });
    })();
    return {
      async stop() {
        reading = false;
        await loop;
      },
    };
  }

  return { applier, apply, verifyAll, verifyWhileApplying, catchUp, startReader };
}
