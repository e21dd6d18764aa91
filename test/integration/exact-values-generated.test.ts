/**
 * Generated values of each type (fast-check, fixed seed) through Ferry's decoder and encoder:
 * Postgres parses each, Ferry decodes the text Postgres prints and encodes it back, and
 * Postgres compares the two as values of the type.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { columnKindOf, postgresInputText, sourceValueParser } from '../../activities/transform/exact-values';
import { createTestDatabase } from '../support/harness';

describe('generated values through the decoder and encoder', () => {
  let url: string;
  let pool: pg.Pool;
  beforeAll(async () => {
    url = await createTestDatabase('exact_gen');
    pool = new pg.Pool({ connectionString: url, max: 1, options: '-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 -c timezone=Europe/Amsterdam' });
  });
  afterAll(() => pool?.end());

  const digits = (min: number, max: number) => fc.stringMatching(new RegExp(`^[0-9]{${min},${max}}$`));
  const decimal = fc.tuple(fc.constantFrom('', '-'), digits(1, 40), fc.option(digits(1, 40), { nil: undefined })).map(([sign, whole, fraction]) => `${sign}${whole.replace(/^0+(?=\d)/, '')}${fraction === undefined ? '' : '.' + fraction}`);
  const jsonNumber = fc.oneof(decimal, fc.double({ noNaN: true, noDefaultInfinity: true }).map(String), fc.tuple(decimal, fc.integer({ min: -300, max: 300 })).map(([d, e]) => `${d}e${e}`));
  const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      jsonNumber,
      fc.string({ unit: 'binary' }).filter((s) => !s.includes('\0') && !/[\ud800-\udfff]/.test(s)).map((s) => JSON.stringify(s)),
      fc.constantFrom('true', 'false', 'null'),
      fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
      fc.array(fc.tuple(fc.string(), tie('value')), { maxLength: 4 }).map((members) => `{${members.map(([k, v]) => `${JSON.stringify(k.replace(/\0/g, ''))}:${v}`).join(',')}}`),
    ),
  })).value;
  const text = fc.string({ unit: 'binary' }).filter((s) => !s.includes('\0') && !/[\ud800-\udfff]/.test(s));
  const GENERATORS: [string, fc.Arbitrary<string>][] = [
    ['jsonb', jsonText],
    ['json', jsonText],
    ['numeric', fc.oneof(decimal, fc.constantFrom('NaN', 'Infinity', '-Infinity'))],
    ['float8', fc.oneof(fc.double().map((d) => (Object.is(d, -0) ? '-0' : String(d))), decimal.filter((d) => d.replace(/^-/, '').split('.')[0]!.length < 300))],
    ['float4', fc.float().map((d) => (Object.is(d, -0) ? '-0' : String(d)))],
    ['int8', fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String)],
    ['int4', fc.integer().map(String)],
    ['text', text],
    ['bytea', fc.uint8Array({ maxLength: 64 }).map((b) => `\\x${Buffer.from(b).toString('hex')}`)],
    ['timestamptz', fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).chain((d) => fc.integer({ min: 0, max: 999 }).map((us) => d.toISOString().replace('Z', `${String(us).padStart(3, '0')}+00`)))],
    ['interval', fc.tuple(fc.integer({ min: -10000, max: 10000 }), fc.integer({ min: -100000, max: 100000 }), fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n })).map(([m, d, us]) => `${m} mons ${d} days ${us} microseconds`)],
    ['text[]', fc.array(fc.option(text, { nil: null }), { maxLength: 5 }).map((items) => `{${items.map((i) => (i === null ? 'NULL' : `"${i.replace(/["\\]/g, '\\$&')}"`)).join(',')}}`)],
    ['float8[]', fc.array(fc.array(fc.option(fc.double(), { nil: null }), { minLength: 2, maxLength: 2 }), { maxLength: 3 }).map((rows) => `{${rows.map((r) => `{${r.map((v) => (v === null ? 'NULL' : Object.is(v, -0) ? '-0' : String(v))).join(',')}}`).join(',')}}`)],
    ['jsonb[]', fc.array(fc.option(jsonText, { nil: null }), { maxLength: 4 }).map((items) => `{${items.map((i) => (i === null ? 'NULL' : `"${i.replace(/["\\]/g, '\\$&')}"`)).join(',')}}`)],
  ];

  it.each(GENERATORS)('%s: every generated value reads back as the same value', async (type, generator) => {
    const inputs = fc.sample(generator, { numRuns: 300, seed: 42 });
    const kinds = await pool.query<{ oid: number; kind: string; base: string; is_array: boolean }>(
      `SELECT t.oid::int AS oid, coalesce(e.typname, t.typname) AS base, t.typcategory = 'A' AS is_array FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' WHERE t.oid = $1::regtype`,
      [type],
    );
    const { oid, base, is_array: isArray } = kinds.rows[0]!;
    // Postgres parses each input; its own text is what the source gives a transform.
    const printed = await pool.query<{ text: string }>({ text: `SELECT (v::${type})::text AS text FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n) ORDER BY n`, values: [inputs] });
    const texts = printed.rows.map((r) => r.text);
    const written = texts.map((t) => postgresInputText(sourceValueParser(oid)(t), 'v', columnKindOf(base, isArray)));
    const canonical = type === 'json' ? 'jsonb' : type;
    const differing = await pool.query<{ source: string; written: string }>({
      text: `SELECT s AS source, w AS written FROM unnest($1::text[], $2::text[]) AS u(s, w) WHERE (s::${type})::${canonical}::text IS DISTINCT FROM (w::${type})::${canonical}::text`,
      values: [texts, written],
    });
    expect(differing.rows).toEqual([]);
  });
});
