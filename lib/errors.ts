/**
 * Error text fit to leave a worker: the one redaction every boundary applies (workflow
 * histories, logs, metrics, reports), so no row value or secret rides along in an error.
 * Pure code: workflows, activities and the CLI share it.
 */

const REDACTED = '<redacted>';

/**
 * Words after which Postgres (and Ferry) put a NAME in double quotes, not a value: `relation
 * "t"`, `column "email"`, `constraint "orders_pkey"`, `at or near "DELETE"`. Any other quoted
 * text is taken for a value and removed.
 */
const NAMED_BY = new Set([
  'relation', 'column', 'columns', 'constraint', 'table', 'index', 'type', 'function', 'schema', 'database', 'role',
  'sequence', 'operator', 'extension', 'trigger', 'view', 'domain', 'near', 'policy', 'collation', 'cursor',
  'statement', 'savepoint', 'parameter', 'procedure', 'aggregate', 'tablespace', 'publication', 'subscription',
  'variable', 'gate', 'shard', 'partition',
]);

/**
 * Postgres templates that put a value in double quotes mid-sentence, as [before, after]. Postgres
 * does not escape a quote inside the value, so the value runs from the opening text to the LAST
 * occurrence of the closing text (the value may contain that text too; the template's comes after it).
 */
const VALUE_BETWEEN: Array<[string, string]> = [
  ['\\bvalue "', '" is out of range for '],
  ['(?:^|:[ \\t]*)"', '" is out of range for type '],
  ['(?:^|:[ \\t]*)"', '" is not a valid (?:binary|octal|hexadecimal) digit'],
  ['(?:^|:[ \\t]*)"', '" is not a number'],
  ['\\binvalid value "', '" for "'],
  ['\\btime zone "', '" not recognized'],
  ['\\bunits? "', '" not recognized'],
  ['\\bdate/time value "', '" is no longer supported'],
];
const VALUES_BETWEEN = VALUE_BETWEEN.map(([before, after]) => new RegExp(`(${before})[\\s\\S]*(${after})`, 'm'));

/**
 * A value Postgres puts at the end of its message after a colon (`invalid input syntax for type
 * integer: "…"`, `malformed array literal: "…"`): from the first quote after a quote-free prefix
 * to the last quote that ends a line (only a SQLSTATE may follow), whatever quotes and line breaks
 * the value holds.
 */
const VALUE_AT_END = /^([^"\n]*?:[ \t]*)"[\s\S]*"(?=[ \t]*(?:\[[0-9A-Z]{5}\])?[ \t.]*(?:\n|$))/m;

/**
 * A quotation mark other than ASCII ones, as Postgres's translated messages put around a value
 * (German »…« and „…“, French « … », Japanese 「…」); a ’ or ‘ between letters is an apostrophe.
 * Ferry cannot tell a name from a value in another language, so whatever they enclose goes.
 */
const FOREIGN_QUOTE = `(?:[„‚»«“”「」『』]|(?<![\\p{L}\\p{N}])[‘’]|[‘’](?![\\p{L}\\p{N}]))`;
/** From the first such mark to the last: a value may hold the marks itself. */
const FOREIGN_QUOTED = new RegExp(`(${FOREIGN_QUOTE})[\\s\\S]*(${FOREIGN_QUOTE})`, 'u');
const LONE_FOREIGN_QUOTE = new RegExp(FOREIGN_QUOTE, 'u');

/**
 * `message` with every value taken out: quoted literals (whatever quotes or line breaks they hold
 * themselves, in English or another language), `Key (id)=(42)` and `Failing row contains (...)`,
 * JSON fragments, and the DETAIL, CONTEXT and QUERY lines that repeat them. What stays says what
 * went wrong and where: the kind of error, names of tables, columns and constraints, and SQLSTATE
 * codes. Idempotent.
 */
export function redactMessage(message: string): string {
  if (message.length > LONGEST_REDACTED) return overlongRedacted(message);
  // Values first, while a quote a value opened on one line can still be matched on the next.
  let text = message.replace(FOREIGN_QUOTED, `$1${REDACTED}$2`);
  for (const between of VALUES_BETWEEN) text = text.replace(between, `$1${REDACTED}$2`);
  text = text
    .replace(VALUE_AT_END, `$1"${REDACTED}"`)
    // Key (id)=(42) and Key (a, b)=(1, x): the columns stay, the values go.
    .replace(/(\bKey \([^)\n]*\)=\().*(\))/g, `$1${REDACTED}$2`)
    .replace(/(\bFailing row contains \().*(\))/g, `$1${REDACTED}$2`)
    // JSON objects and arrays of strings as a value (`{"card": "4111..."}`).
    .replace(/\{[^{}]*\}/g, `{${REDACTED}}`)
    .replace(/\[\s*"[^\]]*\]/g, `[${REDACTED}]`)
    // Single-quoted literals; an apostrophe within a word (the worker's) starts none.
    .replace(/(?<![\p{L}\p{N}])'(?:[^']|'')*'(?![\p{L}\p{N}])/gu, (quoted) => (quoted === `'${REDACTED}'` ? quoted : `'${REDACTED}'`))
    // Double quotes: names after a naming word stay; everything else is a value.
    .replace(/(\b[\p{L}_]+\s+)?"((?:[^"]|"")*)"/gu, (quoted, before: string | undefined, inner: string) => {
      const word = before?.trim().toLowerCase();
      if (word && NAMED_BY.has(word)) return quoted;
      return inner === REDACTED ? quoted : `${before ?? ''}"${REDACTED}"`;
    })
    .split('\n')
    .filter((line) => !/^\s*(DETAIL|CONTEXT|QUERY|WHERE|HINT|LINE \d+)\s*:/i.test(line))
    .map(withoutUnpairedQuote)
    .join('\n')
    // JavaScript's own messages that carry a value unquoted.
    .replace(/\b(Cannot convert) .+? (to a BigInt)/g, `$1 ${REDACTED} $2`)
    .replace(/\b(The number) \S+ (cannot be converted)/g, `$1 ${REDACTED} $2`)
    .replace(/\b(Unexpected token) (\S)(?= in JSON)/g, `$1 ${REDACTED}`)
    // Node's argument errors end with the value they were given.
    .replace(/(\bReceived) (?!<redacted>).*$/gm, `$1 ${REDACTED}`);
  return text.trim();
}

/**
 * Messages longer than this carry a long value, and matching a value's quotes through it takes
 * time that grows with the square of its length (a value of 100,000 characters of quotes and
 * line breaks took seconds): only their opening words are kept.
 */
const LONGEST_REDACTED = 4000;
/** What may open a value in an overlong message: a quote of any kind, a bracket, a line break. */
const VALUE_OPENING = new RegExp(`["'(\\[{\n]|${FOREIGN_QUOTE}`, 'u');

/** Postgres's opening words before a value it quotes at the end of its message. */
const OPENING_WORDS = /^(?:invalid input (?:syntax|value) for (?:type|enum) [\w. ]{1,64}|malformed [a-z]+ literal|date\/time field value out of range|time zone displacement out of range):$/;

/**
 * An overlong message's opening words when they are Postgres's before the value it quotes
 * (`invalid input syntax for type integer: "…`); else nothing of it: a value may stand unquoted
 * (`Cannot convert … to a BigInt`), and any other words before a quote could be its start.
 */
function overlongRedacted(message: string): string {
  const opening = message.slice(0, 121).search(VALUE_OPENING);
  const before = opening > 0 ? message.slice(0, opening).trimEnd() : '';
  const words = OPENING_WORDS.test(before) ? `${before} ` : '';
  return `${words}${REDACTED} (a message of ${message.length} characters, withheld from here)`;
}

const REDACTED_IN_FOREIGN_QUOTES = new RegExp(`${FOREIGN_QUOTE}${REDACTED}${FOREIGN_QUOTE}`, 'gu');
const ANY_QUOTE = new RegExp(`"|${FOREIGN_QUOTE}`, 'u');

/**
 * A line whose quotes do not pair up after the redaction above (a value with a quote of its own,
 * in a template not known here) is cut from its first quote: what follows may be the value.
 */
function withoutUnpairedQuote(line: string): string {
  const foreign = line.replace(REDACTED_IN_FOREIGN_QUOTES, '');
  const unpaired = (line.split('"').length - 1) % 2 === 1 || LONE_FOREIGN_QUOTE.test(foreign);
  if (!unpaired) return line;
  const first = line.search(ANY_QUOTE);
  return `${line.slice(0, first).trimEnd()} ${REDACTED}`.trimStart();
}

/** SQLSTATE of RAISE EXCEPTION without a code of its own: a trigger or function on the target. */
const RAISED = 'P0001';

/**
 * What is said of an error a trigger or function raised in place of its message: the message is
 * their author's free text (`RAISE EXCEPTION 'email % already used', NEW.email`), which quotes
 * row values with no quotes around them, where no redaction can find them.
 */
export const RAISED_MESSAGE_WITHHELD = `raised by a trigger or function on the target (SQLSTATE ${RAISED}); its message is withheld: it may carry row values`;

/**
 * Whether `error` (a pg DatabaseError, or anything with its fields) was raised by PL/pgSQL's
 * RAISE: SQLSTATE P0001, or any code with a RAISE in its context.
 */
export function isRaisedError(error: unknown): boolean {
  const { code, where } = (error ?? {}) as { code?: unknown; where?: unknown };
  return code === RAISED || (typeof where === 'string' && /\bat RAISE\b/.test(where));
}

/** The text of a failed row's error as it may leave the target; a raised one's (by its flag or its SQLSTATE) is withheld. */
export function redactRowError(failure: { code: string | null; error: string; raised?: boolean }): string {
  return failure.raised || failure.code === RAISED ? RAISED_MESSAGE_WITHHELD : redactMessage(failure.error);
}

/** The text of any thrown thing, redacted; a raised error's text is withheld. */
export function redactErrorText(error: unknown): string {
  if (isRaisedError(error)) return RAISED_MESSAGE_WITHHELD;
  return redactMessage(error instanceof Error ? error.message : String(error));
}

/**
 * The innermost message of a failure chain (a child or activity failure wraps the real error),
 * as it is. Only for text Ferry's own workflow code wrote, such as the reason an update's
 * validator gives (it names gates and settings the operator typed); anything else goes through
 * rootMessage.
 */
export function innermostMessage(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  for (let cause = (error as { cause?: unknown }).cause; cause; cause = (cause as { cause?: unknown }).cause) {
    message = (cause as Error).message || message;
  }
  return message;
}

/** The innermost message of a failure chain, redacted; withheld when an error in it was raised. */
export function rootMessage(error: unknown): string {
  for (let inner: unknown = error; inner; inner = (inner as { cause?: unknown }).cause) {
    if (isRaisedError(inner)) return RAISED_MESSAGE_WITHHELD;
  }
  return redactMessage(innermostMessage(error));
}

/**
 * Messages the JavaScript engine itself gives for mistakes in a transform's code: they name a
 * property or a function, never a row's value. Anything else a transform throws is its own text
 * (`throw new Error('bad ' + row.card)`) and is withheld.
 */
const ENGINE_MESSAGES = [
  /^Cannot read properties of (?:undefined|null) \(reading '[^']{0,64}'\)$/,
  /^Cannot set properties of (?:undefined|null) \(setting '[^']{0,64}'\)$/,
  /^[\w$.[\]'"]{1,80} is not (?:a function|a constructor|defined|iterable|a function or its return value is not iterable)$/,
  /^Unexpected end of JSON input$/,
  /^Unexpected token .{1,40}, ".*" is not valid JSON$/,
  /^Unexpected (?:non-whitespace character|token) .{0,40}in JSON at position \d+/,
  /^Invalid time value$/,
  /^Do not know how to serialize a BigInt$/,
  /^Maximum call stack size exceeded$/,
  /^Converting circular structure to JSON/,
];

/**
 * What may be said of an error a transform threw, in place of its message: its class, its code
 * if it has one, and the engine's own message when it is one of the known kinds (redacted).
 */
export function transformErrorSummary(error: unknown): string {
  const name = error instanceof Error ? error.name : typeof error;
  const code = (error as { code?: unknown } | null)?.code;
  const codeText = typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? ` [${code}]` : '';
  const message = error instanceof Error ? error.message : '';
  const engine = ENGINE_MESSAGES.some((shape) => shape.test(message));
  // Property and function names stay; JSON's messages quote the input, which goes.
  return engine
    ? `${name}${codeText}: ${/JSON/.test(message) ? redactMessage(message) : message}`
    : `${name}${codeText} thrown by the transform (its message is withheld: it may carry row values)`;
}

/** Errors that belong to a row (bad value, constraint), not to the database or the plan. */
export function isRowError(sqlstate: string | undefined): boolean {
  if (!sqlstate) return false;
  return sqlstate.startsWith('22') || sqlstate.startsWith('23') || sqlstate === 'P0001';
}
