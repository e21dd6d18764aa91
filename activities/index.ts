/** Every activity a Ferry worker runs, bound to the worker's database connections. */
import { createFerryMetrics, type FerryMetrics } from '../workers/metrics';
import { createAuditLog } from './audit';
import { createChangeApplier } from './capture/applier';
import { withApplyLock } from './capture/apply-keys';
import { createCaptureTrigger } from './capture/trigger';
import type { Databases } from './connections';
import { createCopier } from './copier';
import { createSourceDescriber } from './describe-source';
import { createDoctor } from './doctor';
import { installFerrySchema } from './ferry-schema';
import { createFlagSetter } from './flags';
import { createInspector } from './inspector';
import { createMigrationRegistry } from './migration-registry';
import { createShardPlanner } from './shard-planner';
import { withHeartbeats } from './heartbeats';
import { createVerificationRecord } from './verification-runs';
import { createVerifier } from './verifier';
import type { Plan } from '../lib/plan';
import { capturesWithTrigger } from '../lib/capture';
import { transformDirFromEnv } from './module-transform';

export interface ActivityDependencies {
  databases: Databases;
  /** Where the activities record Ferry's metrics. (Default: a registry of their own, not served) */
  metrics?: FerryMetrics;
  /**
   * The only directory transform modules load from (links resolved); null loads none.
   * (Default: FERRY_TRANSFORM_DIR, else none)
   */
  transformDir?: string | null;
}

/** An activity that heartbeats from a timer while it runs (it keeps no checkpoint of its own). */
function beating<I, O>(activity: (input: I) => Promise<O>): (input: I) => Promise<O> {
  return (input) => withHeartbeats(() => activity(input));
}

/**
 * With trigger capture, a write of rows re-read from the source (a repair, a retry) holds the
 * change apply's lock, so it never lands after a newer change was applied to the same key.
 */
function orderedWithCapture<I extends { migrationId: string; plan: Plan }, O>(databases: Databases, activity: (input: I) => Promise<O>): (input: I) => Promise<O> {
  return (input) =>
    capturesWithTrigger(input.plan) ? withApplyLock(databases.pool(input.plan.target.connection), input.migrationId, () => activity(input)) : activity(input);
}

export function createActivities({ databases, metrics = createFerryMetrics(), transformDir = transformDirFromEnv() }: ActivityDependencies) {
  const activities = {
    ...createInspector(databases, transformDir),
    ...createCopier(databases, metrics, transformDir),
    ...createShardPlanner(databases),
    ...createFlagSetter(databases),
    ...createMigrationRegistry(databases),
    ...createVerifier(databases, transformDir),
    ...createDoctor(databases),
    ...createSourceDescriber(databases),
    ...createVerificationRecord(databases),
    ...createAuditLog(databases),
    ...createCaptureTrigger(databases),
    ...createChangeApplier(databases, transformDir, metrics).activities,
    /** Installs Ferry's schema (tombstones, failed records) on the target. Safe to run twice. */
    async prepareTarget({ plan }: { plan: Plan }): Promise<void> {
      await installFerrySchema(databases.pool(plan.target.connection));
    },
  };
  // The long ones heartbeat their checkpoints already. These heartbeat too, so that under a
  // 10 s heartbeat timeout a dead worker's flag change or inspection is taken over as fast as
  // its copy, not at its start-to-close timeout.
  return {
    ...activities,
    inspect: beating(activities.inspect),
    planShards: beating(activities.planShards),
    prepareTarget: beating(activities.prepareTarget),
    claimTarget: beating(activities.claimTarget),
    releaseTarget: beating(activities.releaseTarget),
    setFlags: beating(activities.setFlags),
    gateFigures: beating(activities.gateFigures),
    mismatchReport: beating(activities.mismatchReport),
    verifyCoverage: beating(activities.verifyCoverage),
    recheckOpenMismatches: beating(activities.recheckOpenMismatches),
    beginVerificationRun: beating(activities.beginVerificationRun),
    finishVerificationRun: beating(activities.finishVerificationRun),
    doctor: beating(activities.doctor),
    describeSource: beating(activities.describeSource),
    repairMismatches: orderedWithCapture(databases, activities.repairMismatches),
    retryFailedRecords: orderedWithCapture(databases, activities.retryFailedRecords),
    installCapture: beating(activities.installCapture),
    removeCapture: beating(activities.removeCapture),
  };
}

export type FerryActivities = ReturnType<typeof createActivities>;
