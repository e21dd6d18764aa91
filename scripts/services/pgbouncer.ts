/**
 * A connection pooler in front of a Postgres, as many production databases are reached: Debian's
 * PgBouncer in transaction mode (each transaction may get a different server connection), with a
 * small pool so that clients really share server connections.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureDebianPackage } from './debian-package';
import { freePort, waitForListening } from './ports';

export interface PgBouncer {
  /** A URL through the pooler to `database` on the server, as the same user as the server's URL. */
  url(database: string): string;
  /** Server connections per database and user. */
  poolSize: number;
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  /** (Default: transaction) */
  poolMode?: 'transaction' | 'session';
  /** Server connections per database and user. (Default: 2) */
  poolSize?: number;
}

const BINARIES = ['/usr/sbin/pgbouncer', 'pgbouncer'];

function binary(): string | undefined {
  return BINARIES.find((file) => spawnSync(file, ['--version'], { stdio: 'ignore' }).status === 0);
}

/** Installs Debian's pgbouncer when it is missing; throws with the reason when it cannot. */
export function ensurePgBouncer(): string {
  ensureDebianPackage('pgbouncer', 'pgbouncer', () => binary() !== undefined);
  return binary()!;
}

/** As root, the user PgBouncer runs as: postgres when there is one, else a system user made for it. */
function unprivilegedUser(): string | null {
  if (process.getuid?.() !== 0) return null;
  for (const name of ['postgres', 'ferry-postgres']) {
    if (spawnSync('id', ['-u', name], { stdio: 'ignore' }).status === 0) return name;
  }
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'ferry-postgres']);
  return 'ferry-postgres';
}

const quoted = (value: string) => `"${value.replace(/"/g, '""')}"`;

/** Starts pgbouncer in front of the server of `serverUrl` (a postgres:// URL over TCP or a socket). */
export async function startPgBouncer(serverUrl: string, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  const executable = ensurePgBouncer();
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const host = decodeURIComponent(server.hostname) || '127.0.0.1';
  const serverPort = server.port || '5432';
  const poolSize = options.poolSize ?? 2;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-pgbouncer-'));
  const port = await freePort();
  writeFileSync(path.join(dir, 'userlist.txt'), `${quoted(user)} ${quoted(password)}\n`);
  writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    `[databases]
* = host=${host} port=${serverPort} user=${user}${password ? ` password=${password}` : ''}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${dir}/userlist.txt
pool_mode = ${options.poolMode ?? 'transaction'}
default_pool_size = ${poolSize}
max_client_conn = 200
logfile = ${dir}/pgbouncer.log
pidfile = ${dir}/pgbouncer.pid
`,
  );
  // PgBouncer will not run as root: it drops to an unprivileged user, which must read its files.
  const runAs = unprivilegedUser();
  if (runAs) {
    spawnSync('chown', ['-R', runAs, dir]);
    chmodSync(dir, 0o755);
  }
  const child: ChildProcess = spawn(executable, [...(runAs ? ['-u', runAs] : []), path.join(dir, 'pgbouncer.ini')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const log = () => (existsSync(path.join(dir, 'pgbouncer.log')) ? readFileSync(path.join(dir, 'pgbouncer.log'), 'utf8') : '');
  try {
    await Promise.race([
      waitForListening('pgbouncer', port, 10_000),
      new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`pgbouncer exited (${code}): ${stderr}${log()}`)))),
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    url(database) {
      const url = new URL(`postgres://127.0.0.1:${port}/${encodeURIComponent(database)}`);
      url.username = encodeURIComponent(user);
      return url.toString();
    },
    poolSize,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGINT');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
