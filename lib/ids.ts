/**
 * The ids and names Ferry's parts share across a boundary, each built and read back in one place:
 * workflow ids (the workflow, the CLI, scripts, metrics and logs all derive them), the key that
 * names a table (also the tombstone key applications write) and the default task queue. Pure:
 * workflow code and the client library import it.
 */

/** The task queue every Ferry worker polls unless told otherwise (FERRY_TASK_QUEUE). */
export const DEFAULT_TASK_QUEUE = 'ferry';

const MIGRATION_PREFIX = 'ferry/';

/** Ids read well in Temporal's UI and sort by start time: ferry/<plan name>/<UTC time to the ms>. */
export function newMigrationId(planName: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-');
  return `${MIGRATION_PREFIX}${planName}/${stamp}`;
}

/** A doctor run's workflow id: under its plan, beside the plan's migrations. */
export function doctorWorkflowId(planName: string, now: Date): string {
  return `${MIGRATION_PREFIX}${planName}/doctor-${now.toISOString()}`;
}

/**
 * The migration a workflow id belongs to (`ferry/<plan>/<time>`, also for its shards and
 * checks below it); null for an id Ferry did not make.
 */
export function migrationIdOf(workflowId: unknown): string | null {
  if (typeof workflowId !== 'string' || !workflowId.startsWith(MIGRATION_PREFIX)) return null;
  return workflowId.split('/').slice(0, 3).join('/');
}

/** The copy of one shard: `<migration id>/shard-<n>`. Shards report to their migration by this id's parent. */
export function shardWorkflowId(migrationId: string, index: number): string {
  return `${shardWorkflowIdPrefix(migrationId)}${index}`;
}

/** What the ids of every shard of one migration start with. */
export function shardWorkflowIdPrefix(migrationId: string): string {
  return `${migrationId}/shard-`;
}

/** The query a running copy call reads its shard's throttle and pause by (workflows/messages.ts). */
export const SHARD_CONTROL_QUERY = 'shardControl';

/** The shard index at the end of a shard's (or a verification shard's) workflow id; null for another id. */
export function shardIndexOf(workflowId: string | undefined): number | null {
  const match = /\/shard-(\d+)$/.exec(workflowId ?? '');
  return match ? Number(match[1]) : null;
}

/**
 * What the verification shards of one pass of a running migration share: `<migration id>/verify-<pass>`
 * (`-sample` for a sampled pass). `ferry status` counts the pass's shards by this prefix.
 */
export function verifyPassPrefix(migrationId: string, pass: number, sampled = false): string {
  return `${migrationId}/verify-${pass}${sampled ? '-sample' : ''}`;
}

/** One shard of one verification pass: `<migration id>/verify-<pass>/shard-<n>`. */
export function verifyShardWorkflowId(migrationId: string, pass: number, index: number, sampled = false): string {
  return `${verifyPassPrefix(migrationId, pass, sampled)}/shard-${index}`;
}

/** The n-th check of an ended migration: `<migration id>/check-<n>`. */
export function checkWorkflowId(migrationId: string, n: number): string {
  return `${migrationId}/check-${n}`;
}

/** One shard of one pass of a check: `<check id>/pass-<pass>/shard-<n>`. */
export function checkShardWorkflowId(checkId: string, pass: number, index: number): string {
  return `${checkId}/pass-${pass}/shard-${index}`;
}

/** A mismatch report of a migration, asked for at `at` (ms). */
export function mismatchesWorkflowId(migrationId: string, at: number): string {
  return `${migrationId}/mismatches-${at}`;
}

export interface TableRef {
  schema: string;
  table: string;
}

/**
 * How Ferry names a table as data: `schema.table`, unquoted. The key of ferry.migrations, of
 * tombstones (applications write it through ferry.record_delete), and the FerryTarget search
 * attribute; also how a person would write the name in a message.
 */
export function tableKey({ schema, table }: TableRef): string {
  return `${schema}.${table}`;
}

/** FNV-1a over the UTF-16 code units of `text`, from `seed`: a short, stable digest with no Node import. */
function fnv1a(text: string, seed: number): string {
  let hash = seed >>> 0;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}

/** What every replication slot and publication Ferry creates begins with (`pg_replication_slots` shows Ferry's by it). */
export const LOGICAL_CAPTURE_PREFIX = 'ferry_';

/**
 * The name of a migration's replication slot and of its publication (logical capture): from the
 * migration id alone, so an abort, a retry or another worker finds them again. Only [a-z0-9_],
 * as slot names must be, within Postgres's 63 bytes; readable, and unique by a digest.
 */
export function logicalCaptureName(migrationId: string): string {
  const readable = migrationId
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 30)
    .replace(/^_+|_+$/g, '');
  const digest = fnv1a(migrationId, 0x811c9dc5) + fnv1a(migrationId, 0x12345679).slice(0, 4);
  return `${LOGICAL_CAPTURE_PREFIX}${readable ? `${readable}_` : ''}${digest}`;
}

/** Suffixes of the ids Ferry gives a migration's children: a migration id ending like one would be taken for a child. */
const CHILD_ID_SUFFIX = /\/(shard-\d+|verify-\d+(-sample)?|check-\d+|pass-\d+|mismatches-\d+|doctor-[^/]*)$/;

/**
 * What is wrong with a migration id an operator chose (`--id`); null when nothing is. Ferry's own
 * ids are `ferry/<plan>/<time>`; a chosen one is read back by the same rules (migrationIdOf).
 */
export function migrationIdProblem(id: string): string | null {
  if (id.trim() === '') return 'is empty';
  if (id.length > 200) return `is ${id.length} characters long; at most 200 are allowed`;
  if (/[\s\p{Cc}]/u.test(id)) return 'holds a space or a control character';
  if (id.split('/').some((part) => part === '')) return 'holds an empty part between slashes';
  if (id.startsWith(MIGRATION_PREFIX) && id.split('/').length !== 3) return `must be ${MIGRATION_PREFIX}<plan name>/<name> (three parts) when it starts with ${MIGRATION_PREFIX}`;
  if (CHILD_ID_SUFFIX.test(id)) return "ends like the id of a migration's shard, check or verification";
  return null;
}
