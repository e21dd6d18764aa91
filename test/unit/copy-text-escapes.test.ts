/**
 * The COPY text encoder scans a value for the characters COPY escapes only where the value can
 * hold them: not in a number, bigint or boolean, and only for a backslash in a json column's
 * JSON text. On generated rows (fast-check, fixed seed) its lines are those of escaping every
 * value's Postgres input text in full.
 */
import fc from 'fast-check';
import { LosslessNumber } from 'lossless-json';
import { describe, expect, it } from 'vitest';
import { copyTextEncoder } from '../../activities/transform/copy-text';
import { postgresInputText, type ColumnKinds } from '../../activities/transform/exact-values';

/** COPY text format's escaping, every character checked. */
function escapedInFull(text: string): string {
  return text.replace(/[\\\t\n\r]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c]!);
}

const COLUMNS = ['doc', 'n', 'big', 'flag', 'text', 'any'];
const KINDS: ColumnKinds = { doc: 'json', n: 'numeric', big: 'integer', flag: 'other', text: 'other' };

const nasty = fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), fc.constantFrom('\\', '\t', '\n', '\r', '\\N', 'a\\tb', 'ü\n✓'));
const jsonLike = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    nasty,
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.bigInt().map((n) => new LosslessNumber(n.toString())),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(nasty, tie('value'), { maxKeys: 4 }),
  ),
})).value;

const row = fc.record(
  {
    doc: fc.oneof(jsonLike, nasty),
    n: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(-0, 0.1, 1e21)),
    big: fc.oneof(fc.bigInt(), fc.integer()),
    flag: fc.boolean(),
    text: fc.oneof(nasty, fc.constant(null)),
    any: fc.oneof(nasty, fc.integer(), fc.boolean(), fc.date({ noInvalidDate: true }), fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)), jsonLike),
  },
  { requiredKeys: [] },
);

describe('COPY text escaping by value', () => {
  it('writes every line as escaping each value in full would', () => {
    const encode = copyTextEncoder(COLUMNS, KINDS);
    fc.assert(
      fc.property(row, (target) => {
        let expected: string;
        try {
          expected =
            COLUMNS.map((column) => {
              const text = postgresInputText(target[column as keyof typeof target], column, KINDS[column]);
              return text === null ? '\\N' : escapedInFull(text);
            }).join('\t') + '\n';
        } catch (error) {
          // A value with no exact database form fails its row either way.
          expect(() => encode(target)).toThrow((error as Error).message);
          return;
        }
        expect(encode(target)).toBe(expected);
      }),
      { seed: 20261201, numRuns: 2000 },
    );
  });

  it('escapes the backslashes of JSON text, which holds no raw tab, newline or carriage return', () => {
    const encode = copyTextEncoder(['doc'], { doc: 'json' });
    expect(encode({ doc: { 'a\tb': 'x\ny\\z\r' } })).toBe('{"a\\\\tb":"x\\\\ny\\\\\\\\z\\\\r"}\n');
    expect(encode({ doc: 'line\nbreak' })).toBe('"line\\\\nbreak"\n');
  });
});
