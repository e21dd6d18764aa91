/**
 * `ferry dev`: everything Ferry needs on one machine, kept up until Ctrl-C, to try the commands
 * against: a local Temporal dev server with Ferry's search attributes, a PostgreSQL (embedded, or
 * the one DATABASE_URL names) and a worker on the task queue.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { TemporalSettings } from '../lib/settings';
import { startPostgres, type PostgresServer } from '../scripts/services/postgres';
import { createSampleUsers } from '../scripts/services/sample-users';
import { startTemporal, type TemporalServer } from '../scripts/services/temporal';
import { createFerryWorker } from '../workers/worker';

/** The connection variable the example plans name. */
export const DEV_CONNECTION = 'DEMO_DATABASE_URL';

export interface DevOptions {
  /** Task queue and namespace to serve; the address is the server this command starts. */
  temporal: TemporalSettings;
  /** Rows in the sample users table of an embedded database. (Default: 10000) */
  sampleRows: number;
  /** Resolves when it is time to stop (Ctrl-C). */
  stopped: Promise<void>;
  log?: (line: string) => void;
}

/** The package's folder (with package.json), from the sources or from dist/ alike. */
function packageRoot(): string {
  for (let dir = __dirname; path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
  }
  return path.join(__dirname, '..');
}

/** 7233, Temporal's usual port, when it is free: then the CLI's default address finds it. */
async function preferredPort(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(port)));
  });
}

export async function runDev(options: DevOptions): Promise<void> {
  const log = options.log ?? console.log;

  // The worker's own chatter would bury what to type next; warnings still show.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const ownDatabase = process.env.DATABASE_URL;
  log(`starting a local Temporal server and ${ownDatabase ? 'using the PostgreSQL in DATABASE_URL' : 'an embedded PostgreSQL'} ...`);
  let postgres: PostgresServer | null = null;
  let temporalServer: TemporalServer | null = null;
  try {
    const port = await preferredPort(7233);
    [postgres, temporalServer] = await Promise.all([startPostgres(), startTemporal({ ui: true, ...(port ? { port } : {}) })]);
    let databaseUrl: string;
    if (ownDatabase) databaseUrl = ownDatabase;
    else {
      databaseUrl = await postgres.createDatabase('ferry_dev');
      await createSampleUsers(databaseUrl, options.sampleRows);
    }
    const temporal = { ...options.temporal, address: temporalServer.address };
    const worker = await createFerryWorker({ temporal, env: { ...process.env, [DEV_CONNECTION]: databaseUrl } });
    const running = worker.run();
    const example = path.relative(process.cwd(), path.join(packageRoot(), 'examples', 'split-full-name.yaml'));
    log(
      [
        '',
        `ready: Temporal at ${temporal.address} (Web UI ${temporalServer.uiUrl ?? 'off'}), a worker on task queue "${temporal.taskQueue}",`,
        ownDatabase
          ? `and your database (the worker has this terminal's environment, so your plans' connection variables work if set here).`
          : `and a database with a sample table users (${options.sampleRows.toLocaleString('en-US')} rows) and an empty users_v2.`,
        '',
        'in another terminal:',
        `  export TEMPORAL_ADDRESS=${temporal.address}`,
        `  export FERRY_TASK_QUEUE=${temporal.taskQueue}`,
        // The URL of a database of your own stays out of this output (and any log of it).
        ownDatabase ? `  export ${DEV_CONNECTION}="$DATABASE_URL"` : `  export ${DEV_CONNECTION}='${databaseUrl}'`,
        '',
        'then try:',
        `  ferry start ${example}             # a dry run`,
        `  ferry start ${example} --execute   # prints the migration id`,
        '  ferry status <id> --watch',
        '  ferry list --all',
        '',
        `Ctrl-C stops the worker, Temporal${ownDatabase ? '' : ' and the embedded database'} (their state goes with them).`,
      ].join('\n'),
    );
    await Promise.race([options.stopped, running]);
    log('stopping ...');
    worker.shutdown();
    await running;
  } finally {
    await temporalServer?.stop();
    await postgres?.stop();
  }
}

/** Adds `ferry dev` to the program; `settingsOf` gives the task queue and namespace from the global options. */
