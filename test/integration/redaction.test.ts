/**
 * One redaction for every error text that leaves a worker, tried on real errors: Postgres's own
 * (produced here, on a real database) and JavaScript's, each carrying a value that must go while
 * what went wrong stays readable.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redactErrorText, redactMessage, rootMessage, transformErrorSummary } from '../../lib/errors';
import { redactInPlace } from '../../workers/redaction';
import { createTestDatabase, sql } from '../support/harness';

interface Case {
  /** What the error is about. */
  name: string;
  /** SQL that fails with the error; or a function that throws it. */
  fails: string | (() => unknown);
  /** Values that must not survive redaction. */
  secrets: string[];
  /** Words that must survive it: what went wrong, and where. */
  keeps: string[];
}

const POSTGRES: Case[] = [
  { name: 'integer out of range', fails: `SELECT '99999999999'::int`, secrets: ['99999999999'], keeps: ['out of range for type integer'] },
  { name: 'smallint out of range', fails: `SELECT '70000'::smallint`, secrets: ['70000'], keeps: ['out of range for type smallint'] },
  { name: 'double precision out of range', fails: `SELECT '1e400'::float8`, secrets: ['1e400'], keeps: ['out of range for type double precision'] },
  { name: 'invalid integer', fails: `SELECT 'acct-5521-SECRET'::int`, secrets: ['acct-5521-SECRET'], keeps: ['invalid input syntax for type integer'] },
  { name: 'invalid uuid', fails: `SELECT 'not-a-uuid-SECRET'::uuid`, secrets: ['not-a-uuid-SECRET'], keeps: ['invalid input syntax for type uuid'] },
  { name: 'invalid json', fails: `SELECT '{"card": 4111SECRET'::json`, secrets: ['4111SECRET', 'card'], keeps: ['invalid input syntax for type json'] },
  { name: 'invalid jsonb', fails: `SELECT '{"ssn": "078-05-1120", oops}'::jsonb`, secrets: ['078-05-1120', 'ssn'], keeps: ['invalid input syntax for type json'] },
  { name: 'invalid timestamp', fails: `SELECT 'SECRET o''clock'::timestamp`, secrets: ['SECRET'], keeps: ['invalid input syntax for type timestamp'] },
  { name: 'invalid date', fails: `SELECT 'born-SECRET'::date`, secrets: ['born-SECRET'], keeps: ['invalid input syntax for type date'] },
  { name: 'invalid interval', fails: `SELECT 'SECRET days'::interval`, secrets: ['SECRET'], keeps: ['invalid input syntax for type interval'] },
  { name: 'invalid boolean', fails: `SELECT 'maybe-SECRET'::boolean`, secrets: ['maybe-SECRET'], keeps: ['invalid input syntax for type boolean'] },
  { name: 'invalid inet', fails: `SELECT '10.0.SECRET'::inet`, secrets: ['10.0.SECRET'], keeps: ['invalid input syntax for type inet'] },
  { name: 'malformed array', fails: `SELECT '{SECRET'::text[]`, secrets: ['SECRET'], keeps: ['malformed array literal'] },
  { name: 'invalid enum value', fails: `SELECT 'furious-SECRET'::mood`, secrets: ['furious-SECRET'], keeps: ['invalid input value for enum mood'] },
  { name: 'to_date', fails: `SELECT to_date('SECRETX', 'YYYY')`, secrets: ['SECR'], keeps: ['invalid value'] },
  { name: 'a jsonb field cast', fails: `SELECT ('{"pin": "SECRET-PIN"}'::jsonb ->> 'pin')::int`, secrets: ['SECRET-PIN'], keeps: ['invalid input syntax for type integer'] },
  { name: 'duplicate key', fails: `INSERT INTO people VALUES (3, 'alice-SECRET@example.com', 30, 'Alice', 1)`, secrets: ['alice-SECRET@example.com'], keeps: ['duplicate key value violates unique constraint "people_email_key"', 'Key (email)'] },
  { name: 'duplicate composite key', fails: `INSERT INTO pairs VALUES ('SECRET-A', 1)`, secrets: ['SECRET-A'], keeps: ['duplicate key value violates unique constraint "pairs_pkey"', 'Key (a, b)'] },
  { name: 'check constraint', fails: `INSERT INTO people VALUES (4, 'bob@example.com', -5, 'Bob SECRET', 1)`, secrets: ['Bob SECRET', 'bob@example.com'], keeps: ['violates check constraint "people_age_check"', 'relation "people"'] },
  { name: 'not-null', fails: `INSERT INTO people VALUES (5, 'carol@example.com', 40, NULL, 1)`, secrets: ['carol@example.com'], keeps: ['null value in column "name" of relation "people" violates not-null constraint'] },
  { name: 'value too long', fails: `INSERT INTO codes VALUES ('TOO-LONG-SECRET')`, secrets: [], keeps: ['value too long for type character varying(5)'] },
  { name: 'foreign key', fails: `INSERT INTO people VALUES (6, 'dan@example.com', 50, 'Dan', 424242)`, secrets: ['424242'], keeps: ['violates foreign key constraint "people_team_fkey"', 'Key (team)'] },
  { name: 'numeric field overflow', fails: `SELECT 123456.789::numeric(4, 2)`, secrets: [], keeps: ['numeric field overflow'] },
  { name: 'division by zero', fails: `SELECT 1 / (SELECT count(*) FROM codes)::int`, secrets: [], keeps: ['division by zero'] },
  { name: 'a raised error with a quoted value', fails: `DO $$ BEGIN RAISE EXCEPTION 'card "%" refused', '4111-SECRET'; END $$`, secrets: ['4111-SECRET'], keeps: ['refused'] },
];

const JAVASCRIPT: Case[] = [
  { name: 'JSON.parse of a value', fails: () => JSON.parse('{"card": SECRET4111}'), secrets: ['SECRET4111', 'card'], keeps: ['is not valid JSON'] },
  { name: 'JSON.parse of a word', fails: () => JSON.parse('SECRETWORD'), secrets: ['SECRETWORD'], keeps: ['is not valid JSON'] },
  { name: 'BigInt of a word', fails: () => BigInt('SECRET42'), secrets: ['SECRET42'], keeps: ['to a BigInt'] },
  { name: 'BigInt of a fraction', fails: () => BigInt(1234.5678), secrets: ['1234.5678'], keeps: ['cannot be converted to a BigInt'] },
  { name: 'a method of a string value', fails: () => ('SECRET-NAME' as unknown as { trimEnd2: () => void }).trimEnd2(), secrets: ['SECRET-NAME'], keeps: ['is not a function'] },
  { name: 'a property of null', fails: () => (JSON.parse('null') as { name: string }).name, secrets: [], keeps: ['Cannot read properties of null (reading'] },
  { name: 'an invalid date', fails: () => new Date('SECRET-DATE').toISOString(), secrets: [], keeps: ['Invalid time value'] },
  { name: 'a Node argument error', fails: () => Buffer.alloc(4).readUInt32BE(987654), secrets: ['987654'], keeps: ['out of range'] },
];

/** Errors a transform throws with its own text: only their class (and code) may leave. */
const THROWN_BY_TRANSFORMS: Case[] = [
  { name: "a transform's own Error", fails: () => { throw new Error('bad card 4111-1111-SECRET for alice'); }, secrets: ['4111-1111-SECRET', 'alice'], keeps: ['Error thrown by the transform'] },
  { name: "a transform's own TypeError", fails: () => { throw new TypeError('expected a number, got SECRET-TEXT'); }, secrets: ['SECRET-TEXT'], keeps: ['TypeError thrown by the transform'] },
  { name: 'a thrown string', fails: () => { throw 'SECRET-STRING'; }, secrets: ['SECRET-STRING'], keeps: ['thrown by the transform'] },
  { name: 'an error with a code', fails: () => { throw Object.assign(new Error('no SECRET-ACCOUNT'), { code: 'E_ACCOUNT' }); }, secrets: ['SECRET-ACCOUNT'], keeps: ['[E_ACCOUNT]'] },
];

function caught(fails: () => unknown): unknown {
  try {
    fails();
  } catch (error) {
    return error;
  }
  throw new Error('expected it to throw');
}

describe('redaction of error texts', () => {
  let url: string;
  let client: pg.Client;
  const postgresErrors = new Map<string, pg.DatabaseError>();

  beforeAll(async () => {
    url = await createTestDatabase('redaction');
    await sql(url, `
      CREATE TYPE mood AS ENUM ('happy', 'sad');
      CREATE TABLE teams (id int PRIMARY KEY);
      INSERT INTO teams VALUES (1);
      CREATE TABLE people (id int PRIMARY KEY, email text UNIQUE NOT NULL, age int CHECK (age >= 0), name text NOT NULL,
                           team int CONSTRAINT people_team_fkey REFERENCES teams (id));
      INSERT INTO people VALUES (1, 'alice-SECRET@example.com', 30, 'Alice', 1);
      CREATE TABLE pairs (a text, b int, PRIMARY KEY (a, b));
      INSERT INTO pairs VALUES ('SECRET-A', 1);
      CREATE TABLE codes (code varchar(5));`);
    client = new pg.Client({ connectionString: url });
    await client.connect();
    for (const c of POSTGRES) {
      const error = await client.query(c.fails as string).then(
        () => null,
        (e: unknown) => e,
      );
      if (!(error instanceof pg.DatabaseError)) throw new Error(`${c.name}: expected a database error, got ${String(error)}`);
      postgresErrors.set(c.name, error);
    }
  });
  afterAll(async () => {
    await client?.end();
  });

  it('has at least 20 real Postgres and JavaScript errors that carry values', () => {
    expect(POSTGRES.length + JAVASCRIPT.length + THROWN_BY_TRANSFORMS.length).toBeGreaterThanOrEqual(30);
    // The cases are real: the values are in the unredacted texts.
    for (const c of POSTGRES) {
      const error = postgresErrors.get(c.name)!;
      const full = [error.message, error.detail, error.where].join('\n');
      for (const secret of c.secrets) expect(full, c.name).toContain(secret);
    }
    for (const c of [...JAVASCRIPT, ...THROWN_BY_TRANSFORMS]) {
      const error = caught(c.fails as () => unknown);
      for (const secret of c.secrets) expect(error instanceof Error ? error.message : String(error), c.name).toContain(secret);
    }
  });

  it.each(POSTGRES.map((c) => [c.name, c] as const))('Postgres: %s', (_, c) => {
    const error = postgresErrors.get(c.name)!;
    // As pg reports it, as psql prints it (with DETAIL and CONTEXT lines), and wrapped as a cause.
    const texts = [
      redactErrorText(error),
      redactMessage(`ERROR:  ${error.message}\nDETAIL:  ${error.detail ?? ''}\nCONTEXT:  ${error.where ?? ''}`),
      rootMessage(new Error('activity task failed', { cause: error })),
      redactMessage(`${error.message}: ${error.detail ?? ''}`),
    ];
    for (const text of texts) {
      for (const secret of c.secrets) expect(text, `${c.name}: ${text}`).not.toContain(secret);
    }
    for (const keep of c.keeps) expect(redactMessage(`${error.message}\n${error.detail ?? ''}`), c.name).toContain(keep);
    // The boundary at the worker: message, stack and the fields that repeat the values.
    const copy = Object.assign(Object.create(Object.getPrototypeOf(error) as object) as pg.DatabaseError, error, {
      message: error.message,
      stack: error.stack,
    });
    redactInPlace(copy);
    const left = JSON.stringify([copy.message, copy.stack, copy.detail, copy.where, copy.hint]);
    for (const secret of c.secrets) expect(left, c.name).not.toContain(secret);
    expect(copy.code).toBe(error.code);
  });

  it.each(JAVASCRIPT.map((c) => [c.name, c] as const))('JavaScript: %s', (_, c) => {
    const error = caught(c.fails as () => unknown);
    for (const text of [redactErrorText(error), transformErrorSummary(error)]) {
      for (const secret of c.secrets) expect(text, `${c.name}: ${text}`).not.toContain(secret);
    }
    for (const keep of c.keeps) expect(redactErrorText(error), c.name).toContain(keep);
  });

  it.each(THROWN_BY_TRANSFORMS.map((c) => [c.name, c] as const))('thrown by a transform: %s', (_, c) => {
    const summary = transformErrorSummary(caught(c.fails as () => unknown));
    for (const secret of c.secrets) expect(summary, c.name).not.toContain(secret);
    for (const keep of c.keeps) expect(summary, c.name).toContain(keep);
  });

  it("keeps the engine's own message of a mistake in a transform's code, which names a property, not a value", () => {
    expect(transformErrorSummary(caught(() => (JSON.parse('null') as { name: string }).name))).toBe(
      "TypeError: Cannot read properties of null (reading 'name')",
    );
  });

  it("withholds the whole text of an error a trigger or function raised: its author's words quote values bare", async () => {
    for (const raise of [`RAISE EXCEPTION 'email % already used', 'bob-SECRET@example.com'`, `RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'bob-SECRET@example.com is banned'`]) {
      const error = await client.query(`DO $$ BEGIN ${raise}; END $$`).then(() => null, (e: unknown) => e as pg.DatabaseError);
      expect(error?.message).toContain('bob-SECRET@example.com');
      const copy = Object.assign(Object.create(Object.getPrototypeOf(error) as object) as pg.DatabaseError, error, { message: error!.message, stack: error!.stack });
      redactInPlace(copy);
      for (const text of [redactErrorText(error), rootMessage(new Error('activity task failed', { cause: error })), copy.message, copy.stack]) {
        expect(text, raise).toContain('raised by a trigger or function on the target');
        expect(text, raise).not.toContain('SECRET');
      }
    }
  });

  it("leaves Ferry's own messages readable", () => {
    for (const text of [
      'the database refuses the copy: permission denied for table readings_3 [42501]',
      `source key column "id" has no unique index on it alone; keyset batches need a unique key`,
      `transform module /srv/t.ts does not exist on this worker (relative paths are resolved against the worker's working directory, /srv)`,
      'backoff.probe returned 9, over its max 5',
    ]) {
      expect(redactMessage(text)).toBe(text);
    }
  });
});

/**
 * Values Postgres quotes without escaping the quotes they hold: a quote of its own, a line break
 * that starts a HINT line, a naming word, a foreign quotation mark.
 */
const awkwardValue = fc
  .array(
    fc.oneof(
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 5 }),
      fc.constantFrom('"', '\n', '\\', "'", '»', '«', '„', '“', ' column "', '" column "', '\nHINT: ', '\nDETAIL: ', ': "', '" is out of range for type integer'),
      fc.stringMatching(/^[0-9]{4,16}$/),
    ),
    { minLength: 2, maxLength: 6 },
  )
  .map((parts) => parts.join('').replaceAll('\0', ''))
  .filter((value) => value.trim().length >= 6 && !value.includes('<redacted>'));

/** Casts a text parameter into types whose input functions quote it back in their errors. */
const CASTS = ['$1::int', '$1::uuid', '$1::date', '$1::mood', '$1::float8', '$1::timestamptz', '$1::int[]', '$1::interval', "to_date($1, 'YYYY')", "now() AT TIME ZONE $1"];

describe('redaction of errors real Postgres gives for generated values', () => {
  let client: pg.Client;
  const values = fc.sample(awkwardValue, { numRuns: 60, seed: 20240611 });

  beforeAll(async () => {
    const url = await createTestDatabase('redaction_generated');
    await sql(url, `CREATE TYPE mood AS ENUM ('happy', 'sad')`);
    client = new pg.Client({ connectionString: url });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
  });

  async function errorsFor(value: string): Promise<pg.DatabaseError[]> {
    const errors: pg.DatabaseError[] = [];
    for (const cast of CASTS) {
      const failed = await client.query(`SELECT (${cast})::text`, [value]).then(() => null, (e: unknown) => e);
      if (failed instanceof pg.DatabaseError) errors.push(failed);
    }
    // Out of range, a mid-sentence template: Postgres stops reading at the overflow and quotes it all.
    for (const [cast, prefix] of [['$1::int', '99999999999'], ['$1::smallint', '70000'], ['$1::float8', '1e400']] as const) {
      const failed = await client.query(`SELECT (${cast})::text`, [`${prefix}${value}`]).then(() => null, (e: unknown) => e);
      if (failed instanceof pg.DatabaseError) errors.push(failed);
    }
    return errors;
  }

  function expectWithheld(error: pg.DatabaseError, value: string): void {
    const psql = `ERROR:  ${error.message}\nDETAIL:  ${error.detail ?? ''}\nHINT:  ${error.hint ?? ''}\nCONTEXT:  ${error.where ?? ''}`;
    const copy = Object.assign(Object.create(Object.getPrototypeOf(error) as object) as pg.DatabaseError, error, { message: error.message, stack: error.stack });
    redactInPlace(copy);
    // A value the template's own words hold (`" is out of range for type integer`) proves nothing.
    if (error.message.split(value).join('').includes(value)) return;
    for (const text of [redactErrorText(error), redactMessage(psql), rootMessage(new Error('activity task failed', { cause: error })), copy.message, copy.stack, copy.detail, copy.where, copy.hint]) {
      expect(text ?? '', `${error.message} -> ${text}`).not.toContain(value);
    }
  }

  it('withholds every generated value from the errors of casts that quote it', async () => {
    let quoted = 0;
    for (const value of values) {
      for (const error of await errorsFor(value)) {
        if (error.message.includes(value)) quoted++;
        expectWithheld(error, value);
      }
    }
    // The cases are real: Postgres quoted the values in many of its messages.
    expect(quoted).toBeGreaterThan(values.length);
  });

  it('withholds them from messages in another language too', async (context) => {
    const locales = ['de_DE.UTF-8', 'de_DE.utf8', 'fr_FR.UTF-8', 'fr_FR.utf8', 'ru_RU.UTF-8', 'ja_JP.UTF-8'];
    let set: string | undefined;
    for (const locale of locales) {
      const refused = await client.query(`SET lc_messages = '${locale}'`).then(() => false, () => true);
      if (!refused) {
        // A locale the system has, in a server built without translations, still speaks English.
        const probe = await client.query(`SELECT 'x'::int`).then(() => null, (e: unknown) => e as Error);
        if (probe && !probe.message.startsWith('invalid input syntax')) {
          set = locale;
          break;
        }
      }
    }
    if (!set) {
      await client.query('RESET lc_messages');
      context.skip(`this server has no translated messages: none of ${locales.join(', ')} is installed, or it was built without NLS`);
      return;
    }
    try {
      for (const value of values) for (const error of await errorsFor(value)) expectWithheld(error, value);
    } finally {
      await client.query('RESET lc_messages');
    }
  });
});
