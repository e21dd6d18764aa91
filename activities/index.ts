/** Every activity a Ferry worker runs, bound to the worker's database connections. */
import type { Plan } from '../lib/plan';
import type { Databases } from './connections';
import { withHeartbeats } from './heartbeats';
import { createCopier } from './copy/copier';
import { createCopyMetrics, type CopyMetrics } from './copy/metrics';
import { createSourceDescriber } from './inspect/describe-source';
import { createDoctor } from './inspect/doctor';
import { createInspector } from './inspect/inspector';
import { createShardPlanner } from './inspect/shard-planner';
import { createAuditLog } from './state/audit';
import { installFerrySchema } from './state/ferry-schema';
import { createFlagSetter } from './state/flags';
import { createMigrationRegistry } from './state/migration-registry';
import { transformDirFromEnv } from './transform/load';
import { createVerificationRecord } from './verify/verification-runs';
import { createVerifier } from './verify/verifier';
import { capturesChanges } from '../lib/capture';
import { createChangeApplier } from './capture/applier';
import { withApplyLock } from './capture/apply-keys';
import { createCaptureMetrics, type CaptureMetrics } from './capture/metrics';
import { createTableSwap } from './capture/swap';
import { createCaptureTrigger } from './capture/trigger';
import { createLogicalReader } from './capture/logical-reader';
import { createLogicalCaptureSetup } from './capture/logical-setup';

export interface ActivityDependencies {
  databases: Databases;
  /** Where the activities record Ferry's metrics. (Default: a registry of their own, not served) */
  metrics?: CopyMetrics & CaptureMetrics;
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
 * With trigger or logical capture, a write of rows re-read from the source (a repair, a retry) holds the
 * change apply's lock, so it never lands after a newer change was applied to the same key.
 */
function orderedWithCapture<I extends { migrationId: string; plan: Plan }, O>(databases: Databases, activity: (input: I) => Promise<O>): (input: I) => Promise<O> {
  return (input) =>
    capturesChanges(input.plan) ? withApplyLock(databases.pool(input.plan.target.connection), input.migrationId, () => activity(input)) : activity(input);
}

export function createActivities({
  databases,
  metrics = { ...createCopyMetrics(), ...createCaptureMetrics() },
  transformDir = transformDirFromEnv(),
}: ActivityDependencies) {
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
    ...createTableSwap(databases),
    ...createLogicalCaptureSetup(databases),
    ...createLogicalReader(databases),
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
    installLogicalCapture: beating(activities.installLogicalCapture),
    removeLogicalCapture: beating(activities.removeLogicalCapture),
    swapTables: beating(activities.swapTables),
    dropOldTable: beating(activities.dropOldTable),
  };
}

export type FerryActivities = ReturnType<typeof createActivities>;
