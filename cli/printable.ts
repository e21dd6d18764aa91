/**
 * Text someone else gave (an operator's name, reason or note) as the CLI prints it: anyone with
 * access to Temporal can send any text, and recorded text outlives the checks of the day, so a
 * newline could print a line that looks like Ferry's own (a forged approval) and a terminal
 * escape could hide or rewrite what follows. Pure; never throws.
 */
import { isControlCode } from '../lib/messages-input';

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `text` with each control character shown escaped (\n, \r, \t, else \u001b and the like), on one line. */
export function printable(text: string): string {
  let shown = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    shown += isControlCode(code) ? (NAMED[char] ?? `\\u${code.toString(16).padStart(4, '0')}`) : char;
  }
  return shown;
}
