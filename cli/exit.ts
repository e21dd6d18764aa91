/** How the ferry process ends: never before what it printed has reached its reader. */

/**
 * Exits with `code` once stdout and stderr have drained. `process.exit` alone cuts output into
 * a pipe at 64 KiB (the pipe's buffer) when the reader is slower than the writer.
 */
export function exitWhenFlushed(code: number): void {
  let pending = 2;
  const drained = () => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', drained);
  process.stderr.write('', drained);
}
