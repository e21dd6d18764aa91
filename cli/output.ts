/**
 * How commands print: one JSON document with --json, text otherwise; colour only on a terminal,
 * never with NO_COLOR (https://no-color.org) or TERM=dumb.
 */

/** Whether text written to `stream` may carry colour. */
export function colourOn(stream: { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return Boolean(stream.isTTY) && env.TERM !== 'dumb';
}

const STYLES = { red: '\x1b[31m', yellow: '\x1b[33m', green: '\x1b[32m', bold: '\x1b[1m' } as const;
const RESET = '\x1b[0m';

/** The words an operator's eye should land on, coloured when `on`; the text unchanged otherwise. */
export function highlight(text: string, on: boolean): string {
  if (!on) return text;
  return text
    .replace(/\b(ABORTED|aborted|FAILED|failed|NOT clean|approval would be refused)\b/g, `${STYLES.red}$1${RESET}`)
    .replace(/\b(PAUSED|GATE|no worker)\b/g, `${STYLES.yellow}$1${RESET}`)
    .replace(/: (completed|clean)\b/g, `: ${STYLES.green}$1${RESET}`);
}

/** Prints `value` as JSON with --json, else `text` (highlighted on a terminal). */
export function say(json: boolean, value: unknown, text: string): void {
  console.log(json ? JSON.stringify(value, null, 2) : highlight(text, colourOn()));
}
