import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyTextEncoder, encodeCopyText } from '../../activities/transform/copy-text';
import { loadTransform } from '../../activities/transform/load';
import { rangeRowsSql } from '../../activities/copy/copy-statements';

describe('COPY text encoder', () => {
  const columns = ['id', 'v'];
  const one = (v: unknown) => encodeCopyText(columns, [{ id: 1, v }]);

  it('escapes backslash, tab, newline and carriage return, and nothing else', () => {
    expect(one('a\\b\tc\nd\re')).toBe('1\ta\\\\b\\tc\\nd\\re\n');
    expect(one(`it's "quoted" ☃ 𝄞`)).toBe(`1\tit's "quoted" ☃ 𝄞\n`);
    expect(one('\\N')).toBe('1\t\\\\N\n');
  });

  it('tells NULL from the empty string', () => {
    expect(one(null)).toBe('1\t\\N\n');
    expect(one(undefined)).toBe('1\t\\N\n');
    expect(one('')).toBe('1\t\n');
    expect(encodeCopyText(columns, [{ id: 2 }])).toBe('2\t\\N\n');
  });

  it('writes objects and arrays as JSON, escaped for COPY', () => {
    expect(one({ a: 'x\ny', b: [1, null, 'q"\\'], n: 0.5 })).toBe('1\t{"a":"x\\\\ny","b":[1,null,"q\\\\"\\\\\\\\"],"n":0.5}\n');
    expect(one([])).toBe('1\t[]\n');
  });

  it('writes bytea as hex input', () => {
    expect(one(Buffer.from([0, 1, 0xab, 0xff]))).toBe('1\t\\\\x0001abff\n');
    expect(one(Buffer.alloc(0))).toBe('1\t\\\\x\n');
    expect(one(new Uint8Array([9, 10]).subarray(1))).toBe('1\t\\\\x0a\n');
  });

  it('passes timestamp text with microseconds through untouched', () => {
    expect(one('2024-02-29 23:59:59.999999+00')).toBe('1\t2024-02-29 23:59:59.999999+00\n');
    expect(one(new Date('2024-01-02T03:04:05.678Z'))).toBe('1\t2024-01-02T03:04:05.678Z\n');
  });

  it('writes booleans, numbers and bigints', () => {
    expect(encodeCopyText(['a', 'b', 'c', 'd', 'e'], [{ a: true, b: false, c: 12.5, d: 2n ** 70n, e: -0 }])).toBe(
      't\tf\t12.5\t1180591620717411303424\t-0\n',
    );
  });

  it('keeps column order, and several rows are several lines', () => {
    expect(encodeCopyText(['b', 'a'], [{ a: 1, b: 2 }, { a: 3 }])).toBe('2\t1\n\\N\t3\n');
    expect(encodeCopyText(columns, [])).toBe('');
  });

  it('refuses a key that is not a column, naming it', () => {
    expect(() => encodeCopyText(columns, [{ id: 1, v: 'x', extra: 'lost?' }])).toThrow(/"extra".*transform\.columns \(id, v\)/);
    expect(() => encodeCopyText(columns, [{ id: 1, extra: undefined }])).toThrow(/"extra"/);
  });

  it('refuses values and rows with no database form', () => {
    const encode = copyTextEncoder(columns);
    expect(() => encode({ id: 1, v: () => 1 })).toThrow(/column "v" is a function/);
    expect(() => encode({ id: 1, v: new Date('nope') })).toThrow(/column "v" is an invalid Date/);
    expect(() => encode([1, 2] as unknown as Record<string, unknown>)).toThrow(/must be an object/);
  });
});

describe('COPY text encoder with target column kinds', () => {
  const columns = ['doc', 'list'];
  const kinds = { doc: 'json', list: 'array' } as const;
  const line = (doc: unknown, list: unknown) => encodeCopyText(columns, [{ doc, list }], kinds);

  it('writes every value of a json column as JSON, so top-level strings and booleans survive', () => {
    expect(line('just "text"', null)).toBe('"just \\\\"text\\\\""\t\\N\n');
    expect(line(true, null)).toBe('true\t\\N\n');
    expect(line(12.5, null)).toBe('12.5\t\\N\n');
    expect(line({ a: [1, 'x\ty'] }, null)).toBe('{"a":[1,"x\\\\ty"]}\t\\N\n');
    expect(line(null, null)).toBe('\\N\t\\N\n');
    expect(line(2n ** 80n, null)).toBe('1208925819614629174706176\t\\N\n');
    expect(() => line({ n: Number.NaN }, null)).toThrow(/column "doc" cannot be written as JSON: NaN, which JSON has no number for/);
  });

  it('writes a JavaScript array into an array column as an array literal', () => {
    expect(line(null, ['a b', 'q"uote', 'back\\slash', null, '', 'NULL', '{x,y}', 'tab\there'])).toBe(
      '\\N\t{"a b","q\\\\"uote","back\\\\\\\\slash",NULL,"","NULL","{x,y}","tab\\there"}\n',
    );
    expect(line(null, [[1, 2], [3, null]])).toBe('\\N\t{{"1","2"},{"3",NULL}}\n');
    expect(line(null, [true, Buffer.from([1, 255])])).toBe('\\N\t{"t","\\\\\\\\x01ff"}\n');
    expect(line(null, [])).toBe('\\N\t{}\n');
    expect(line(null, '{already,literal}')).toBe('\\N\t{already,literal}\n');
  });
});

describe('module copy statements', () => {
  it('reads whole rows of a range in key order, the key as text first, with an optional filter', () => {
    const source = { schema: 'public', table: 'we"ird', key: 'the "key"' };
    expect(rangeRowsSql({ source, filter: 's.active' }, { after: '10', upTo: '20' })).toEqual({
      text:
        'SELECT s."the ""key"""::text AS "ferry source key", s.* FROM "public"."we""ird" AS s ' +
        'WHERE s."the ""key""" > $1 AND s."the ""key""" <= $2 AND (s.active) ORDER BY s."the ""key"""',
      values: ['10', '20'],
    });
    expect(rangeRowsSql({ source }, { after: null, upTo: null }).text).toContain('WHERE true ORDER BY');
  });
});

describe('loadTransform', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-transform-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it('loads a default export from .ts, .js, .cjs and .mjs, and a named `transform`', async () => {
    const files = [
      write('a.ts', 'export default (row: { n: number }) => ({ n: row.n + 1 });'),
      write('b.js', 'module.exports = (row) => ({ n: row.n + 1 });'),
      write('c.cjs', 'exports.transform = async (row) => ({ n: row.n + 1 });'),
      write('d.mjs', 'export default function (row) { return { n: row.n + 1 }; }'),
      write('e.ts', 'export function transform(row: { n: number }) { return { n: row.n + 1 }; }'),
      write('f.mts', 'const step: number = await Promise.resolve(1);\nexport default (row: { n: number }) => ({ n: row.n + step });'),
    ];
    for (const file of files) {
      const transform = await loadTransform(file, dir);
      expect(await transform({ n: 1 })).toEqual({ n: 2 });
    }
  });

  it('loads a .js module of a "type": "module" package', async () => {
    mkdirSync(path.join(dir, 'esm'));
    write('esm/package.json', '{ "type": "module" }');
    const transform = await loadTransform(write('esm/g.js', 'export default (row) => ({ n: row.n + 1 });'), dir);
    expect(await transform({ n: 1 })).toEqual({ n: 2 });
  });

  it('resolves a relative path against the working directory and caches per path', async () => {
    const file = write('rel.ts', 'export default () => null;');
    const relative = path.relative(process.cwd(), file);
    const first = await loadTransform(relative, dir);
    expect(await loadTransform(file, dir)).toBe(first);
  });

  it('fails without retries for a missing file or a module without a function', async () => {
    const missing = path.join(dir, 'nope.ts');
    await expect(loadTransform(missing, dir)).rejects.toMatchObject({
      nonRetryable: true,
      type: 'TransformModuleNotFound',
      message: expect.stringContaining(`${missing} does not exist`),
    });
    const noFunction = write('nofn.ts', 'export const columns = ["a"];');
    await expect(loadTransform(noFunction, dir)).rejects.toMatchObject({
      nonRetryable: true,
      type: 'TransformModuleInvalid',
      message: expect.stringContaining('its exports are: columns'),
    });
    const broken = write('broken.ts', 'export default (row => ;');
    await expect(loadTransform(broken, dir)).rejects.toMatchObject({ nonRetryable: true, type: 'TransformModuleInvalid' });
  });

  it('loads only from the directory the worker is given, after following links', async () => {
    const outside = mkdtempSync(path.join(os.tmpdir(), 'ferry-transform-outside-'));
    try {
      const foreign = path.join(outside, 'foreign.ts');
      writeFileSync(foreign, 'export default () => null;');
      await expect(loadTransform(foreign, dir)).rejects.toMatchObject({
        nonRetryable: true,
        type: 'TransformModuleRefused',
        message: expect.stringContaining(`not inside the worker's transform directory`),
      });
      // A link inside the directory that points outside is refused as well.
      const link = path.join(dir, 'link.ts');
      symlinkSync(foreign, link);
      await expect(loadTransform(link, dir)).rejects.toMatchObject({ type: 'TransformModuleRefused' });
      // So is a path that climbs out with '..'.
      await expect(loadTransform(path.join(dir, '..', path.basename(outside), 'foreign.ts'), dir)).rejects.toMatchObject({ type: 'TransformModuleRefused' });
      // A link that stays inside is fine.
      const inner = write('inner.ts', 'export default () => null;');
      symlinkSync(inner, path.join(dir, 'inner-link.ts'));
      expect(await (await loadTransform(path.join(dir, 'inner-link.ts'), dir))({})).toBeNull();
      // A worker without a directory loads nothing, and says how to allow it.
      await expect(loadTransform(inner, null)).rejects.toMatchObject({
        type: 'TransformModuleRefused',
        message: expect.stringContaining('--transform-dir DIR (or FERRY_TRANSFORM_DIR=DIR)'),
      });
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('never quotes the file when a module fails to load', async () => {
    const secret = 'sk_live_9f8e7d6c5b4a';
    const cases = [
      write('secret.txt', `${secret}\n`),
      write('secret.ts', `${secret}\n`),
      write('secret.env', `API_KEY=${secret}\n`),
      write('secret.json', `{"key": "${secret}"`),
      write('secret-syntax.ts', `export default (row => "${secret}" ;`),
    ];
    for (const file of cases) {
      const failure = await loadTransform(file, dir).then(
        () => null,
        (error: unknown) => error as Error & { type?: string; cause?: unknown },
      );
      expect(failure, file).not.toBeNull();
      expect(failure!.type).toMatch(/^TransformModule/);
      expect(failure!.message).not.toContain(secret);
      expect(failure!.message).not.toContain('sk_live');
      expect(String(failure!.stack)).not.toContain(secret);
      expect(failure!.cause).toBeUndefined();
    }
  });
});
