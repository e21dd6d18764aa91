/** `ferry dev`, registered without loading what it runs (a Temporal server, Postgres, a worker) until it runs. */
import type { Command } from 'commander';
import { settingsOf } from '../context';
import type * as DevExports from '../dev';

export function addDevCommand(program: Command): void {
  program
    .command('dev')
    .description(
      "Run a local Temporal server (with Ferry's search attributes), a PostgreSQL (embedded unless DATABASE_URL is set) and a worker " +
        'until Ctrl-C, and print the variables to export in another terminal to try the commands.',
    )
    .option('--rows <n>', 'rows in the sample users table of the embedded database (default: 10000)')
    .action(async (options: { rows?: string }, command: Command) => {
      const rows = options.rows === undefined ? 10_000 : Number(options.rows);
      if (!Number.isSafeInteger(rows) || rows < 0) {
        throw Object.assign(new Error(`--rows must be a whole number, not "${options.rows}"`), { exitCode: 2 });
      }
      const stopped = new Promise<void>((resolve) => {
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { runDev } = require('../dev') as typeof DevExports;
      await runDev({ temporal: settingsOf(command), sampleRows: rows, stopped });
    });
}
