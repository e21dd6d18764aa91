/**
 * What a plan's SQL fragments (transform expressions, subset.where, backoff.probe) may hold:
 * one expression or query, nothing that could end Ferry's statement and start another. Pure
 * code, shared by the plan's schema and the workers' own checks.
 */

/**
 * The problem with a SQL fragment from a plan, or null when it is fit to embed in one of Ferry's
 * statements. Deliberately stricter than SQL: no `;` at all (even in a string), no comments,
 * parentheses that balance, no bind parameter, no call of a function that acts outside its
 * transaction (nor a session set_config). A fragment that passes cannot close Ferry's
 * parentheses nor start a second statement, whichever way the server reads backslashes in strings.
 */
export function sqlFragmentProblem(text: string): string | null {
  if (text.includes('\0')) return 'must not contain a NUL character';
  if (text.includes(';')) {
    return 'must be one SQL expression: a semicolon is not allowed, even inside a string (write chr(59) for one)';
  }
  if (/--|\/\*|\*\//.test(text)) {
    return 'must not contain comments (-- or /* */): they can hide the rest of a statement';
  }
  for (const backslashEscapes of [false, true]) {
    const { problem, code } = readNesting(text, backslashEscapes);
    if (problem) return problem;
    const escaped = callProblem(code);
    if (escaped) return escaped;
  }
  return null;
}

/**
 * Functions whose effect escapes the transaction that calls them, so a READ ONLY transaction
 * that is rolled back (a dry run, a probe, a verification read) neither refuses nor undoes it:
 * session advisory locks, replication slots and origins, signals to other sessions, the server's
 * WAL, configuration, statistics and files, statements run by other sessions (dblink,
 * pg_background); and functions that run a query given as text, which could hide any of these.
 */
const ACTS_OUTSIDE_TRANSACTION = [
  /^pg_(try_)?advisory_lock(_shared)?$/,
  /^pg_(create|drop|copy)_\w*replication_slot$/,
  /^pg_(replication_slot_advance|sync_replication_slots|logical_emit_message)$/,
  /^pg_logical_slot_get_\w+$/,
  /^pg_replication_origin_\w+$/,
  /^pg_(terminate|cancel)_backend$/,
  /^pg_(reload_conf|rotate_logfile\w*|promote|switch_wal|create_restore_point|backup_start|backup_stop)$/,
  /^pg_wal_replay_(pause|resume)$/,
  /^pg_stat_(\w+_)?reset\w*$/,
  /^pg_file_\w+$/,
  /^lo_export$/,
  /^(dblink|pg_background)\w*$/,
  /^(query_to_xml\w*|ts_stat|ts_rewrite)$/,
];

/** A name followed by an opening parenthesis: a call, possibly of a quoted or qualified name. */
const CALL = /(?<![A-Za-z0-9_$\u0080-\uffff"])"?([A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)"?\s*\(/g;

/** The problem with what `code` (a fragment with its strings emptied) names or calls, or null. */
function callProblem(code: string): string | null {
  if (/(?<![A-Za-z0-9_$\u0080-\uffff])u&"/i.test(code)) {
    return 'must not use Unicode-escaped identifiers (U&"..."): they can spell any name';
  }
  if (/(?<![A-Za-z0-9_$\u0080-\uffff])\$\d/.test(code.replace(/"(?:[^"]|"")*"/g, '""'))) {
    return "must not refer to a bind parameter ($1): each of Ferry's statements numbers its own, so it would mean something else in each";
  }
  for (const call of code.matchAll(CALL)) {
    const called = call[1]!.toLowerCase();
    if (ACTS_OUTSIDE_TRANSACTION.some((pattern) => pattern.test(called))) {
      return `calls ${called}(), whose effect outlives its transaction (a read-only one neither refuses nor undoes it); plan SQL may not call it`;
    }
    // A session setting made in a committed copy stays on the pooled connection, under Ferry's
    // own settings (datestyle, extra_float_digits, timeouts) and every later statement on it.
    if (called === 'set_config' && argumentsOf(code, call.index + call[0].length)[2]?.trim().toLowerCase() !== 'true') {
      return 'calls set_config() for the session: a setting would outlive the transaction on a pooled connection that other statements share; pass true as its third argument (is_local)';
    }
  }
  return null;
}

/** The top-level arguments of the call whose opening parenthesis ends just before `start`. */
function argumentsOf(code: string, start: number): string[] {
  const args: string[] = [];
  let depth = 0;
  let from = start;
  for (let i = start; i < code.length; i++) {
    const c = code[i];
    if (c === '(' || c === '[') depth += 1;
    else if ((c === ')' || c === ']') && depth > 0) depth -= 1;
    else if (c === ')' || (c === ',' && depth === 0)) {
      args.push(code.slice(from, i));
      if (c === ')') return args;
      from = i + 1;
    }
  }
  return args;
}

const IDENTIFIER_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;
const DOLLAR_TAG = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

/**
 * Unbalanced parentheses or an unterminated quote, read with quotes skipped; and the fragment's
 * code with every string emptied (quoted identifiers kept), where calls are looked for.
 * `backslashEscapes` reads every '...' string as an escape string (standard_conforming_strings
 * off); both readings must pass, so a fragment cannot mean one thing here and another to the server.
 */
function readNesting(text: string, backslashEscapes: boolean): { problem: string | null; code: string } {
  let depth = 0;
  let i = 0;
  let code = '';
  const fail = (problem: string) => ({ problem, code });
  while (i < text.length) {
    const c = text[i]!;
    const previous = i > 0 ? text[i - 1]! : '';
    if (c === "'") {
      const escapes = backslashEscapes || /[eE]/.test(previous) && !IDENTIFIER_CHAR.test(i > 1 ? text[i - 2]! : '');
      const end = quoteEnd(text, i, "'", escapes);
      if (end < 0) return fail('has a string literal that is never closed');
      code += "''";
      i = end;
      continue;
    }
    if (c === '"') {
      const end = quoteEnd(text, i, '"', false);
      if (end < 0) return fail('has a quoted identifier that is never closed');
      code += text.slice(i, end);
      i = end;
      continue;
    }
    if (c === '$' && !IDENTIFIER_CHAR.test(previous)) {
      const tag = DOLLAR_TAG.exec(text.slice(i))?.[0];
      if (tag) {
        const close = text.indexOf(tag, i + tag.length);
        if (close < 0) return fail('has a dollar-quoted string that is never closed');
        code += "''";
        i = close + tag.length;
        continue;
      }
    }
    if (c === '(') depth += 1;
    if (c === ')' && --depth < 0) return fail('closes a parenthesis it never opened');
    code += c;
    i += 1;
  }
  return { problem: depth === 0 ? null : 'opens a parenthesis it never closes', code };
}

/** The index just past the quote opened at `start`, or -1 when it never closes. */
function quoteEnd(text: string, start: number, quote: string, backslashEscapes: boolean): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i];
    if (backslashEscapes && c === '\\') {
      i += 1;
      continue;
    }
    if (c === quote) {
      if (text[i + 1] === quote) {
        i += 1;
        continue;
      }
      return i + 1;
    }
  }
  return -1;
}
