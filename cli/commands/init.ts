/** `ferry init`: a plan and the target table's DDL scaffolded from a source table a worker reads. */
import type { Command } from 'commander';
import { CliError, settingsOf, withClient } from '../context';
import { ExitCode } from '../exit-codes';
import type * as InitExports from '../init';
import type { InitOptions } from '../init';
import { lazy } from '../lazy';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const initModule = lazy(() => require('../init') as typeof InitExports);

export function addInitCommand(program: Command): void {
  program
    .command('init')
    .description("Scaffold a plan and the target table's DDL from a source table, read by a worker (which holds the connection variables). The plan copies every column as it is, for you to reshape; nothing is written to a database.")
    .argument('<source-table>', 'the source table, as schema.table or table (schema public)')
    .requiredOption('--connection <VARIABLE>', "the environment variable (on the workers) holding the source database's URL")
    .option('--target-connection <VARIABLE>', 'the target database\'s variable (default: the source\'s)')
    .option('--target-table <schema.table>', 'the new table (default: <source table>_v2 in the same schema)')
    .option('--name <plan-name>', 'the plan name (default: <source>-to-<target>)')
    .option('--key <column>', 'the key to walk (default: the primary key, or another NOT NULL unique column)')
    .option('--out <file>', 'write the plan here instead of printing it')
    .option('--ddl-out <file>', "write the target table's CREATE TABLE here instead of printing it")
    .option('--force', 'overwrite --out and --ddl-out files', false)
    .addHelpText('after', '\nExample:\n  ferry init public.users --connection APP_DATABASE_URL --target-table public.users_v2 --out users.yaml --ddl-out users_v2.sql')
    .action(async (sourceTable: string, options: Omit<InitOptions, 'table'>, command: Command) => {
      const settings = settingsOf(command);
      await withClient(settings, async (client) => {
        let made: { plan: string; ddl: string };
        try {
          made = await initModule().scaffold(client, settings, { ...options, table: sourceTable });
        } catch (error) {
          if (error instanceof initModule().InitError) throw new CliError(error.message, ExitCode.badInput);
          throw error;
        }
        if (!options.out) console.log(made.plan);
        if (!options.ddlOut) console.log(made.ddl);
        if (options.out) console.log(`plan written to ${options.out}; check it with: ferry doctor ${options.out}`);
        if (options.ddlOut) console.log(`target DDL written to ${options.ddlOut}; run it on the target before \`ferry start --execute\``);
      });
    });
}
