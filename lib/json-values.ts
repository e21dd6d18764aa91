/**
 * The JSON values a module transform meets beyond plain JavaScript (imported by transform
 * authors as `ferry/transform`): a JSON `null` that is not SQL NULL, and numbers kept as their
 * digits when a JavaScript number cannot hold them exactly.
 */
import { isLosslessNumber, LosslessNumber } from 'lossless-json';

export { isLosslessNumber, LosslessNumber };

/** Recognised by a registered symbol, so a copy of this module loaded twice still agrees. */
const JSON_NULL = Symbol.for('ferry.jsonNull');

/** A json or jsonb value that is JSON's `null` (a column's SQL NULL is JavaScript's null). */
export interface JsonNull {
  readonly [JSON_NULL]: true;
  /** JSON.stringify writes it as `null`. */
  toJSON(): null;
}

/** The value of a json or jsonb column that holds JSON `null`; return it to write one. */
export const jsonNull: JsonNull = Object.freeze({ [JSON_NULL]: true as const, toJSON: () => null });

export function isJsonNull(value: unknown): value is JsonNull {
  return typeof value === 'object' && value !== null && (value as Partial<JsonNull>)[JSON_NULL] === true;
}
