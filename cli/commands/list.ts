/** `ferry list`: migrations with their phase and progress, running ones or all. */
import type { Command } from 'commander';
import { settingsOf, wholeNumber, withClient } from '../context';
import { lazy, operatorModule } from '../lazy';
import type * as ListExports from '../list';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const listModule = lazy(() => require('../list') as typeof ListExports);

export function addListCommand(program: Command): void {
  program
    .command('list')
    .description('List migrations with their phase and progress (running ones; --all for finished ones too).')
    .option('--all', 'include finished migrations', false)
    .option('--limit <n>', 'at most this many', '50')
    .option('--plan <name>', 'only migrations of this plan')
    .option('--phase <phase>', 'only migrations in this phase (e.g. awaiting-approval)')
    .option('--target <schema.table>', 'only migrations into this table')
    .option('--json', 'print as JSON', false)
    .action(async (options: { all: boolean; limit: string; json: boolean; plan?: string; phase?: string; target?: string }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const listings = await operatorModule().listMigrations(client, { ...options, limit: wholeNumber('--limit', options.limit) });
        if (options.json) console.log(JSON.stringify(listings, null, 2));
        else if (listings.length === 0) console.log(options.all ? 'no migrations' : 'no running migrations (--all shows finished ones)');
        else console.log(listModule().formatListingTable(listings));
      });
    });
}
