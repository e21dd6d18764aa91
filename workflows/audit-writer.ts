/**
 * Writes a migration's recorded events to ferry.audit on its target, in order and each row once,
 * from workflow code: the record of its decisions outlives the workflow history's retention.
 */
import { condition, log, patched, proxyActivities } from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { AuditEntry } from '../activities/state/audit';
import { rootMessage } from '../lib/errors';
import type { Plan } from '../lib/plan';
import type { MigrationStatus } from '../lib/status';

const { recordAudit } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10, nonRetryableErrorTypes: ['MissingConnection'] },
});

export interface AuditWriter {
  /** From now on events are written (Ferry's schema is on the target, and the target is this migration's). */
  open(): void;
  /** Writes the events not yet written; never throws, and a write already under way takes them up. */
  write(): Promise<void>;
  /** Writes what is left, and the end of the run. */
  settle(): Promise<void>;
  /** Writes the events not yet written, after a write under way; never throws. */
  flush(): Promise<void>;
}

/** Characters of JSON one write carries at most: a flood of decisions goes in several, each a payload Temporal takes. */
const BATCH_CHARS = 256 * 1024;

/**
 * Where the next write ends (counted from the first event): every event not yet written, or
 * as many as fit in one batch (at least one). Guarded, and asked only of a batch over its size,
 * so histories recorded before it replay as they ran.
 */
function batchEnd(status: MigrationStatus, from: number): number {
  const dropped = status.eventsDropped ?? 0;
  const all = dropped + status.events.length;
  let chars = 0;
  for (let at = from; at < all; at++) {
    chars += JSON.stringify(status.events[at - dropped]).length + 1;
    if (chars > BATCH_CHARS && at > from) return patched('audit-batches-bounded') ? at : all;
  }
  return all;
}

/**
 * `enabled` is false for histories recorded before audits (they must replay as they ran). The
 * count of events written is carried in `status.eventsAudited`, so a continued run goes on
 * where the last one stopped; a row written twice is kept once.
 */
export function auditWriter(enabled: boolean, plan: Plan, migrationId: string, status: MigrationStatus): AuditWriter {
  let ready = false;
  let busy = false;
  let startWritten = false;
  let endEntry: AuditEntry | null = null;

  const write = async (): Promise<void> => {
    if (!enabled || !ready || busy) return;
    busy = true;
    try {
      for (;;) {
        // Counted from the first event: the oldest may be dropped from the status once written.
        const dropped = status.eventsDropped ?? 0;
        const from = status.eventsAudited ?? 0;
        const upTo = batchEnd(status, from);
        const entries: AuditEntry[] = status.events.slice(from - dropped, upTo - dropped).map((event, i) => ({ entry: `event ${from + i}`, ...event }));
        if (!startWritten) {
          const detail = `plan ${plan.name}: ${plan.source.schema}.${plan.source.table} -> ${plan.target.schema}.${plan.target.table}`;
          entries.unshift({ entry: 'start', at: status.startedAt, kind: 'start', by: status.startedBy ?? null, detail });
        }
        const end = endEntry;
        if (end) entries.push(end);
        if (entries.length === 0) return;
        await recordAudit({ plan, migrationId, entries });
        startWritten = true;
        status.eventsAudited = upTo;
        if (end === endEntry) endEntry = null;
      }
    } catch (error) {
      // Tried again with the next event; the history keeps every decision meanwhile.
      log.warn(`migration ${migrationId} could not write its audit to the target: ${rootMessage(error)}`);
    } finally {
      busy = false;
    }
  };

  return {
    open() {
      ready = true;
      void write();
    },
    write,
    async flush() {
      if (!enabled || !ready) return;
      await condition(() => !busy);
      await write();
    },
    async settle() {
      if (!enabled || !ready) return;
      await condition(() => !busy);
      const outcome = status.abort ? `aborted by ${status.abort.by}: ${status.abort.reason}` : status.phase;
      const verification = status.verification
        ? `; verification ${status.verification.clean ? 'clean' : 'not clean'} after ${status.verification.passes} pass(es)`
        : '';
      endEntry = {
        entry: 'end',
        at: status.finishedAt ?? new Date().toISOString(),
        kind: status.phase,
        by: status.abort?.by ?? null,
        detail: `${outcome}; ${status.rowsRead} rows read, ${status.rowsWritten} copied, ${status.rowsFailed} failed (${status.unresolvedFailures} unresolved)${verification}`,
      };
      await write();
    },
  };
}
