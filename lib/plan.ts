/**
 * The migration plan: what to copy from where to where, and how. Parsed from untrusted YAML
 * into a trusted value; every problem is reported at once with its path.
 */
import { parseDocument } from 'yaml';
import { z } from 'zod';

/** Postgres truncates identifiers longer than this, which would silently change their meaning. */
const MAX_IDENTIFIER_BYTES = 63;

const identifier = z
  .string()
  .min(1, 'must not be empty')
  .refine((name) => new TextEncoder().encode(name).length <= MAX_IDENTIFIER_BYTES, {
    message: `must be at most ${MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)`,
  })
  .refine((name) => !name.includes('\0'), { message: 'must not contain a NUL character' });

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
  /** The target's unique column holding the copied key. (Default: the source key's name) */
  key: identifier.optional(),
});

const sqlExpression = z
  .string()
  .trim()
  .min(1, 'must be a SQL expression over the source row');

const transformSchema = z.strictObject({
  /** Target column name to a SQL expression over the source row, evaluated inside Postgres. */
  sql: z
    .record(identifier, sqlExpression)
    .refine((columns) => Object.keys(columns).length > 0, { message: 'must map at least one target column' }),
});

const MAX_BATCH_SIZE = 100_000;

const copySchema = z.strictObject({
  /** Rows per batch. (Default: 1000) */
  batchSize: z.number().int().min(1).max(MAX_BATCH_SIZE).default(1000),
  /** Upper bound on rows copied per second across the migration; 0 means no limit. (Default: 0) */
  rowsPerSecond: z.number().int().min(0).default(0),
});

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
    copy: copySchema.default({ batchSize: 1000, rowsPerSecond: 0 }),
  })
  // Cross-field checks run even when other fields have problems, so that every problem is
  // reported at once; they therefore read the plan defensively.
  .superRefine(
    (value, ctx) => {
      if (typeof value !== 'object' || value === null) return;
      const plan = value as DeepPartial<z.output<typeof sourceSchema>, 'source'> &
        DeepPartial<z.output<typeof targetSchema>, 'target'> & { transform?: { sql?: Record<string, string> } };
      const sourceKey = plan.source?.key;
      const targetKeyName = plan.target?.key ?? sourceKey;
      const columns = plan.transform?.sql;
      if (typeof targetKeyName === 'string' && columns && typeof columns === 'object' && !(targetKeyName in columns)) {
        ctx.addIssue({ code: 'custom', path: ['transform', 'sql'], message: `must produce the target key column "${targetKeyName}"` });
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
  const result = planSchema.safeParse(value);
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

/** The target's key column name. */
export function targetKey(plan: Plan): string {
  return plan.target.key ?? plan.source.key;
}
