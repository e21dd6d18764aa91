/**
 * The redaction of error text against generated values: whatever quotes, line breaks, naming
 * words or foreign quotation marks a value holds, Postgres's templates that quote it do not let
 * it through, and what redaction leaves it leaves as it is.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { redactMessage } from '../../lib/errors';

/** Postgres's message templates that quote a value (`%s`), in English and as translated. */
const TEMPLATES = [
  'invalid input syntax for type integer: "%s"',
  'invalid input syntax for type uuid: "%s"',
  'invalid input value for enum mood: "%s"',
  'malformed array literal: "%s"',
  'malformed range literal: "%s"',
  'date/time field value out of range: "%s"',
  'time zone displacement out of range: "%s"',
  'value "%s" is out of range for type integer',
  'value "%s" is out of range for 8-bit integer',
  '"%s" is out of range for type double precision',
  '"%s" is out of range for type real',
  'invalid value "%s" for "YYYY"',
  'time zone "%s" not recognized',
  'unit "%s" not recognized for type interval',
  '"%s" is not a valid hexadecimal digit',
  'ERROR:  invalid input syntax for type integer: "%s"\nCONTEXT:  COPY t, line 1, column a: "%s"',
  'the database refuses the copy: invalid input syntax for type date: "%s" [22007]',
  'ungültige Eingabesyntax für Typ integer: »%s«',
  'Wert »%s« ist außerhalb des gültigen Bereichs für Typ integer',
  'syntaxe en entrée invalide pour le type integer : « %s »',
  'la valeur « %s » est en dehors des limites du type integer',
  'некорректный синтаксис для типа integer: „%s“',
  '型integerの入力構文が不正です: 「%s」',
  'entrada no válida para tipo integer: «%s»',
];

const awkward = fc.constantFrom('"', '""', '\n', '\\', "'", '»', '«', '„', '“', '”', '‚', '‘', '’', '「', '」', ' column "', '" column "', ' relation "', '\nHINT: ', '\nDETAIL: ', ': "', '" is out of range for type integer', '{', '}', 'é', '🙂', '\t');
const value = fc
  .array(fc.oneof(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }), awkward, fc.stringMatching(/^[0-9]{4,16}$/)), { minLength: 1, maxLength: 8 })
  .map((parts) => parts.join(''));

function fill(template: string, v: string): string {
  return template.split('%s').join(v);
}

describe('redaction against generated values', () => {
  it('never lets a value of 6 or more characters through any template that quotes it', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TEMPLATES), value, (template, v) => {
        fc.pre(v.length >= 6 && !template.includes(v) && !'<redacted>'.includes(v) && v.trim().length > 0);
        const redacted = redactMessage(fill(template, v));
        expect(redacted).not.toContain(v);
        expect(redactMessage(redacted)).toBe(redacted);
      }),
      { numRuns: 3000 },
    );
  });

  it("keeps a card number out of the templates whose quotes a value's own quote unbalances", () => {
    const card = '4111111111111111';
    for (const message of [
      `invalid input syntax for type integer: "5" screen, card ${card}"`,
      `invalid input syntax for type integer: "x" column "${card}"`,
      `invalid input syntax for type integer: "${card}\nHINT: "`,
      `value "x" column "${card}" is out of range for type integer`,
      `ungültige Eingabesyntax für Typ integer: »${card}«`,
      `la valeur « ${card} » est en dehors des limites du type integer`,
      `a template not known here: "5" and ${card}" (row 3)`,
    ]) {
      expect(redactMessage(message), message).not.toContain(card);
    }
    expect(redactMessage(`invalid input syntax for type integer: "5" screen, card ${card}"`)).toBe('invalid input syntax for type integer: "<redacted>"');
  });

  it('keeps names after naming words, and text without values, as they are', () => {
    for (const text of [
      'null value in column "name" of relation "t" violates not-null constraint',
      'duplicate key value violates unique constraint "people_email_key"',
      "the worker's transform returned nothing",
      'constraint "orders_total_check" of relation "orders": the target refuses the row',
      'column "email": invalid input syntax for type integer: "<redacted>"',
    ]) {
      expect(redactMessage(text)).toBe(text);
    }
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z_][a-z0-9_]{0,20}$/), fc.constantFrom('column', 'relation', 'constraint', 'table'), (name, word) => {
        const text = `violates something on ${word} "${name}" of the target`;
        expect(redactMessage(text)).toBe(text);
      }),
    );
  });

  it('withholds an overlong message from its first value on, keeping only opening words that end in a colon', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('"', '\n', ':', 'Q', '»', "'", ' '), minLength: 4001, maxLength: 12000 }), (value) => {
        for (const template of ['invalid input syntax for type integer: "%s"', 'value "%s" is out of range for type integer', 'Cannot convert %s to a BigInt']) {
          const redacted = redactMessage(template.replace('%s', value));
          expect(redacted).toMatch(/<redacted> \(a message of \d+ characters, withheld from here\)$/);
          expect(redacted).not.toContain('Q');
          expect(redactMessage(redacted)).toBe(redacted);
        }
        expect(redactMessage(`invalid input syntax for type integer: "${value}"`).startsWith('invalid input syntax for type integer: <redacted>')).toBe(true);
      }),
      { numRuns: 20 },
    );
  });
});
