/**
 * Makes sure `promtool` (Prometheus's own checker of the exposition format) is on the PATH:
 * installs Debian's `prometheus` package when it is missing and we are root, and otherwise
 * says exactly what to do. Safe to run twice; does nothing when promtool is there.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

export function promtoolOnPath(): boolean {
  return spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Installs promtool if needed; throws with the reason (and what to do) when it cannot. */
export function ensurePromtool(): void {
  if (promtoolOnPath()) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!isRoot || !hasApt) {
    throw new Error(
      `promtool is not on the PATH and cannot be installed here (${!hasApt ? 'no apt-get' : 'not root'}); ` +
        'install it (Debian: apt-get install prometheus; or the promtool binary from a Prometheus release) and run the tests again',
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const listsDir = '/var/lib/apt/lists';
  const hasLists = existsSync(listsDir) && readdirSync(listsDir).some((name) => name.endsWith('_Packages') || name.includes('_Packages.'));
  try {
    if (!hasLists) execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'prometheus'], { stdio: 'inherit', env });
  } catch (error) {
    throw new Error(`installing promtool (apt-get install prometheus) failed: ${(error as Error).message}`, { cause: error });
  }
  if (!promtoolOnPath()) throw new Error('apt-get installed prometheus, but promtool is still not on the PATH');
}

if (require.main === module) {
  try {
    ensurePromtool();
    console.log(`promtool: ${execFileSync('promtool', ['--version'], { encoding: 'utf8' }).split('\n')[0]}`);
  } catch (error) {
    console.error(`install-promtool: ${(error as Error).message}`);
    process.exit(1);
  }
}
