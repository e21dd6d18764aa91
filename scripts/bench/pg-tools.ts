/**
 * The PostgreSQL client tools the benchmark measures Ferry against (psql, pgbench, pgcopydb):
 * found on this machine, or installed from Debian's packages when they are missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ensureDebianPackage } from '../services/debian-package';

/** The newest Debian PostgreSQL build of `binary`, else the one on PATH; null when there is none. */
export function findPgBinary(binary: string): string | null {
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    for (const version of readdirSync(debian).sort((a, b) => Number(b) - Number(a))) {
      const candidate = path.join(debian, version, 'bin', binary);
      if (existsSync(candidate)) return candidate;
    }
  }
  const which = spawnSync('which', [binary], { encoding: 'utf8' });
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : null;
}

/** Debian packages that ship each tool (bookworm: pgbench comes with the server package). */
const PACKAGES = {
  psql: 'postgresql-client',
  pgbench: 'postgresql-15',
  pgcopydb: 'pgcopydb',
} as const;

export type PgTool = keyof typeof PACKAGES;

/** The tool's path, installing its Debian package first when it is missing; throws when it cannot. */
export function ensurePgTool(tool: PgTool): string {
  ensureDebianPackage(PACKAGES[tool], tool, () => findPgBinary(tool) !== null);
  return findPgBinary(tool)!;
}

/** Like ensurePgTool, but says why instead of throwing (for the optional peers). */
export function tryPgTool(tool: PgTool): { path: string } | { missing: string } {
  try {
    return { path: ensurePgTool(tool) };
  } catch (error) {
    return { missing: (error as Error).message };
  }
}

/** `psql --version` and the like, for the report. */
export function toolVersion(binary: string): string {
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim().split('\n')[0]! : 'version unknown';
}
