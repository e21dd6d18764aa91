import { describe, expect, it } from 'vitest';
import { copySpecOf, copyWithinDatabaseSql, insertFromStagingSql } from '../../activities/copy/copy-statements';
import {
  canonicalText,
  canonicalizeValuesSql,
  chunkChecksumSql,
  diffRows,
  rowDigestSum,
  rowHashesOf,
  rowsSql,
  rowText,
  sampleCondition,
  sourceKeysCondition,
  type ColumnType,
  type VerifyShape,
} from '../../activities/verify/verify-statements';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan } from '../../lib/plan';

const type = (name: string, base: string, formatted = base, category = 'S'): ColumnType => ({ name, type: formatted, base, category });

const shape: VerifyShape = {
  source: { schema: 'public', table: 'users', key: 'id' },
  target: { schema: 'app', table: 'users_v2', key: 'id' },
  columns: { id: 'id', first_name: "split_part(full_name, ' ', 1)", seen: 'seen_at' },
  types: [type('id', 'int8', 'bigint', 'N'), type('first_name', 'text'), type('seen', 'timestamptz', 'timestamp with time zone', 'D')],
  sourceFilter: 's."tenant" = 7',
  targetFilter: null,
};

describe('canonical text per target type', () => {
  it('writes timestamps in UTC to the microsecond, whatever the zone, and keeps infinity apart from NULL', () => {
    expect(canonicalText('r."at"', { base: 'timestamptz', category: 'D' })).toBe(
      `CASE WHEN isfinite(r."at") THEN to_char((r."at") AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US BC') ELSE (r."at")::text END`,
    );
    expect(canonicalText('v', { base: 'timestamp', category: 'D' })).toContain(`to_char(v, 'YYYY-MM-DD HH24:MI:SS.US BC')`);
    // A date as a timestamp (the session's timestamptz cannot hold 4714-11-24 BC east of UTC), and past 294276 AD as text.
    expect(canonicalText('v', { base: 'date', category: 'D' })).toContain(`to_char((v)::timestamp, 'YYYY-MM-DD BC')`);
    expect(canonicalText('v', { base: 'date', category: 'D' })).toContain(`WHEN (v) < '294277-01-01'`);
  });

  it('writes timestamptz arrays and ranges without the session zone', () => {
    const array = canonicalText('v', { base: '_timestamptz', category: 'A' });
    expect(array).toContain(`array_dims(v)`);
    expect(array).toContain(`to_char((e) AT TIME ZONE 'UTC'`);
    const range = canonicalText('v', { base: 'tstzrange', category: 'R' });
    expect(range).toContain(`to_char((lower(v)) AT TIME ZONE 'UTC'`);
    expect(range).toContain(`to_char((upper(v)) AT TIME ZONE 'UTC'`);
    expect(range).toContain(`WHEN isempty(v) THEN 'empty'`);
  });

  it('compares json as jsonb (key order and spacing do not count), numeric with its scale, bytea as hex', () => {
    expect(canonicalText('v', { base: 'json', category: 'U' })).toBe('(v)::jsonb::text');
    expect(canonicalText('v', { base: 'jsonb', category: 'U' })).toBe('(v)::text');
    expect(canonicalText('v', { base: 'numeric', category: 'N' })).toBe('(v)::text');
    expect(canonicalText('v', { base: 'bytea', category: 'U' })).toBe(`encode(v, 'hex')`);
    expect(canonicalText('v', { base: 'text', category: 'S' })).toBe('(v)::text');
    expect(canonicalText('v', { base: '_int4', category: 'A' })).toBe('(v)::text');
  });

  it('hashes a row as a record text, where NULL and an empty string differ', () => {
    // ROW(NULL)::text is "()" and ROW('')::text is '("")'.
    expect(rowText(['a', 'b'])).toBe('ROW(a, b)::text');
    expect(rowDigestSum('x')).toBe(`coalesce(sum(('x' || substr(md5(x), 1, 16))::bit(64)::bigint), 0)::text`);
  });
});

describe('verify statements', () => {
  it('casts the transform to the target types on the source side and runs the same canonical expressions on both', () => {
    const source = chunkChecksumSql('source', shape, { range: { after: '10', upTo: '20' } });
    const target = chunkChecksumSql('target', shape, { range: { after: '10', upTo: '20' } });
    expect(source.text).toBe(
      `SELECT count(*)::bigint::text AS rows, ` +
        `coalesce(sum(('x' || substr(md5(ROW((r."id")::text, (r."first_name")::text, ` +
        `CASE WHEN isfinite(r."seen") THEN to_char((r."seen") AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US BC') ELSE (r."seen")::text END)::text), 1, 16))::bit(64)::bigint), 0)::text AS digest ` +
        `FROM (SELECT (id)::bigint AS "id", (split_part(full_name, ' ', 1))::text AS "first_name", (seen_at)::timestamp with time zone AS "seen" ` +
        `FROM "public"."users" AS s WHERE s."id" > $1 AND s."id" <= $2 AND (s."tenant" = 7) OFFSET 0) AS r`,
    );
    expect(source.values).toEqual(['10', '20']);
    expect(target.text).toContain(`FROM (SELECT t."id", t."first_name", t."seen" FROM "app"."users_v2" AS t WHERE t."id" > $1 AND t."id" <= $2 OFFSET 0) AS r`);
    const canonical = (text: string) => text.slice(0, text.indexOf(' FROM ('));
    expect(canonical(target.text)).toBe(canonical(source.text));
  });

  it('hashes values as they print in the native form: the same on both sides, timestamps in UTC without to_char', () => {
    const source = chunkChecksumSql('source', shape, { range: { after: '10', upTo: '20' } }, 'native');
    const target = chunkChecksumSql('target', shape, { range: { after: '10', upTo: '20' } }, 'native');
    expect(source.text).toContain(`md5(ROW(r."id", r."first_name", timezone(interval '0', r."seen"))::text)`);
    const digest = (text: string) => text.slice(0, text.indexOf(' FROM ('));
    expect(digest(target.text)).toBe(digest(source.text));
    expect(digest(source.text)).not.toContain('to_char');
  });

  it('reads rows by key list, and pages the target in key order', () => {
    const byKeys = rowsSql('source', shape, { keys: ['1', '2'] }, 'hash');
    expect(byKeys.text).toContain(`WHERE s."id" = ANY($1) AND (s."tenant" = 7)`);
    expect(byKeys.text).toMatch(/^SELECT r\."id"::text, md5\(\(r\."id"\)::text\), md5/);
    expect(byKeys.values).toEqual([['1', '2']]);
    const page = rowsSql('target', shape, { range: { after: '5', upTo: null }, keys: ['6'] }, 'text', 100);
    expect(page.text).toContain(`WHERE t."id" > $1 AND t."id" = ANY($2) ORDER BY t."id" LIMIT $3) AS r ORDER BY r."id"`);
    expect(page.values).toEqual(['5', ['6'], 100]);
  });

  it('parses worker-made values with the target types', () => {
    const q = canonicalizeValuesSql(shape, [['1'], ['Ann'], [null]]);
    expect(q.text).toContain(`FROM (SELECT u."id"::bigint AS "id", u."first_name"::text AS "first_name", u."seen"::timestamp with time zone AS "seen" FROM unnest($1::text[], $2::text[], $3::text[]) AS u("id", "first_name", "seen") OFFSET 0) AS r`);
    expect(q.values).toEqual([['1'], ['Ann'], [null]]);
  });

  it('takes a length-limited value as a write would: cut only by trailing spaces, else whole, so a cut target value differs', () => {
    const limited: VerifyShape = {
      ...shape,
      columns: { id: 'id', code: 'code', codes: 'codes' },
      types: [type('id', 'int8', 'bigint', 'N'), type('code', 'varchar', 'character varying(3)'), type('codes', '_bpchar', 'character(2)[]', 'A')],
    };
    const source = chunkChecksumSql('source', limited, {});
    expect(source.text).toContain(
      `FROM (SELECT w."id" AS "id", CASE WHEN char_length(rtrim((w."code")::text, ' ')) > 3 THEN w."code" ELSE (w."code")::character varying(3) END AS "code", ` +
        `CASE WHEN EXISTS (SELECT FROM unnest(w."codes") AS e(v) WHERE char_length(rtrim((e.v)::text, ' ')) > 2) THEN w."codes" ELSE (w."codes")::character(2)[] END AS "codes" ` +
        `FROM (SELECT (id)::bigint AS "id", (code)::varchar AS "code", (codes)::bpchar[] AS "codes" FROM "public"."users" AS s WHERE (s."tenant" = 7) OFFSET 0) AS w) AS r`,
    );
    expect(canonicalizeValuesSql(limited, [['1'], ['abc'], [null]]).text).toContain(`(SELECT u."id"::bigint AS "id", u."code"::varchar AS "code", u."codes"::bpchar[] AS "codes" FROM unnest(`);
    expect(chunkChecksumSql('target', limited, {}).text).not.toContain('CASE WHEN char_length');
  });

  it('reads a column the copy converts from the text the source prints, NULL kept', () => {
    const source = chunkChecksumSql('source', { ...shape, converted: ['first_name'] }, {});
    expect(source.text).toContain(
      `FROM (SELECT w."id" AS "id", (CASE WHEN num_nulls(w."first_name") = 1 THEN NULL ELSE format('%s', w."first_name") END)::text AS "first_name", w."seen" AS "seen" ` +
        `FROM (SELECT (id)::bigint AS "id", (split_part(full_name, ' ', 1)) AS "first_name", (seen_at)::timestamp with time zone AS "seen" FROM "public"."users" AS s WHERE (s."tenant" = 7) OFFSET 0) AS w) AS r`,
    );
    expect(chunkChecksumSql('target', { ...shape, converted: ['first_name'] }, {}).text).not.toContain('format(');
    const local = chunkChecksumSql('source', { ...shape, converted: ['seen'], localTimes: { zone: "Asia/Tokyo'", columns: ['seen'] } }, {});
    expect(local.text).toContain(`timezone('Asia/Tokyo''', (w."seen")::timestamp)::timestamp with time zone AS "seen"`);
  });

  it('samples by the hash of the key, as subset.ts does', () => {
    expect(sampleCondition('t."id"', 12.5)).toBe(`abs(hashtext((t."id")::text)::bigint) % 10000 < 1250`);
    expect(sampleCondition('t."id"', 100)).toBeNull();
    expect(sourceKeysCondition('id', ["a'b", 'c'])).toBe(`s."id" IN ('a''b', 'c')`);
    expect(sourceKeysCondition('id', [])).toBe('false');
  });

  it('repairs overwrite the target row, skipping tombstones', () => {
    const plan = validatePlan({
      name: 'p',
      source: { connection: 'S', table: 'users', key: 'id' },
      target: { connection: 'T', table: 'users_v2' },
      transform: { sql: { id: 'id', name: 'name' } },
    });
    const spec = { ...copySpecOf(plan), conflict: { policy: 'overwrite' as const } };
    const within = copyWithinDatabaseSql(spec, wholeKeySpace).text;
    expect(within).toContain(`ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name"`);
    expect(within).not.toContain(' WHERE t.');
    expect(within).toContain('NOT EXISTS (SELECT 1 FROM ferry.tombstones');
    expect(insertFromStagingSql(spec)).toMatch(/ON CONFLICT \("id"\) DO UPDATE SET "name" = EXCLUDED\."name"$/);
    const keyOnly = { ...spec, columns: { id: 'id' } };
    expect(insertFromStagingSql(keyOnly)).toMatch(/DO UPDATE SET "id" = EXCLUDED\."id"$/);
  });
});

describe('sorting differences', () => {
  const names = ['id', 'name', 'note'];
  const row = (key: string, ...columns: (string | null)[]) => ({ key, columns: [key, ...columns] });

  it('sorts every difference into missing, extra and value, naming the differing columns', () => {
    const source = [row('1', 'a', 'x'), row('2', 'b', 'y'), row('3', 'c', 'z'), row('4', 'd', null)];
    const target = [row('1', 'a', 'x'), row('3', 'C', 'Z'), row('4', 'd', null), row('9', 'e', null)];
    expect(diffRows(names, source, target)).toEqual([
      { key: '2', category: 'missing', columns: [] },
      { key: '3', category: 'value', columns: ['name', 'note'] },
      { key: '9', category: 'extra', columns: [] },
    ]);
  });

  it('tells NULL from an empty string, in both directions', () => {
    const d41 = 'd41d8cd98f00b204e9800998ecf8427e'; // md5('')
    expect(diffRows(names, [row('1', 'a', null)], [row('1', 'a', d41)])).toEqual([{ key: '1', category: 'value', columns: ['note'] }]);
    expect(diffRows(names, [row('1', 'a', d41)], [row('1', 'a', null)])).toEqual([{ key: '1', category: 'value', columns: ['note'] }]);
    expect(diffRows(names, [row('1', 'a', null)], [row('1', 'a', null)])).toEqual([]);
  });

  it('calls a key the target holds twice extra, once, whether its rows are equal or not; an unwritable source row differs in every column', () => {
    const target = [row('1', 'a', 'x'), row('1', 'a', 'x'), row('2', 'b', 'y'), row('2', 'B', 'y'), row('9', 'e', null), row('9', 'e', null)];
    expect(diffRows(names, [row('1', 'a', 'x'), row('2', 'b', 'y')], target)).toEqual([
      { key: '1', category: 'extra', columns: [] },
      { key: '2', category: 'extra', columns: [] },
      { key: '9', category: 'extra', columns: [] },
    ]);
    const unwritable = { key: '1', columns: [null, null, null], unwritable: true };
    expect(diffRows(names, [unwritable], [row('1', 'a', 'x')])).toEqual([{ key: '1', category: 'value', columns: names }]);
    expect(diffRows(names, [unwritable], [])).toEqual([]);
    // With a lineage column: every target row of the group differs, none is extra.
    const group = { key: '7', lineage: '7', columns: [null, null, null], unwritable: true };
    const traced = (key: string, lineage: string) => ({ ...row(key, 'a', 'x'), lineage });
    expect(diffRows(names, [group, { ...row('2', 'b', 'y'), lineage: '8' }], [traced('1', '7'), traced('2', '8'), traced('3', '9')])).toEqual([
      { key: '2', category: 'value', columns: ['name', 'note'], sourceKey: '8' },
      { key: '1', category: 'value', columns: names, sourceKey: '7' },
      { key: '3', category: 'extra', columns: [], sourceKey: '9' },
    ]);
  });

  it('finds nothing between equal sides, or two empty ones', () => {
    expect(diffRows(names, [row('1', 'a', 'b')], [row('1', 'a', 'b')])).toEqual([]);
    expect(diffRows(names, [], [])).toEqual([]);
  });

  it('reads array-mode rows, keeping NULL as null', () => {
    expect(rowHashesOf([['1', 'h', null]])).toEqual([{ key: '1', columns: ['h', null] }]);
  });
});
