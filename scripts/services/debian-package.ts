/**
 * Installs a Debian package that a test needs (promtool, Chromium) when it is missing: as root
 * with apt-get, refreshing the package lists when there are none or an install fails on stale
 * ones. Otherwise it says exactly what to do. Safe to run twice, and from several processes at
 * once: test files run in parallel, and a second apt-get beside the first fails on dpkg's lock.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

/** Held while one of our processes runs apt-get. */
const INSTALL_LOCK = '/var/lock/ferry-apt-get.lock';
/** How long an install waits for another's. */
const LOCK_WAIT_SECONDS = 600;

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
  // Our own installs take turns on one lock file (flock comes with util-linux, which every Debian
  // has); apt-get itself waits for dpkg's lock, which another program may hold.
  const aptGet = (...args: string[]) =>
    execFileSync('flock', ['--timeout', String(LOCK_WAIT_SECONDS), INSTALL_LOCK, 'apt-get', '-o', `DPkg::Lock::Timeout=${LOCK_WAIT_SECONDS}`, ...args], { stdio: 'inherit', env });
  const install = () => aptGet('install', '-y', '--no-install-recommends', pkg);
  try {
    if (!hasLists) aptGet('update');
    try {
      install();
    } catch {
      // Lists older than the mirror name files it no longer has: refresh them once.
      aptGet('update');
      install();
    }
  } catch (error) {
    throw new Error(`installing ${what} (apt-get install ${pkg}) failed: ${(error as Error).message}`, { cause: error });
  }
  if (!present()) throw new Error(`apt-get installed ${pkg}, but ${what} is still missing`);
}
