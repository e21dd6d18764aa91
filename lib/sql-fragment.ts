/**
 * What a plan's SQL fragments (transform expressions, subset.where, backoff.probe) may hold:
 * one expression or query, nothing that could end Ferry's statement and start another. Pure
 * code, shared by the plan's schema and the workers' own checks.
 */

/**
 * The problem with a SQL fragment from a plan, or null when it is fit to embed in one of Ferry's
 * statements. Deliberately stricter than SQL: no `;` at all (even in a string), no comments,
 * parentheses that balance. A fragment that passes cannot close Ferry's parentheses nor start a
 * second statement, whichever way the server reads backslashes in strings.
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
    const problem = nestingProblem(text, backslashEscapes);
    if (problem) return problem;
  }
  return null;
}

const IDENTIFIER_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;
const DOLLAR_TAG = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

/**
 * Unbalanced parentheses or an unterminated quote, read with quotes skipped. `backslashEscapes`
 * reads every '...' string as an escape string (standard_conforming_strings off); both readings
 * must pass, so a fragment cannot mean one thing here and another to the server.
 */
function nestingProblem(text: string, backslashEscapes: boolean): string | null {
  let depth = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const previous = i > 0 ? text[i - 1]! : '';
    if (c === "'") {
      const escapes = backslashEscapes || /[eE]/.test(previous) && !IDENTIFIER_CHAR.test(i > 1 ? text[i - 2]! : '');
      const end = quoteEnd(text, i, "'", escapes);
      if (end < 0) return 'has a string literal that is never closed';
      i = end;
      continue;
    }
    if (c === '"') {
      const end = quoteEnd(text, i, '"', false);
      if (end < 0) return 'has a quoted identifier that is never closed';
      i = end;
      continue;
    }
    if (c === '$' && !IDENTIFIER_CHAR.test(previous)) {
      const tag = DOLLAR_TAG.exec(text.slice(i))?.[0];
      if (tag) {
        const close = text.indexOf(tag, i + tag.length);
        if (close < 0) return 'has a dollar-quoted string that is never closed';
        i = close + tag.length;
        continue;
      }
    }
    if (c === '(') depth += 1;
    if (c === ')' && --depth < 0) return 'closes a parenthesis it never opened';
    i += 1;
  }
  return depth === 0 ? null : 'opens a parenthesis it never closes';
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
