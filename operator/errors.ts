/**
 * Why an operator's request was not done, one class per reason: the CLI turns each into its exit
 * code, scripts and tests tell them apart by class. Every message says what to do next.
 */

/**
 * Every refusal or failure of the operator API that is Ferry's own (not an SDK's). Contract: the
 * message is Ferry's text, and any text from elsewhere in it is already redacted, so it can be shown as it is.
 */
export class OperatorError extends Error {}

export class UnknownMigrationError extends OperatorError {
  constructor(readonly migrationId: string) {
    super(`no migration with id "${migrationId}"; \`ferry list\` shows the migrations Temporal knows`);
    this.name = 'UnknownMigrationError';
  }
}

/** An operator's request the migration refused, with its reason; nothing changed. */
export class RefusedError extends OperatorError {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedError';
  }
}

/**
 * An update was sent (a worker polled just before) but none took it in time. Temporal keeps it:
 * it is applied when a worker runs the migration again, so this is not "nothing changed".
 */
export class NoWorkerError extends OperatorError {
  constructor(migrationId: string, seconds: number) {
    super(
      `the change was sent to ${migrationId}, but no Ferry worker applied it within ${seconds} s: Temporal keeps it, and it takes ` +
        `effect when a worker runs the migration again; \`ferry status ${migrationId}\` shows when it has`,
    );
    this.name = 'NoWorkerError';
  }
}

/** What Temporal itself records of a running migration, true with no worker up. */
export interface KnownWithoutWorker {
  migrationId: string;
  taskQueue: string;
  startedAt: string;
  /** The FerryPhase search attribute, as the workflow last set it; null when not searchable. */
  phase: string | null;
}

/** No worker polls the migration's task queue, or none answered: nothing was sent. */
export class NoLiveWorkerError extends OperatorError {
  constructor(
    readonly known: KnownWithoutWorker,
    /** Why no worker is taken to be there, without what to do. */
    readonly why: string,
    /** A worker polled lately: it may be there, only slow to answer. */
    mayBeThere = false,
  ) {
    super(
      `${why}; nothing was sent. ${mayBeThere ? 'If none runs, start one' : 'Start one'} on task queue "${known.taskQueue}" ` +
        `(FERRY_TASK_QUEUE=${known.taskQueue} ferry worker, with the plan's connection variables set) and try again`,
    );
    this.name = 'NoLiveWorkerError';
  }
}

/** Why a check of an ended migration cannot run; nothing was started. */
export class CheckRefusedError extends OperatorError {
  constructor(message: string) {
    super(message);
    this.name = 'CheckRefusedError';
  }
}

/** A started migration ended, or is still inspecting, where the one starting it waited for it to pass its inspection. */
export class InspectionNotPassedError extends OperatorError {
  override name = 'InspectionNotPassedError';
}

/**
 * A migration started, and a worker took it, but none answers now: it runs on and goes on when a
 * worker polls its task queue again. Not "nothing was sent".
 */
export class StartedWithoutWorkerError extends OperatorError {
  constructor(migrationId: string, taskQueue: string, why: string) {
    super(
      `migration ${migrationId} was started and a worker took it, but ${why}: it waits on task queue "${taskQueue}" and goes on when a ` +
        `Ferry worker polls it again (FERRY_TASK_QUEUE=${taskQueue} ferry worker); \`ferry status ${migrationId}\` follows it, and ` +
        `\`ferry abort ${migrationId} --reason ...\` stops it once a worker runs`,
    );
    this.name = 'StartedWithoutWorkerError';
  }
}

/** A started migration was aborted before it passed its inspection, or while the one starting it waited. */
export class MigrationAbortedError extends OperatorError {
  override name = 'MigrationAbortedError';
}

/** A migration that ended without a status (it failed before it could report): there is no record to give. */
export class NoRecordError extends OperatorError {
  override name = 'NoRecordError';
}
