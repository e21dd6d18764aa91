/**
 * The migration plan: what to copy from where to where, and how. Parsed from untrusted YAML
 * into a trusted value; every problem is reported at once with its path.
 */
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { captureSchema, defaultCapture } from './capture';
import { identifier, safeSql } from './plan-fields';
import { DEFAULT_MAX_UNREAD_SLOT_WAL_MB, planThrottleSchema } from './throttle';


/** Connections are named, never given: the worker resolves the name from its own environment. */
const connectionEnvName = z.string().superRefine((value, ctx) => {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || /\s(host|user|password|dbname)=/.test(` ${value}`)) {
    ctx.addIssue({
      code: 'custom',
      message:
        'looks like a connection string; plans name an environment variable instead ' +
        '(e.g. SOURCE_DATABASE_URL) so that secrets never enter Temporal',
    });
    return;
  }
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) {
    ctx.addIssue({ code: 'custom', message: 'must be the name of an environment variable, like SOURCE_DATABASE_URL' });
  }
});

const tableRef = {
  /** Name of the environment variable holding the connection URL. */
  connection: connectionEnvName,
  /** (Default: public) */
  schema: identifier.default('public'),
  table: identifier,
};

const sourceSchema = z.strictObject({
  ...tableRef,
  /** A unique, ordered column: batches walk it in keyset order. */
  key: identifier,
});

const targetSchema = z.strictObject({
  ...tableRef,
  /**
   * The target's unique column holding the copied key. Under capture (trigger or logical) it must
   * hold the source key unchanged. (Default: the source key's name)
   */
  key: identifier.optional(),
  /**
   * The target column holding the source key each target row came from: needed when target rows
   * are not one per source key (a module transform returning arrays, a target key other than the
   * source key). Verification and repair compare each source key's target rows as a group by it.
   * (Default: none: each target row's key is its source row's key)
   */
  sourceKey: identifier.optional(),
});

const sqlExpression = safeSql('must be a SQL expression over the source row');

const transformSchema = z
  .strictObject({
    /** Target column name to a SQL expression over the source row, evaluated inside Postgres. */
    sql: z
      .record(identifier, sqlExpression)
      .refine((columns) => Object.keys(columns).length > 0, { message: 'must map at least one target column' })
      .optional(),
    /**
     * A JavaScript or TypeScript module whose default export maps a source row to a target row,
     * an array of them, or null to skip it. The path is resolved on the worker.
     */
    module: z.string().min(1, 'must be the path of a module').optional(),
    /** With `module`: the target columns its rows fill, in order. */
    columns: z
      .array(identifier)
      .min(1, 'must name at least one column')
      // Named twice, the copy writes it once but verification reads it twice and never ends a pass.
      .superRefine((columns, ctx) => {
        const twice = [...new Set(columns.filter((column, i) => columns.indexOf(column) !== i))];
        if (twice.length) ctx.addIssue({ code: 'custom', message: `names ${twice.map((c) => `"${c}"`).join(', ')} more than once` });
      })
      .optional(),
  })
  .superRefine((transform, ctx) => {
    if (!transform.sql === !transform.module) {
      ctx.addIssue({ code: 'custom', message: 'must have exactly one of sql (column: expression) or module (a path)' });
    }
    if (transform.module && !transform.columns) {
      ctx.addIssue({ code: 'custom', path: ['columns'], message: 'is required with module: the target columns its rows fill' });
    }
    if (transform.sql && transform.columns) {
      ctx.addIssue({ code: 'custom', path: ['columns'], message: 'goes with module only; with sql the columns are its keys' });
    }
  });

const backoffSchema = z.strictObject({
  /** Pause while a replica of the source replays more than this far behind. (Default: 10) */
  maxReplicaLagSeconds: z.number().positive().default(10),
  /** Pause while a query on the source (not Ferry's) has run longer than this. (Default: 60) */
  maxQuerySeconds: z.number().positive().default(60),
  /**
   * Pause while a replication slot nothing reads (a standby or consumer that is down; Ferry's own
   * capture slots aside) holds more than this many MB of WAL: the WAL a copy writes piles up behind
   * it on the source's disk. null for no limit. (Default: 10240)
   */
  maxUnreadSlotWalMb: z.number().positive().nullable().default(DEFAULT_MAX_UNREAD_SLOT_WAL_MB),
  /** Pause while this SQL, run on the source, returns a number above `max`. */
  probe: z.strictObject({ sql: safeSql('must be a SELECT returning one number'), max: z.number() }).optional(),
  /** How often the limits are checked. (Default: 1) */
  checkEverySeconds: z.number().positive().max(60).default(1),
});

const conflictSchema = z
  .strictObject({
    /**
     * ignore: a row already in the target wins (it was written by the application).
     * newer-wins: the row with the higher `newerBy` value wins. (Default: ignore)
     */
    policy: z.enum(['ignore', 'newer-wins']).default('ignore'),
    /** With newer-wins: a version or updated_at column present in both rows. */
    newerBy: identifier.optional(),
  })
  .superRefine((conflict, ctx) => {
    if (conflict.policy === 'newer-wins' && !conflict.newerBy) {
      ctx.addIssue({ code: 'custom', path: ['newerBy'], message: 'is required with policy newer-wins (a version or updated_at column)' });
    }
    if (conflict.policy === 'ignore' && conflict.newerBy) {
      ctx.addIssue({ code: 'custom', path: ['newerBy'], message: 'goes with policy newer-wins only' });
    }
  });

const shardsSchema = z.strictObject({
  /**
   * Key ranges to split the table into. (Default: by the table's size, one shard per 250,000
   * rows the planner estimates, at most the worker's cores and 2 at least; 1 below 500,000 rows)
   */
  count: z.number().int().min(1).max(1024).optional(),
  /** One shard per distinct value of this column instead (e.g. tenant_id). */
  partitionColumn: identifier.optional(),
});

const failuresSchema = z.strictObject({
  /** Pause the migration for a person once this many rows have failed. (Default: 1000) */
  maxCount: z.number().int().min(0).default(1000),
  /** ... or once this fraction of the rows read has failed, after 1000 rows. (Default: 0.01) */
  maxRate: z.number().min(0).max(1).default(0.01),
});

const verifySchema = z.strictObject({
  /** Verify after the backfill: compare every row, repair, compare again. (Default: true) */
  enabled: z.boolean().default(true),
  /**
   * Source keys per checksum chunk, the largest and the first: after a chunk that differs (read
   * row by row) the next ones halve, down to 1000, and grow back by a quarter after each equal
   * one; a size under 1000 stays fixed. (Default: 10000)
   */
  chunkSize: z.number().int().min(10).max(100_000).default(10_000),
  /** Verify-and-repair passes before giving up; what remains blocks the cutover gate. (Default: 3) */
  maxPasses: z.number().int().min(1).max(20).default(3),
  /** Differences that may remain while verification still counts as clean. (Default: 0) */
  mismatchBudget: z.number().int().min(0).default(0),
  /** A differing row is checked again after this long: a write in flight then matches. (Default: 2) */
  inFlightDelaySeconds: z.number().min(0).max(300).default(2),
  /**
   * Under capture, how long a row that still differs after the delay waits for the change apply
   * to apply its change; a row whose change is not applied by then is a difference. (Default: 30)
   */
  captureWaitSeconds: z.number().min(0).max(3600).default(30),
});

/** A person as the CLI names them: an identity like alice@laptop, or a user name. */
const personName = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

/**
 * The longest a gate's timers may be: 10 years. A gate's expiry becomes a date and its waits
 * Temporal timers; far beyond this the date cannot be written, and the workflow would fail at its
 * first gate, after the whole backfill.
 */
export const GATE_SECONDS_MAX = 10 * 365 * 86_400;
const gateSeconds = z.number().positive().max(GATE_SECONDS_MAX, `must be at most ${GATE_SECONDS_MAX} (10 years)`);

const lifecycleSchema = z.strictObject({
  /**
   * Turn on dual writes (flags: write old and new) before the backfill, and wait for the
   * applications to follow. Off for a pure backfill. (Default: false)
   */
  dualWrites: z.boolean().default(false),
  /**
   * After the backfill and its verification: move reads to the new table, then stop writing the
   * old one, each behind a gate a person approves; then a last cleanup gate. Needs dualWrites.
   * (Default: false)
   */
  cutover: z.boolean().default(false),
  /** While reads come from the new table, compare this percentage of them with the old. (Default: 0) */
  compareReadsPercent: z.number().int().min(0).max(100).default(0),
  /**
   * After a flag change, wait until every application process seen lately has applied it, or
   * this long at most. (Default: 10)
   */
  soakSeconds: z.number().min(0).max(86_400).default(10),
  /**
   * Go ahead with dual writes when no application process follows the flags within soakSeconds
   * (writes then reach only the old table until verification repairs the new one); otherwise
   * the migration pauses for a person. (Default: false)
   */
  noApps: z.boolean().default(false),
  gates: z
    .strictObject({
      /** Log a reminder this often while a gate waits, at most GATE_SECONDS_MAX. (Default: 3600) */
      reminderSeconds: gateSeconds.default(3600),
      /** Abort the migration if a gate waits longer than this, at most GATE_SECONDS_MAX; omit to wait for ever. */
      expirySeconds: gateSeconds.optional(),
      /** Refresh what the approver should look at (dual-read results, source health) this often, at most GATE_SECONDS_MAX. (Default: 300) */
      figuresEverySeconds: gateSeconds.default(300),
      /**
       * Who may approve or reject a gate: identities (`user@host`, or FERRY_OPERATOR) or user
       * names, as the CLI sends them. (Default: anyone)
       */
      approvers: z.array(personName).min(1, 'must name at least one approver').optional(),
      /** Who may approve with --force past unclean verification. (Default: the approvers) */
      forcers: z.array(personName).min(1, 'must name at least one person').optional(),
      /** The identity that started the migration may not approve its gates. (Default: false) */
      fourEyes: z.boolean().default(false),
    })
    .prefault({}),
});

export const subsetSchema = z.strictObject({
  /** A SQL condition over the source row. */
  where: sqlExpression.optional(),
  /** Keys from `from` to `to`, both included. */
  keyRange: z.strictObject({ from: z.string().optional(), to: z.string().optional() }).optional(),
  /** A deterministic sample: about this percentage of keys, the same ones every run. */
  samplePercent: z.number().gt(0).max(100).optional(),
  /** Only these values of shards.partitionColumn. */
  partitionValues: z.array(z.string()).min(1).optional(),
});

export type Subset = z.output<typeof subsetSchema>;

export const planSchema = z
  .strictObject({
    /** Names the migration in workflow ids and reports: lower-case letters, digits and dashes. */
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes (at most 63), starting with a letter or digit'),
    description: z.string().optional(),
    source: sourceSchema,
    target: targetSchema,
    transform: transformSchema,
    throttle: planThrottleSchema.prefault({}),
    backoff: backoffSchema.prefault({}),
    conflict: conflictSchema.prefault({}),
    shards: shardsSchema.prefault({}),
    failures: failuresSchema.prefault({}),
    subset: subsetSchema.optional(),
    verify: verifySchema.prefault({}),
    lifecycle: lifecycleSchema.prefault({}),
    /**
     * How live writes reach the new table: `application` (its own dual writes, or none) or
     * `trigger` (Ferry records each changed key on the source and applies it itself) or
     * `logical` (the same, reading the changes from a logical replication slot; needs wal_level = logical).
     * `capture: trigger` is short for `capture: { mode: trigger }`. (Default: application)
     */
    capture: captureSchema.default(defaultCapture),
  })
  // Cross-field checks run even when other fields have problems, so that every problem is
  // reported at once; they therefore read the plan defensively.
  .superRefine(
    (value, ctx) => {
      if (typeof value !== 'object' || value === null) return;
      const plan = value as DeepPartial<z.output<typeof sourceSchema>, 'source'> &
        DeepPartial<z.output<typeof targetSchema>, 'target'> & {
          transform?: { sql?: Record<string, string>; columns?: string[] };
          conflict?: { newerBy?: string };
          subset?: { partitionValues?: string[] };
          shards?: { partitionColumn?: string };
        };
      const sourceKey = plan.source?.key;
      const targetKeyName = plan.target?.key ?? sourceKey;
      const sqlColumns = plan.transform?.sql;
      const produced = Array.isArray(plan.transform?.columns)
        ? { path: ['transform', 'columns'], names: plan.transform.columns }
        : sqlColumns && typeof sqlColumns === 'object'
          ? { path: ['transform', 'sql'], names: Object.keys(sqlColumns) }
          : null;
      if (typeof targetKeyName === 'string' && produced && !produced.names.includes(targetKeyName)) {
        ctx.addIssue({ code: 'custom', path: produced.path, message: `must produce the target key column "${targetKeyName}"` });
      }
      const capture = (value as { capture?: unknown }).capture;
      const captureMode = typeof capture === 'string' ? capture : (capture as { mode?: unknown } | undefined)?.mode;
      const captured = captureMode === 'trigger' || captureMode === 'logical';
      // Under capture the key rule holds whatever verify.enabled says; its problem stands in for the
      // lineage advice (target.sourceKey), which capture refuses.
      const verifyEnabled = (value as { verify?: { enabled?: unknown } }).verify?.enabled !== false;
      const keyProblem =
        (captured && plan.target?.sourceKey === undefined ? captureKeyProblem(value as Parameters<typeof captureKeyProblem>[0], String(captureMode)) : null) ??
        (verifyEnabled || plan.target?.sourceKey !== undefined ? lineageProblem(value as Parameters<typeof lineageProblem>[0]) : null);
      if (keyProblem) ctx.addIssue({ code: 'custom', path: keyProblem.path.split('.'), message: keyProblem.message });
      const newerBy = plan.conflict?.newerBy;
      if (typeof newerBy === 'string' && produced && !produced.names.includes(newerBy)) {
        ctx.addIssue({ code: 'custom', path: ['conflict', 'newerBy'], message: `must be a column the transform produces ("${newerBy}" is not)` });
      }
      const lifecycle = (value as { lifecycle?: { cutover?: unknown; dualWrites?: unknown } }).lifecycle;
      if (lifecycle?.cutover === true && lifecycle.dualWrites !== true) {
        ctx.addIssue({ code: 'custom', path: ['lifecycle', 'cutover'], message: 'needs lifecycle.dualWrites: reads move to the new table only once it receives every write' });
      }
      if (captured) {
        if (lifecycle?.dualWrites === true) {
          ctx.addIssue({ code: 'custom', path: ['lifecycle', 'dualWrites'], message: `goes with capture: application only; with capture: ${captureMode} Ferry applies the changes itself` });
        }
        if (plan.target?.sourceKey !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['capture'], message: `${captureMode} capture needs one target row per source key; it cannot be combined with target.sourceKey yet` });
        }
      }
      const swap = typeof capture === 'object' && capture !== null ? (capture as { swap?: unknown; dropOldTable?: unknown }) : {};
      if (swap.swap === true) {
        if (captureMode !== 'trigger') {
          ctx.addIssue({ code: 'custom', path: ['capture', 'swap'], message: 'needs capture mode trigger: the swap drains the change log the trigger writes' });
        }
        if (plan.source?.connection !== plan.target?.connection) {
          ctx.addIssue({
            code: 'custom',
            path: ['capture', 'swap'],
            message: 'needs the source and the target in the same database (one connection): a table cannot be renamed into another database',
          });
        }
        if ((value as { transform?: { module?: unknown } }).transform?.module !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['capture', 'swap'], message: 'needs a SQL transform: the swap applies the last changes inside its own transaction' });
        }
        if (lifecycle?.cutover === true) {
          ctx.addIssue({ code: 'custom', path: ['capture', 'swap'], message: 'is the cutover itself; it cannot be combined with lifecycle.cutover (the flags-based cutover)' });
        }
      }
      if (swap.dropOldTable === true && swap.swap !== true) {
        ctx.addIssue({ code: 'custom', path: ['capture', 'dropOldTable'], message: 'needs capture.swap: only a swap leaves an old table aside' });
      }
      const view = (swap as { oldShapeView?: { name?: unknown } }).oldShapeView;
      if (view !== undefined && swap.swap !== true) {
        ctx.addIssue({ code: 'custom', path: ['capture', 'oldShapeView'], message: 'needs capture.swap: the view reads the new table under the old name' });
      }
      if (view && (view.name === plan.source?.table || view.name === plan.target?.table)) {
        ctx.addIssue({ code: 'custom', path: ['capture', 'oldShapeView', 'name'], message: 'must differ from the source and target tables\' names' });
      }
      if (plan.subset?.partitionValues && !plan.shards?.partitionColumn) {
        ctx.addIssue({ code: 'custom', path: ['subset', 'partitionValues'], message: 'needs shards.partitionColumn to say which column the values are of' });
      }
      const { source, target } = plan;
      if (
        source?.connection !== undefined &&
        source.connection === target?.connection &&
        (source.schema ?? 'public') === (target.schema ?? 'public') &&
        source.table === target.table
      ) {
        ctx.addIssue({ code: 'custom', path: ['target', 'table'], message: 'is the source table itself; a migration needs a different target' });
      }
    },
    { when: () => true },
  );

type DeepPartial<T, K extends string> = { [P in K]?: Partial<T> };

/** A SQL expression that is nothing but a reference to `column` of the source row. */
function namesColumn(expression: string, column: string): boolean {
  const quoted = `"${column.replace(/"/g, '""')}"`;
  const bare = /^[a-z_][a-z0-9_$]*$/.test(column) ? [column] : [];
  return [...bare, quoted].some((ref) => [ref, `s.${ref}`].includes(expression.trim()));
}

/**
 * Verification walks ranges of the source key and must find each source row's target rows by it:
 * by the target key when it holds the source key (one row per source key), else by the column
 * target.sourceKey names. A plan where neither holds cannot be verified, never by the wrong key.
 */
export function lineageProblem(plan: {
  source?: { key?: unknown };
  target?: { key?: unknown; sourceKey?: unknown };
  transform?: { sql?: unknown; module?: unknown; columns?: unknown };
}): PlanProblem | null {
  const sourceKey = plan.source?.key;
  const targetKeyName = plan.target?.key ?? sourceKey;
  const lineage = plan.target?.sourceKey;
  const sql = plan.transform?.sql && typeof plan.transform.sql === 'object' ? (plan.transform.sql as Record<string, unknown>) : null;
  const columns = Array.isArray(plan.transform?.columns) ? (plan.transform.columns as unknown[]) : null;
  if (typeof sourceKey !== 'string' || typeof targetKeyName !== 'string') return null;
  if (typeof lineage === 'string') {
    if ((sql && !(lineage in sql)) || (columns && !columns.includes(lineage))) {
      return { path: 'target.sourceKey', message: `must be a column the transform produces ("${lineage}" is not): the source key each row came from` };
    }
    const expression = sql?.[lineage];
    if (typeof expression === 'string' && !namesColumn(expression, sourceKey)) {
      return { path: `transform.sql.${lineage}`, message: `must be the source key column "${sourceKey}" itself: target.sourceKey names it as each row's source key` };
    }
    return null;
  }
  const advice = `set target.sourceKey to the target column that holds the source key ("${sourceKey}") each row came from`;
  if (typeof plan.transform?.module === 'string' && targetKeyName !== sourceKey) {
    return {
      path: 'target.sourceKey',
      message: `is required with a module transform whose target key ("${targetKeyName}") is not the source key ("${sourceKey}"): verification could not tell which source row a target row came from; ${advice}`,
    };
  }
  const keyExpression = sql?.[targetKeyName];
  if (typeof keyExpression === 'string' && !namesColumn(keyExpression, sourceKey)) {
    return {
      path: 'target.sourceKey',
      message: `is required when the target key "${targetKeyName}" is not the source key "${sourceKey}" itself (it is \`${keyExpression}\`): verification could not tell which source row a target row came from; ${advice}`,
    };
  }
  return null;
}

/**
 * The change apply finds a changed source key's target row by that key: it deletes the target row
 * of a key the source no longer holds by the logged source key. So under capture the target key
 * must be the source key carried unchanged. A SQL transform shows it; a module transform cannot,
 * so there the target key must at least be the source key by name (the module carries it as is).
 */
export function captureKeyProblem(
  plan: { source?: { key?: unknown }; target?: { key?: unknown }; transform?: { sql?: unknown; module?: unknown } },
  mode: string,
): PlanProblem | null {
  const sourceKey = plan.source?.key;
  const targetKeyName = plan.target?.key ?? sourceKey;
  if (typeof sourceKey !== 'string' || typeof targetKeyName !== 'string') return null;
  const why = `capture: ${mode} applies a change to the target row whose key is the changed source key (and deletes that row when the source row is gone), so the target key must be the source key carried unchanged`;
  const todo = `carry the source key "${sourceKey}" unchanged into the target key, or use capture: application`;
  if (typeof plan.transform?.module === 'string' && targetKeyName !== sourceKey) {
    return { path: 'target.key', message: `is "${targetKeyName}", not the source key "${sourceKey}": ${why}; with a module transform name the source key as the target key and ${todo}` };
  }
  const sql = plan.transform?.sql && typeof plan.transform.sql === 'object' ? (plan.transform.sql as Record<string, unknown>) : null;
  const keyExpression = sql?.[targetKeyName];
  if (typeof keyExpression === 'string' && !namesColumn(keyExpression, sourceKey)) {
    return {
      path: `transform.sql.${targetKeyName}`,
      message: `must be the source key column "${sourceKey}" itself, not \`${keyExpression}\`: ${why}; ${todo}`,
    };
  }
  return null;
}

export type PlanInput = z.input<typeof planSchema>;
export type Plan = z.output<typeof planSchema>;

export interface PlanProblem {
  /** Dotted path into the plan, like `source.table`; empty for the document as a whole. */
  path: string;
  message: string;
}

export class InvalidPlanError extends Error {
  constructor(
    readonly problems: PlanProblem[],
    readonly origin?: string,
  ) {
    super(
      `${origin ? `${origin}: ` : ''}invalid migration plan (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  - ${p.path || '(plan)'}: ${p.message}`).join('\n'),
    );
    this.name = 'InvalidPlanError';
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((part) => (typeof part === 'number' ? `[${part}]` : String(part))).join('.').replace(/\.\[/g, '[');
}

function describeIssue(issue: z.core.$ZodIssue): PlanProblem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      path: formatPath([...issue.path, key]),
      message: 'is not a known setting',
    }));
  }
  if (issue.code === 'invalid_union') {
    // A setting with a short form (capture: trigger): report the problems of the form that was written.
    const ofType = issue.errors.filter((branch) => !branch.some((i) => i.code === 'invalid_type' && i.path.length === 0));
    const written = ofType.length === 1 ? ofType : ofType.filter((branch) => !branch.some((i) => i.code === 'invalid_value' && i.path.length === 0));
    if (written.length === 1) return written[0]!.flatMap((inner) => describeIssue({ ...inner, path: [...issue.path, ...inner.path] } as z.core.$ZodIssue));
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return [{ path: formatPath(issue.path), message: 'is required' }];
  }
  return [{ path: formatPath(issue.path), message: issue.message }];
}

/** Validates an already-parsed value; throws InvalidPlanError listing every problem. */
export function validatePlan(value: unknown, origin?: string): Plan {
  if (value === null || value === undefined) throw new InvalidPlanError([{ path: '', message: 'the plan is empty' }], origin);
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidPlanError(
      [{ path: '', message: `must be a mapping of settings (name, source, target, transform), not ${Array.isArray(value) ? 'a list' : `a ${typeof value}`}` }],
      origin,
    );
  }
  const result = planSchema.safeParse(value, { reportInput: true });
  if (!result.success) throw new InvalidPlanError(result.error.issues.flatMap(describeIssue), origin);
  return result.data;
}

/** Parses YAML (JSON is YAML too) and validates it. */
export function parsePlan(text: string, origin?: string): Plan {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new InvalidPlanError(
      doc.errors.map((error) => ({ path: '', message: `YAML: ${error.message.split('\n')[0]}` })),
      origin,
    );
  }
  return validatePlan(doc.toJS(), origin);
}

/** Target column names in the order the transform produces them. */
export function targetColumns(plan: Plan): string[] {
  return plan.transform.columns ?? Object.keys(plan.transform.sql ?? {});
}

/** The target's key column name. */
export function targetKey(plan: Plan): string {
  return plan.target.key ?? plan.source.key;
}

/** The target column holding each row's source key, when target rows are not one per source key; null otherwise. */
export function lineageColumn(plan: Plan): string | null {
  return plan.target.sourceKey ?? null;
}
