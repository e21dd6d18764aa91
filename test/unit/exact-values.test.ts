/**
 * The exact-value decoder and encoder on their own. Their agreement with Postgres's own text is
 * proved in test/integration/exact-values.test.ts; here: the issue's cases, the rules for
 * values that cannot be written exactly, and that the fast native JSON path and the lossless
 * parser always agree.
 */
import fc from 'fast-check';
import { parse as parseLosslessJson, stringify as stringifyLosslessJson, LosslessNumber } from 'lossless-json';
import { describe, expect, it } from 'vitest';
import { columnKindOf, jsonText, parseJsonExact, postgresInputText, sourceValueParser } from '../../activities/transform/exact-values';
import { isJsonNull, isLosslessNumber, jsonNull } from '../../lib/json-values';

const JSONB = 3802;
const decodeJsonb = sourceValueParser(JSONB);
const roundTrip = (text: string) => jsonText(decodeJsonb(text), 'doc');

describe('json and jsonb, exactly', () => {
  it('keeps every digit of the numbers that lost them', () => {
    expect(roundTrip('{"big": 12345678901234567890123}')).toBe('{"big":12345678901234567890123}');
    expect(roundTrip('{"pi": 3.14159265358979323846264338327950288}')).toBe('{"pi":3.14159265358979323846264338327950288}');
    expect(roundTrip('123456789012345678901234567890123456789012345678901')).toBe('123456789012345678901234567890123456789012345678901');
    expect(roundTrip('[1.0, 1.50, 0.0, 1e400, -0.00]')).toBe('[1.0,1.50,0.0,1e400,-0.00]');
  });

  it('keeps JSON null apart from SQL NULL', () => {
    expect(isJsonNull(decodeJsonb('null'))).toBe(true);
    expect(postgresInputText(decodeJsonb('null'), 'doc', 'json')).toBe('null');
    expect(postgresInputText(null, 'doc', 'json')).toBeNull();
    expect(decodeJsonb('{"a": null}')).toEqual({ a: null });
    expect(JSON.stringify({ doc: jsonNull })).toBe('{"doc":null}');
    // Recognised by its registered symbol, even from another copy of the module.
    expect(isJsonNull({ [Symbol.for('ferry.jsonNull')]: true, toJSON: () => null })).toBe(true);
    expect(isJsonNull(null)).toBe(false);
  });

  it('gives the transform JavaScript numbers where they are exact, LosslessNumber where not', () => {
    const value = decodeJsonb('{"n": 12.5, "big": 9007199254740993, "scaled": 1.50, "safe": 9007199254740991, "tiny": 0.000001, "long": 0.1234567890123456, "pi": 3.14159265358979323846}') as Record<string, unknown>;
    expect(value.n).toBe(12.5);
    expect(value.safe).toBe(9007199254740991);
    expect(value.tiny).toBe(0.000001);
    expect(isLosslessNumber(value.big) && value.big.toString()).toBe('9007199254740993');
    expect(isLosslessNumber(value.scaled) && value.scaled.toString()).toBe('1.50');
    expect(Number(value.scaled)).toBe(1.5);
    expect(value.long).toBe(0.1234567890123456);
    expect(isLosslessNumber(value.pi) && value.pi.toString()).toBe('3.14159265358979323846');
  });

  it('takes the last of repeated keys, as jsonb does, and keeps a __proto__ key as a key', () => {
    expect(parseJsonExact('{"a": 1.10, "a": 2}')).toEqual({ a: 2 });
    expect(parseJsonExact('{"a": 1, "a": 2}')).toEqual({ a: 2 });
    const proto = parseJsonExact('{"__proto__": {"x": 1.50}}') as object;
    expect(Object.keys(proto)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
  });

  it('agrees with the lossless parser on every JSON text, whichever path it takes', () => {
    const losslessOnly = (text: string) => stringifyLosslessJson(parseLosslessJson(text, null, { onDuplicateKey: ({ newValue }) => newValue }));
    const numberText = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
      fc.bigInt().map(String),
      fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 40n }), fc.nat({ max: 40 }), fc.nat({ max: 3 })).map(([digits, scale, zeros]) => {
        const text = digits.toString().padStart(scale + 1, '0');
        return `${text.slice(0, text.length - scale)}${scale ? '.' + text.slice(text.length - scale) : ''}${zeros && scale ? '0'.repeat(zeros) : ''}`;
      }),
    );
    const json: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        numberText,
        fc.string().map((s) => JSON.stringify(s)),
        fc.constantFrom('true', 'false', 'null'),
        fc.array(tie('value'), { maxLength: 5 }).map((items) => `[${items.join(', ')}]`),
        fc.array(fc.tuple(fc.string(), tie('value')), { maxLength: 5 }).map((members) => `{${members.map(([k, v]) => `${JSON.stringify(k)}: ${v}`).join(', ')}}`),
      ),
    })).value;
    fc.assert(
      fc.property(json, (text) => {
        const decoded = parseJsonExact(text);
        expect(jsonText(decoded, 'doc')).toBe(losslessOnly(text));
      }),
      { numRuns: 2000, seed: 12 },
    );
  });

  it('refuses what JSON has no form for, instead of writing null', () => {
    expect(() => jsonText({ a: Number.NaN }, 'doc')).toThrow(/column "doc" cannot be written as JSON: NaN/);
    expect(() => jsonText([Number.NEGATIVE_INFINITY], 'doc')).toThrow(/-Infinity/);
    expect(() => jsonText({ at: new Date(Number.NaN) }, 'doc')).toThrow(/an invalid Date/);
    expect(jsonText({ at: new Date(0), n: 10n ** 25n, l: new LosslessNumber('1.000') }, 'doc')).toBe('{"at":"1970-01-01T00:00:00.000Z","n":10000000000000000000000000,"l":1.000}');
  });

  it('refuses an object whose contents JSON would drop, instead of writing {}', () => {
    class Tag {}
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    expect(() => jsonText({ id: 1, tags: new Set(['a', 'b']) }, 'doc')).toThrow(/column "doc" cannot be written as JSON: a Set/);
    expect(() => jsonText(new Map([['a', 1]]), 'doc')).toThrow(/column "doc" cannot be written as JSON: a Map/);
    expect(() => jsonText([{ n: null }, new Map()], 'doc')).toThrow(/a Map/);
    expect(() => jsonText({ t: new Tag() }, 'doc')).toThrow(/an instance of Tag with no fields/);
    expect(() => jsonText({ b: new Float64Array([1.5, 2]) }, 'doc')).toThrow(/a Float64Array/);
    expect(() => jsonText({ b: new Uint8Array(0) }, 'doc')).toThrow(/a Uint8Array/);
    expect(() => jsonText({ r: /x/ }, 'doc')).toThrow(/an instance of RegExp/);
    expect(() => postgresInputText({ s: new Set() }, 'doc', undefined)).toThrow(/column "doc" cannot be written as JSON: a Set/);
    // Still written: empty plain objects, a key "0", instances with fields, toJSON, and what JSON leaves out.
    expect(jsonText({ a: {}, b: [{}], c: Object.create(null) as object }, 'doc')).toBe('{"a":{},"b":[{}],"c":{}}');
    expect(jsonText({ '0': 1 }, 'doc')).toBe('{"0":1}');
    expect(jsonText({ p: new Point(1, 2), d: new Date(0) }, 'doc')).toBe('{"p":{"x":1,"y":2},"d":"1970-01-01T00:00:00.000Z"}');
    expect(jsonText({ u: undefined, f: () => 1, s: Symbol('s'), k: 1 }, 'doc')).toBe('{"k":1}');
    expect(jsonText({ n: null, x: jsonNull, b: Buffer.from('hi') }, 'doc')).toBe('{"n":null,"x":null,"b":{"type":"Buffer","data":[104,105]}}');
  });
});

describe('source values', () => {
  it('keeps floats exact, -0 and the infinities included', () => {
    const float8 = sourceValueParser(701);
    expect([float8('NaN'), float8('Infinity'), float8('-Infinity')]).toEqual([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    expect(Object.is(float8('-0'), -0)).toBe(true);
    expect(postgresInputText(-0, 'f', 'other')).toBe('-0');
    expect(postgresInputText(float8('5e-324'), 'f', 'other')).toBe('5e-324');
  });

  it('keeps types JavaScript would change as text', () => {
    for (const [oid, text] of [[20, '9223372036854775807'], [1700, '1.500'], [1114, 'infinity'], [1186, '-178000000 years'], [600, '(1,-0)'], [2950, '00000000-0000-0000-0000-000000000000']] as const) {
      expect(sourceValueParser(oid)(text)).toBe(text);
    }
    expect(sourceValueParser(12345)('an enum label')).toBe('an enum label');
  });

  it('reads arrays with NULL elements and several dimensions, and keeps explicit bounds as text', () => {
    expect(sourceValueParser(1007)('{{1,NULL},{NULL,4}}')).toEqual([[1, null], [null, 4]]);
    expect(sourceValueParser(1007)('[0:1]={1,2}')).toBe('[0:1]={1,2}');
    expect(sourceValueParser(1009)('{NULL,"NULL","a,b"}')).toEqual([null, 'NULL', 'a,b']);
    expect(sourceValueParser(1016)('{9223372036854775807}')).toEqual(['9223372036854775807']);
    const jsonbs = sourceValueParser(3807)('{"null",NULL,"{\\"a\\": 1.50}",[1]}') as unknown[];
    expect(isJsonNull(jsonbs[0])).toBe(true);
    expect(jsonbs[1]).toBeNull();
    expect(String((jsonbs[2] as { a: unknown }).a)).toBe('1.50');
    expect(jsonbs[3]).toEqual([1]);
    expect(sourceValueParser(3807)('{{1,2},{3,4}}')).toBe('{{1,2},{3,4}}');
  });
});

describe('target values', () => {
  const integer = columnKindOf('int8', false);
  const numeric = columnKindOf('numeric', false);

  it('knows a column by its type', () => {
    expect([columnKindOf('jsonb', false), columnKindOf('json', true), columnKindOf('int4', true), columnKindOf('numeric', true), columnKindOf('text', true), columnKindOf('uuid', false)]).toEqual(
      ['json', 'json[]', 'integer[]', 'numeric[]', 'array', 'other'],
    );
  });

  it('refuses a number an integer or numeric column would not hold exactly, and writes out one it would', () => {
    expect(() => postgresInputText(1.5, 'i', integer)).toThrow(/column "i" is an integer column, and is given a number with a fraction/);
    expect(() => postgresInputText(Number.NaN, 'i', integer)).toThrow(/integer column, and is given NaN/);
    expect(() => postgresInputText(2 ** 60, 'i', integer)).toThrow(/column "i" is given an integer beyond 2\^53.*bigint or a string/);
    expect(() => postgresInputText(2 ** 60, 'n', numeric)).toThrow(/beyond 2\^53/);
    expect(() => postgresInputText([[1], [2 ** 70]], 'a', 'integer[]')).toThrow(/beyond 2\^53/);
    expect(postgresInputText(1e21, 'n', numeric)).toBe('1000000000000000000000');
    expect(postgresInputText(-(2 ** 53 - 1), 'i', integer)).toBe('-9007199254740991');
    expect(postgresInputText(2n ** 63n - 1n, 'i', integer)).toBe('9223372036854775807');
    expect(postgresInputText(0.1, 'n', numeric)).toBe('0.1');
    expect(postgresInputText(Number.NaN, 'n', numeric)).toBe('NaN');
    // The refusal names the kind of number, never the number: it is a row's value.
    fc.assert(
      fc.property(fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Number.isInteger(n)), fc.integer({ min: 54, max: 1000 }).map((e) => 2 ** e + 2 ** (e - 60))), (n) => {
        const refusal = (() => {
          try {
            postgresInputText(n, 'i', integer);
          } catch (error) {
            return (error as Error).message;
          }
          return null;
        })();
        fc.pre(refusal !== null);
        expect(refusal).not.toContain(String(n));
      }),
    );
    // Other columns take JavaScript's own text of a number.
    expect(postgresInputText(2 ** 60, 't', 'other')).toBe('1152921504606847000');
  });

  it('writes a json array column as one dimension of JSON values', () => {
    expect(postgresInputText([jsonNull, null, [1, { a: 'x"' }], 'text', new LosslessNumber('1.50')], 'a', 'json[]')).toBe(
      '{"null",NULL,"[1,{\\"a\\":\\"x\\\\\\"\\"}]","\\"text\\"","1.50"}',
    );
    expect(postgresInputText([[1, null], [null, 4]], 'a', 'integer[]')).toBe('{{"1",NULL},{NULL,"4"}}');
    expect(postgresInputText('{1,2}', 'a', 'integer[]')).toBe('{1,2}');
    expect(() => postgresInputText(5, 'a', 'integer[]')).toThrow(/column "a" is an array column/);
  });

  it('has no JSON null outside json columns', () => {
    expect(() => postgresInputText(jsonNull, 't', 'other')).toThrow(/column "t" is not json or jsonb/);
    expect(postgresInputText(new LosslessNumber('12345678901234567890.5'), 'n', numeric)).toBe('12345678901234567890.5');
  });
});
