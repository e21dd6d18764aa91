/**
 * The worker's canonical texts against Postgres's own: values a transform might return are
 * written by the copier's encoder into a table of every type the worker knows, and each row's
 * record text and the table's digest, as the verifier computes them in SQL, must equal what the
 * worker computes. Values the worker cannot read exactly must come back undefined, never wrong.
 */
import pg from 'pg';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyTextEncoder, targetColumnKinds } from '../../activities/transform/copy-text';
import { canonicalText, columnTypesSql, rowDigestSum, rowText, type ColumnType } from '../../activities/verify/verify-statements';
import { ChunkDigest, workerFieldOf, type WorkerField } from '../../activities/transform/worker-checksum';
import { jsonNull, LosslessNumber } from '../../lib/json-values';
import { createTestDatabase } from '../support/harness';

const COLUMNS: [string, string][] = [
  ['id', 'int8'],
  ['t', 'text'],
  ['vc', 'varchar(20)'],
  ['small', 'int2'],
  ['i', 'int4'],
  ['n', 'numeric'],
  ['money', 'numeric(12,2)'],
  ['flag', 'boolean'],
  ['u', 'uuid'],
  ['bytes', 'bytea'],
  ['day', 'date'],
  ['local', 'timestamp'],
  ['at', 'timestamptz'],
  ['at_ms', 'timestamptz(3)'],
  ['j', 'json'],
  ['jb', 'jsonb'],
];

class Tagged {
  toJSON() {
    return { tagged: true };
  }
}

/** Rows as a transform returns them; `id` is added in order. */
const VALUES: Record<string, unknown>[] = [
  { t: 'plain', vc: 'short', small: 1, i: 42, n: '1.50', money: '12.30', flag: true, day: '2024-02-29' },
  { t: '', vc: '', small: -32768, i: -2147483648, n: '-0.000', money: 0, flag: false, day: 'infinity' },
  { t: 'with "quotes", (parens) and \\ backslash', n: '00012.3400', money: '-5', flag: 't' },
  { t: 'tab\there\nnewline\r', n: 1e21, money: 0.1, flag: 'false' },
  { t: 'ünïcödé ✓ 🚀', n: 0.30000000000000004, money: '99999999.99' },
  { t: 'NULL', vc: ' padded ', n: '-12', i: '0007' },
  { t: ' ', n: '.5', small: '-0' },
  { n: '1.50e1', money: '2.5E-1' },
  { n: '-12e-5' },
  { n: '0.00', money: '1.500' },
  { n: '-0.00e2', money: '7.' },
  { n: '1.50e-3', money: '-0.000' },
  { n: '100e-2', money: '3e1' },
  { n: '5.', money: '1.5e-1' },
  { u: '8A3E1C8E-0C0B-4E51-9F34-1A2B3C4D5E6F', bytes: Buffer.from([0, 1, 2, 255]) },
  { u: '00000000-0000-0000-0000-000000000000', bytes: Buffer.alloc(0) },
  { bytes: '\\xDEADbeef' },
  { local: '2024-01-02 03:04:05.123456', at: '2024-01-02 03:04:05.123456+00', at_ms: '2024-01-02 03:04:05.123+00' },
  { local: '2024-01-02T03:04:05', at: '2024-01-02 03:04:05.5+02', at_ms: new Date('2024-06-30T23:59:59.999Z') },
  { local: new Date('2020-02-29T12:00:00.000Z'), at: '2024-01-01 01:30:00-05:30', at_ms: '2024-01-01 00:00:00Z' },
  { local: 'infinity', at: '-infinity', at_ms: '2023-12-31 23:59:59.1+14' },
  { at: new Date('1999-12-31T23:59:59.001Z') },
  { at: '2024-03-31 01:59:59.999999-01:00:00' },
  { j: { b: 1, a: 2, aa: [1, 2, { z: null, y: 'x' }] }, jb: { b: 1, a: 2, aa: [1, 2, { z: null, y: 'x' }] } },
  { j: [], jb: {} },
  { j: 'a string', jb: 12.5 },
  { j: true, jb: null },
  { jb: { big: 1e21, tiny: 1.5e-7, negZero: -0, neg: -12.25, max: Number.MAX_SAFE_INTEGER, exp: 1.2345e25, small: 5e-324 } },
  { jb: { text: 'q"uote \\ back\nline\ttab\u0001\u001f\u007f é 🚀 \u2028' } },
  { jb: { é: 1, z: 2, ü: 3, zz: 4, '🚀': 5, aé: 6, '': 7, 'with space': 8, 'q"k': 9 } },
  { jb: { date: new Date('2024-01-02T03:04:05.678Z'), tagged: new Tagged(), skipped: undefined, fn: () => 1, list: [undefined, () => 1] } },
  { jb: { nested: { deeper: { deepest: [[], {}, [[1]]] } } } },
  { n: -1e22, j: { big: 10n ** 30n, digits: new LosslessNumber('12345678901234567890.120') }, jb: { big: -(10n ** 30n), zero: new LosslessNumber('-0.00') } },
  { n: new LosslessNumber('3.14159265358979323846264338327950288'), jb: [jsonNull, null, new LosslessNumber('1.0')] },
  { j: jsonNull, jb: jsonNull },
  { jb: [1] },
  { jb: ['one element'] },
  { jb: '' },
];

/** A random JSON value: keys and strings of mixed scripts, numbers of every size. */
function randomJson(random: () => number, depth = 0): unknown {
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!;
  const text = () => Array.from({ length: Math.floor(random() * 6) }, () => pick(['a', 'Z', ' ', '"', '\\', 'é', '中', '🚀', '\n', ',', '(', '0'])).join('');
  const kind = depth > 3 ? pick(['number', 'string', 'bool']) : pick(['number', 'string', 'bool', 'object', 'array', 'null']);
  switch (kind) {
    case 'number':
      return pick([() => Math.floor(random() * 1000) - 500, () => (random() - 0.5) * 10 ** Math.floor(random() * 60 - 30), () => random()])();
    case 'string':
      return text();
    case 'bool':
      return random() < 0.5;
    case 'null':
      return null;
    case 'array':
      return Array.from({ length: Math.floor(random() * 4) }, () => randomJson(random, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 5) }, () => [text(), randomJson(random, depth + 1)]));
  }
}

function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

describe('worker checksums against Postgres', () => {
  let url: string;
  let client: pg.Client;
  let types: ColumnType[];
  let fields: WorkerField[];

  beforeAll(async () => {
    url = await createTestDatabase('worker_checksum');
    client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`CREATE TABLE canon (${COLUMNS.map(([name, type]) => `${name} ${type}${name === 'id' ? ' PRIMARY KEY' : ''}`).join(', ')})`);
    const found = await client.query<ColumnType>(columnTypesSql({ schema: 'public', table: 'canon' }, COLUMNS.map(([name]) => name)));
    const byName = new Map(found.rows.map((c) => [c.name, c]));
    types = COLUMNS.map(([name]) => byName.get(name)!);
    fields = types.map((c) => workerFieldOf(c)!);
  });
  afterAll(async () => {
    await client?.end();
  });

  /** Writes rows as the copier does, then reads each row's record text as the verifier's SQL makes it. */
  async function postgresRecords(rows: Record<string, unknown>[]): Promise<{ records: string[]; rows: string; digest: string }> {
    await client.query('TRUNCATE canon');
    const encode = copyTextEncoder(
      COLUMNS.map(([name]) => name),
      await targetColumnKinds(client as unknown as pg.Pool, { schema: 'public', table: 'canon' }),
    );
    await pipeline(Readable.from(rows.map(encode)), client.query(copyFrom(`COPY canon (${COLUMNS.map(([name]) => name).join(', ')}) FROM STDIN`)));
    const record = rowText(types.map((c) => canonicalText(`r.${c.name}`, c)));
    const records = await client.query<{ record: string }>(`SELECT ${record} AS record FROM canon AS r ORDER BY id`);
    const sums = await client.query<{ rows: string; digest: string }>(`SELECT count(*)::text AS rows, ${rowDigestSum(record)} AS digest FROM canon AS r`);
    return { records: records.rows.map((r) => r.record), ...sums.rows[0]! };
  }

  const workerRecord = (row: Record<string, unknown>) => `(${types.map((c, i) => fields[i]!(row[c.name])).join(',')})`;

  it('makes the same record text as Postgres for every value it can read, and the same digest', async () => {
    const rows: Record<string, unknown>[] = VALUES.map((values, i) => ({ id: i + 1, ...values }));
    const expected = await postgresRecords(rows);
    const digest = new ChunkDigest();
    rows.forEach((row, i) => {
      for (const [c, column] of types.entries()) {
        expect(fields[c]!(row[column.name]), `row ${i + 1}, column ${column.name}`).toBeDefined();
      }
      const record = workerRecord(row);
      expect(record, `row ${i + 1}`).toBe(expected.records[i]);
      digest.add(record);
    });
    expect({ rows: String(digest.rows), digest: digest.digest() }).toEqual({ rows: expected.rows, digest: expected.digest });
  });

  it('agrees with Postgres on random JSON', async () => {
    const random = seeded(7);
    const rows = Array.from({ length: 400 }, (_, i) => ({ id: i + 1, j: randomJson(random), jb: randomJson(random) }));
    const expected = await postgresRecords(rows);
    const digest = new ChunkDigest();
    for (const [i, row] of rows.entries()) {
      const record = workerRecord(row);
      expect(record, `row ${i + 1}: ${JSON.stringify(row.jb)}`).toBe(expected.records[i]);
      digest.add(record);
    }
    expect(digest.digest()).toBe(expected.digest);
  });

  it('declines what it cannot read exactly, rather than guess', () => {
    const field = (name: string) => fields[types.findIndex((c) => c.name === name)]!;
    const declined: [string, unknown][] = [
      ['at', '2024-01-02 03:04:05'], // no zone: the session's would decide
      ['at', '2024-01-02 03:04:05.1234567+00'], // rounded by Postgres
      ['at', 'Jan 2 2024 03:04:05 +00'], // another input style
      ['at', '2024-02-30 00:00:00+00'], // not a date
      ['at_ms', '2024-01-02 03:04:05.1234+00'], // rounded to the column's milliseconds
      ['money', '1.005'], // rounded to the column's scale
      ['n', 'NaN'],
      ['i', ' 42'],
      ['i', '9999999999'], // out of range
      ['flag', 'yes'],
      ['u', '{8a3e1c8e-0c0b-4e51-9f34-1a2b3c4d5e6f}'],
      ['bytes', 'not hex'],
      ['day', '2024-01-02T00:00:00Z'],
      ['jb', { text: 'nul \u0000 inside' }],
      ['jb', { lone: '\ud800' }],
      ['jb', { exponent: new LosslessNumber('1.5e3') }],
      ['jb', new Map([['a', 1]])],
    ];
    for (const [name, value] of declined) expect(field(name)(value), `${name}: ${String(value)}`).toBeUndefined();
  });

  it('throws for a value the copier refuses, so the row is left out of the digest as it is left out of the copy', () => {
    const refused: [string, unknown][] = [
      ['n', 2 ** 70], // prints as 1.1805916207174113e+21: digits a number does not hold
      ['i', 1.5],
      ['small', Number.NaN],
      ['id', 2 ** 64],
      ['jb', { nan: Number.NaN }],
      ['j', [Number.POSITIVE_INFINITY]],
      ['t', jsonNull],
    ];
    const encode = copyTextEncoder(COLUMNS.map(([name]) => name), { id: 'integer', small: 'integer', i: 'integer', n: 'numeric', j: 'json', jb: 'json', t: 'other' });
    for (const [name, value] of refused) {
      const field = fields[types.findIndex((c) => c.name === name)]!;
      expect(() => field(value), `${name}: ${String(value)}`).toThrow(TypeError);
      expect(() => encode({ [name]: value }), `${name}: ${String(value)}`).toThrow(new RegExp(`column "${name}"`));
    }
  });

  it('knows no array or float column, so such targets are compared in Postgres', () => {
    expect(workerFieldOf({ name: 'a', type: 'text[]', base: '_text', category: 'A' })).toBeNull();
    expect(workerFieldOf({ name: 'f', type: 'double precision', base: 'float8', category: 'N' })).toBeNull();
    expect(workerFieldOf({ name: 'c', type: 'character(3)', base: 'bpchar', category: 'S' })).toBeNull();
  });
});
