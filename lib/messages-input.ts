/**
 * The payloads of a migration's messages, parsed from untrusted JSON into trusted values. Anyone
 * with access to Temporal can send any payload (none at all, from the Web UI), so every handler
 * reads its payload through here and never trusts its declared type. Pure: runs in workflows.
 */
import { z } from 'zod';
import { InvalidPlanError, validatePlan, type Plan } from './plan';
import type { ShardCounts } from './progress';
import { pacingBudgetSchema, throttleChangeProblems, type PlanLimits, type ThrottleChange } from './throttle';

/** A parsed payload, or the problems with it: short, and never quoting the values sent. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: string[] };

const MAX_NAME = 200;
const MAX_TEXT = 2000;

const name = z.string().trim().min(1, 'must not be empty').max(MAX_NAME, `must be at most ${MAX_NAME} characters`);
const text = z.string().max(MAX_TEXT, `must be at most ${MAX_TEXT} characters`);

/** What a JSON value is, for messages that must not quote it. */
export function kindOf(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function describe(issue: z.core.$ZodIssue): string[] {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${[...issue.path.map(String), key].join('.')} is not a known field`);
  if (issue.code === 'invalid_type') {
    const expected = { string: 'text', number: 'a number', boolean: 'true or false', array: 'a list', object: 'an object' }[issue.expected as string] ?? issue.expected;
    const message = issue.input === undefined ? 'is required' : `must be ${expected}, not ${kindOf(issue.input)}`;
    return [path ? `${path} ${message}` : `the payload ${message}`];
  }
  return [path ? `${path} ${issue.message}` : issue.message];
}

/**
 * Parses `payload` with `schema`. A payload that is not an object is refused with what it is and
 * the shape expected; `optional` payloads (a missing or null one) parse as an empty object.
 */
function parseWith<T>(schema: z.ZodType<T>, payload: unknown, shape: string, optional: boolean): Parsed<T> {
  const value = optional && (payload === undefined || payload === null) ? {} : payload;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, problems: [`the payload must be an object ${shape}, not ${kindOf(value)}`] };
  }
  const result = schema.safeParse(value, { reportInput: true });
  return result.success ? { ok: true, value: result.data } : { ok: false, problems: result.error.issues.flatMap(describe) };
}

/** Who asked and why, for the record. */
export interface OperatorNote {
  by?: string;
  reason?: string;
}

const noteSchema = z.strictObject({ by: name.optional(), reason: text.optional() });

/**
 * A control character (C0, DEL or C1), which a terminal acts on rather than shows, or one of
 * Unicode's that a reader cannot see or that moves what follows: zero-width characters and
 * marks (U+200B..U+200F, U+2060..U+2064, U+FEFF, U+061C), direction embeddings, overrides and
 * isolates (U+202A..U+202E, U+2066..U+2069), and the line and paragraph separators U+2028 and
 * U+2029, which some viewers break a line at.
 */
export function isControlCode(code: number): boolean {
  return (
    code < 0x20 ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x061c ||
    (code >= 0x200b && code <= 0x200f) ||
    (code >= 0x2028 && code <= 0x202e) ||
    (code >= 0x2060 && code <= 0x2064) ||
    (code >= 0x2066 && code <= 0x2069) ||
    code === 0xfeff
  );
}

/** A terminal's escapes, a carriage return, a newline or a hidden direction change would let a name read as another where it is shown. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (isControlCode(text.charCodeAt(i))) return true;
  return false;
}

/**
 * Problems with who a request says asked: a name with control characters could show as someone
 * else's in `ferry status` and the reports. Checked where a request is admitted (update
 * validators, the operator API before it sends a signal, and the pause and resume handlers behind
 * a patch), never where a taken request is read, so requests recorded before this check replay
 * as they ran.
 */
export function nameProblems(request: object): string[] {
  const by = (request as { by?: unknown }).by;
  return typeof by === 'string' && hasControlCharacter(by) ? ['by must not contain control characters (a terminal escape, a carriage return, a newline, an invisible or direction-changing character)'] : [];
}

/** pause and resume: the note is optional (the Web UI's signal button sends none). */
export function parseOperatorNote(payload: unknown): Parsed<OperatorNote> {
  return parseWith(noteSchema, payload, '{ by?, reason? }', true);
}

/** retryFailures: an update, so a caller can be told to send an object, even an empty one. */
export function parseRequestNote(payload: unknown): Parsed<OperatorNote> {
  return parseWith(noteSchema, payload, '{ by?, reason? }', false);
}

export interface GateApproval {
  gate: string;
  by: string;
  note?: string;
  /** Approve although verification is not clean; recorded. */
  force?: boolean;
  /**
   * The verification pass whose verdict the approver looked at (its number among all the
   * migration's passes): the approval is refused if the current verdict is another pass's.
   */
  verdictPass?: number;
}

const approver = z.string().trim().min(1, 'is empty: the approver is missing').max(MAX_NAME, `must be at most ${MAX_NAME} characters`);
const approvalSchema = z.strictObject({
  gate: name,
  by: approver,
  note: text.optional(),
  force: z.boolean().optional(),
  verdictPass: z.number().refine(Number.isInteger, 'must be a whole number').min(1, 'must be 1 or more: a pass number as `ferry status` shows it').optional(),
});

export function parseApproval(payload: unknown): Parsed<GateApproval> {
  return parseWith(approvalSchema, payload, '{ gate, by, note?, force?, verdictPass? }', false);
}

export interface GateRejection {
  gate: string;
  by: string;
  reason: string;
}

const rejectionSchema = z.strictObject({ gate: name, by: approver, reason: text.trim().min(1, 'must say why') });

export function parseRejection(payload: unknown): Parsed<GateRejection> {
  return parseWith(rejectionSchema, payload, '{ gate, by, reason }', false);
}

export interface AbortRequest {
  by: string;
  reason: string;
}

const abortSchema = z.strictObject({ by: name, reason: text.trim().min(1, 'must say why') });

export function parseAbortRequest(payload: unknown): Parsed<AbortRequest> {
  return parseWith(abortSchema, payload, '{ by, reason }', false);
}

export interface VerifyRequest {
  /** A quick check of this deterministic sample of keys (0 to 100) instead of every row. */
  samplePercent?: number;
  by?: string;
}

const verifySchema = z.strictObject({
  samplePercent: z.number().gt(0, 'must be above 0').max(100, 'must be at most 100').optional(),
  by: name.optional(),
});

export function parseVerifyRequest(payload: unknown): Parsed<VerifyRequest> {
  return parseWith(verifySchema, payload, '{ samplePercent?, by? }', false);
}

export interface MismatchesRequest {
  showValues?: boolean;
  limit?: number;
}

const mismatchesSchema = z.strictObject({ showValues: z.boolean().optional(), limit: z.number().int().min(1).max(10_000).optional() });

export function parseMismatchesRequest(payload: unknown): Parsed<MismatchesRequest> {
  return parseWith(mismatchesSchema, payload, '{ showValues?, limit? }', false);
}

/** The throttle's own schema (lib/throttle.ts) applies: the plan's bounds, in the plan's words. */
export function parseThrottleChange(payload: unknown): Parsed<ThrottleChange> {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    return {
      ok: false,
      problems: [
        `the payload must be an object { rowsPerSecond?, batchSize?, concurrency?, maxReplicaLagSeconds?, maxQuerySeconds?, maxUnreadSlotWalMb?, pacing?, p99Factor?, maxLockWaits?, maxActiveBackends?, by?, reason? }, not ${kindOf(payload)}`,
      ],
    };
  }
  const problems = throttleChangeProblems(payload);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: payload as ThrottleChange };
}

// Between a migration and its shards. Only Ferry sends these, but anyone could.

// Types are checked, not Ferry's own ranges: a newer worker's report must still be read.
const count = z.number().min(0);
const failedRowSchema = z.looseObject({ key: z.string(), code: z.string().nullable(), error: z.string() });

// Loose, not strict: a field added to a shard's report by a newer worker must not make an older
// migration drop its progress. Wrong types are still refused.
// The counts' fields are ShardCounts' own: a field added there and not here fails to compile.
const shardCountsShape = {
  cursor: z.string().nullable(),
  rowsRead: count,
  rowsWritten: count,
  rowsFailed: count,
} satisfies Record<keyof ShardCounts, z.ZodType>;

const shardProgressSchema = z.looseObject({
  index: count,
  ...shardCountsShape,
  batchSize: z.number().positive(),
  throttleReason: z.string().nullable(),
  failures: z.array(failedRowSchema),
  done: z.boolean(),
  error: z.string().nullable(),
  blocked: z.string().optional(),
});

export type ShardProgressPayload = z.output<typeof shardProgressSchema>;

export function parseShardProgress(payload: unknown): Parsed<ShardProgressPayload> {
  return parseWith(shardProgressSchema, payload, '{ index, cursor, rowsRead, ... }', false);
}

const shardThrottleSchema = z.strictObject({
  rowsPerSecond: z.number().positive().nullable(),
  batchSize: z.number().positive(),
});

export function parseShardThrottle(payload: unknown): Parsed<{ rowsPerSecond: number | null; batchSize: number }> {
  return parseWith(shardThrottleSchema, payload, '{ rowsPerSecond, batchSize }', false);
}

const shardLimitsSchema = z.strictObject({
  backoff: z.strictObject({
    maxReplicaLagSeconds: z.number().positive(),
    maxQuerySeconds: z.number().positive(),
    maxUnreadSlotWalMb: z.number().positive().nullable(),
  }),
  budget: pacingBudgetSchema.nullable(),
});

export function parseShardLimits(payload: unknown): Parsed<PlanLimits> {
  return parseWith(shardLimitsSchema, payload, '{ backoff, budget }', false);
}

export function parseShardPause(payload: unknown): Parsed<boolean> {
  return typeof payload === 'boolean' ? { ok: true, value: payload } : { ok: false, problems: [`the payload must be true or false, not ${kindOf(payload)}`] };
}

// The workflow's own input: started by `ferry start`, or by anyone through Temporal.

export interface MigrationInputFields {
  plan: Plan;
  execute: boolean;
  showSampleValues?: boolean;
  rerun?: boolean;
  startedBy?: string;
}

const flagsSchema = z.looseObject({
  execute: z.boolean(),
  showSampleValues: z.boolean().optional(),
  rerun: z.boolean().optional(),
  noApps: z.boolean().optional(),
  startedBy: name.optional(),
});

/**
 * Checks a migration's input with the same plan schema as the CLI; the problems read as the
 * CLI prints them. Fields other than the documented ones are left to the workflow (it carries
 * its status across continue-as-new in the same input).
 */
export function parseMigrationInput(input: unknown): Parsed<MigrationInputFields> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, problems: [`the input must be an object { plan, execute, showSampleValues?, rerun? }, not ${kindOf(input)}`] };
  }
  const problems: string[] = [];
  const flags = flagsSchema.safeParse(input, { reportInput: true });
  if (!flags.success) problems.push(...flags.error.issues.flatMap(describe));
  let plan: Plan | null = null;
  try {
    plan = validatePlan((input as { plan?: unknown }).plan);
  } catch (error) {
    if (!(error instanceof InvalidPlanError)) throw error;
    problems.push(error.message);
  }
  if (problems.length > 0 || !plan || !flags.success) return { ok: false, problems };
  return { ok: true, value: { ...(input as MigrationInputFields), plan } };
}
