import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeSourceRows } from '../../activities/transform/rows';
import { ChunkDigest, recordField } from '../../activities/transform/worker-checksum';
import { jsonbText, jsonNumberText } from '../../activities/transform/jsonb-text';

const TEXT_OID = 25;
const INT4_OID = 23;
const JSONB_OID = 3802;

describe('jsonb text of JavaScript values', () => {
  it('writes numbers out as numeric does, never with an exponent', () => {
    expect(jsonNumberText(12.5)).toBe('12.5');
    expect(jsonNumberText(-0)).toBe('0');
    expect(jsonNumberText(1e21)).toBe('1000000000000000000000');
    expect(jsonNumberText(1.5e-7)).toBe('0.00000015');
    expect(jsonNumberText(-1.2345e25)).toBe('-12345000000000000000000000');
    expect(jsonNumberText(Number.NaN)).toBe('null');
  });

  it('orders keys shorter first, then bytewise, with jsonb spacing', () => {
    expect(jsonbText({ bb: 1, a: [true, null], c: { z: 'x', y: 'q"' } })).toBe('{"a": [true, null], "c": {"y": "q\\"", "z": "x"}, "bb": 1}');
    expect(jsonbText({ é: 1, z: 2 })).toBe('{"z": 2, "é": 1}');
  });
});

describe('record fields', () => {
  it('quotes as record_out does: empty, quotes, backslashes, parentheses, commas and ASCII spaces', () => {
    expect(recordField(null)).toBe('');
    expect(recordField('')).toBe('""');
    expect(recordField('plain')).toBe('plain');
    expect(recordField('a b')).toBe('"a b"');
    expect(recordField('say "hi"')).toBe('"say ""hi"""');
    expect(recordField('back\\slash')).toBe('"back\\\\slash"');
    expect(recordField('(1,2)')).toBe('"(1,2)"');
    expect(recordField('no\u00a0break')).toBe('no\u00a0break');
  });
});

describe('chunk digests', () => {
  it('sums the first 64 bits of each md5 as signed integers, as Postgres does', () => {
    const records = ['(1,a)', '(2,b)', '(3,"c d")', '()'];
    const digest = new ChunkDigest();
    for (const record of records) digest.add(record);
    const expected = records.reduce((sum, r) => sum + BigInt.asIntN(64, BigInt(`0x${createHash('md5').update(r).digest('hex').slice(0, 16)}`)), 0n);
    expect(digest.rows).toBe(4);
    expect(digest.digest()).toBe(expected.toString());
    expect(new ChunkDigest().digest()).toBe('0');
  });
});

describe('source rows from COPY text', () => {
  const fields = [
    { name: 'note', oid: TEXT_OID },
    { name: 'visits', oid: INT4_OID },
    { name: 'doc', oid: JSONB_OID },
  ];

  it('undoes COPY escapes, reads \\N as NULL and parses values as a query would', () => {
    const text = '1\ttab\\there\\\\ \\n\t42\t{"a": 1}\n2\t\\N\t\\N\t\\N\n';
    expect(decodeSourceRows(text, fields)).toEqual([
      { key: '1', row: { note: 'tab\there\\ \n', visits: 42, doc: { a: 1 } } },
      { key: '2', row: { note: null, visits: null, doc: null } },
    ]);
  });

  it('refuses a row whose columns do not match the description', () => {
    expect(() => decodeSourceRows('1\tonly one\n', fields)).toThrow(/1 columns where 3 were described/);
  });
});
