import { describe, expect, it } from 'vitest';
import { InvalidPlanError, parsePlan, targetColumns, targetKey } from '../../lib/plan';

const valid = `
name: split-full-name
source: { connection: SOURCE_URL, table: users, key: id }
target: { connection: TARGET_URL, table: users_v2 }
transform:
  sql:
    id: id
    first_name: split_part(full_name, ' ', 1)
`;

function problemsOf(text: string) {
  try {
    parsePlan(text);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidPlanError);
    return (error as InvalidPlanError).problems;
  }
  throw new Error('plan was accepted');
}

describe('plan', () => {
  it('fills defaults', () => {
    const plan = parsePlan(valid);
    expect(plan.source.schema).toBe('public');
    expect(plan.target.schema).toBe('public');
    expect(plan.throttle).toEqual({ batchSize: 50_000, rowsPerSecond: null, concurrency: 4, targetBatchSeconds: 0.5, checkpointSeconds: 60 });
    expect(plan.conflict).toEqual({ policy: 'ignore' });
    expect(plan.backoff).toEqual({ maxReplicaLagSeconds: 10, maxQuerySeconds: 60, maxUnreadSlotWalMb: 10_240, checkEverySeconds: 1 });
    expect(plan.shards).toEqual({});
    expect(targetKey(plan)).toBe('id');
    expect(targetColumns(plan)).toEqual(['id', 'first_name']);
  });

  it('reports every problem at once, with its path, unknown keys included', () => {
    const problems = problemsOf(`
name: Bad Name
colour: blue
source: { connection: SOURCE_URL, table: users, key: id, shema: x }
target: { connection: 'postgres://app:secret@db/prod', table: '' }
transform: { sql: { first_name: "split_part(full_name, ' ', 1)" } }
throttle: { batchSize: -5 }
`);
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p.message]));
    expect(byPath).toMatchObject({
      name: expect.stringContaining('lower-case'),
      colour: 'is not a known setting',
      'source.shema': 'is not a known setting',
      'target.connection': expect.stringContaining('environment variable'),
      'target.table': 'must not be empty',
      'throttle.batchSize': 'must be between 10 and 100000, not -5',
    });
    expect(problems.length).toBeGreaterThanOrEqual(6);
  });

  it("bounds a gate's timers so that its expiry can be written as a date", () => {
    expect(parsePlan(`${valid}lifecycle: { gates: { expirySeconds: 315360000 } }\n`).lifecycle.gates.expirySeconds).toBe(315_360_000);
    for (const field of ['expirySeconds', 'reminderSeconds', 'figuresEverySeconds']) {
      expect(problemsOf(`${valid}lifecycle: { gates: { ${field}: 9000000000000 } }\n`)).toEqual([
        { path: `lifecycle.gates.${field}`, message: 'must be at most 315360000 (10 years)' },
      ]);
    }
  });

  it('lifts the limit on WAL held for a slot nothing reads with null, and refuses one of 0', () => {
    expect(parsePlan(`${valid}backoff: { maxUnreadSlotWalMb: null }\n`).backoff.maxUnreadSlotWalMb).toBeNull();
    expect(parsePlan(`${valid}backoff: { maxUnreadSlotWalMb: 512 }\n`).backoff.maxUnreadSlotWalMb).toBe(512);
    expect(problemsOf(`${valid}backoff: { maxUnreadSlotWalMb: 0 }\n`).map((p) => p.path)).toEqual(['backoff.maxUnreadSlotWalMb']);
  });

  it('names missing sections', () => {
    const paths = problemsOf('name: x\n').map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['source', 'target', 'transform']));
  });

  it('refuses a document that is not a mapping', () => {
    expect(problemsOf('')).toEqual([{ path: '', message: 'the plan is empty' }]);
    expect(problemsOf('just text')).toEqual([{ path: '', message: expect.stringContaining('not a string') }]);
    expect(problemsOf('- a\n- b')).toEqual([{ path: '', message: expect.stringContaining('not a list') }]);
  });

  it('requires the transform to produce the target key', () => {
    const problems = problemsOf(valid.replace('    id: id\n', ''));
    expect(problems).toEqual([{ path: 'transform.sql', message: 'must produce the target key column "id"' }]);
  });

  it("refuses a module's column named twice, which the copy would write once and verification read twice", () => {
    const problems = problemsOf(valid.replace(/transform:[\s\S]*$/, 'transform: { module: ./split.ts, columns: [id, first_name, id, first_name, last_name] }\n'));
    expect(problems).toEqual([{ path: 'transform.columns', message: 'names "id", "first_name" more than once' }]);
  });

  it('refuses a target that is the source table', () => {
    const problems = problemsOf(valid.replace('TARGET_URL, table: users_v2', 'SOURCE_URL, table: users'));
    expect(problems).toEqual([{ path: 'target.table', message: expect.stringContaining('source table itself') }]);
  });

  it('reports malformed YAML without guessing', () => {
    const problems = problemsOf('name: [unclosed\nsource: {');
    expect(problems[0]!.message).toMatch(/^YAML: /);
  });

  it('refuses duplicate keys, which YAML would otherwise silently overwrite', () => {
    expect(problemsOf(`${valid}\nname: other\n`)[0]!.message).toMatch(/YAML: .*unique/i);
  });

  it('accepts identifiers with quotes and spaces: they are quoted, never refused', () => {
    const plan = parsePlan(valid.replace('table: users,', `table: 'we"ird; DROP TABLE x',`));
    expect(plan.source.table).toBe('we"ird; DROP TABLE x');
  });

  it('refuses identifiers Postgres would truncate', () => {
    const problems = problemsOf(valid.replace('table: users,', `table: ${'x'.repeat(64)},`));
    expect(problems).toEqual([{ path: 'source.table', message: expect.stringContaining('63 bytes') }]);
  });
});
