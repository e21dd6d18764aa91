/**
 * Installs a Debian package that a test needs (promtool, Chromium) when it is missing: as root
 * with apt-get, refreshing the package lists only when there are none. Otherwise it says exactly
 * what to do. Safe to run twice.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

/** Installs `pkg` unless `present()` already holds; throws with the reason and the fix when it cannot. */
export function ensureDebianPackage(pkg: string, what: string, present: () => boolean): void {
  if (present()) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!isRoot || !hasApt) {
    throw new Error(
      `${what} is missing and cannot be installed here (${!hasApt ? 'no apt-get' : 'not root'}); ` +
        `install it (Debian: apt-get install ${pkg}) and run the tests again`,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const listsDir = '/var/lib/apt/lists';
  const hasLists = existsSync(listsDir) && readdirSync(listsDir).some((name) => name.endsWith('_Packages') || name.includes('_Packages.'));
  try {
    if (!hasLists) execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: 'inherit', env });
  } catch (error) {
    throw new Error(`installing ${what} (apt-get install ${pkg}) failed: ${(error as Error).message}`, { cause: error });
  }
  if (!present()) throw new Error(`apt-get installed ${pkg}, but ${what} is still missing`);
}
