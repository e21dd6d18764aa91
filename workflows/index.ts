/** The workflow types a Ferry worker registers. */
export { migrationWorkflow } from './migration';
export type { MigrationInput } from './migration';
export { shardWorkflow } from './shard';
export { verifyShardWorkflow } from './verify-shard';
export { mismatchesWorkflow, verifyMigrationWorkflow } from './verify-migration';
