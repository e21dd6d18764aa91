/** The workflow types a Ferry worker registers. */
export { migrationWorkflow } from './migration';
export type { MigrationInput } from './migration';
export { shardWorkflow } from './shard';
export { verifyShardWorkflow } from './verify-shard';
export { doctorWorkflow } from './doctor';
export { describeSourceWorkflow } from './describe-source';
export { mismatchesWorkflow, verifyMigrationWorkflow } from './verify-migration';
