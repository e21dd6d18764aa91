/**
 * Makes sure a headless Chromium is at /usr/bin/chromium, for the test that renders `ferry report
 * --format html`: installs Debian's `chromium` package when it is missing and we are root, and
 * otherwise says exactly what to do. Safe to run twice; does nothing when Chromium is there.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

export const CHROMIUM = '/usr/bin/chromium';

/** Installs Chromium if needed and returns its path; throws with the reason (and what to do) when it cannot. */
export function ensureChromium(): string {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!isRoot || !hasApt) {
    throw new Error(
      `${CHROMIUM} is missing and cannot be installed here (${!hasApt ? 'no apt-get' : 'not root'}); ` +
        'install it (Debian: apt-get install chromium) and run the tests again',
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const listsDir = '/var/lib/apt/lists';
  const hasLists = existsSync(listsDir) && readdirSync(listsDir).some((name) => name.endsWith('_Packages') || name.includes('_Packages.'));
  try {
    if (!hasLists) execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { stdio: 'inherit', env });
  } catch (error) {
    throw new Error(`installing Chromium (apt-get install chromium) failed: ${(error as Error).message}`, { cause: error });
  }
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium, but ${CHROMIUM} is still missing`);
  return CHROMIUM;
}

if (require.main === module) {
  try {
    const chromium = ensureChromium();
    console.log(`chromium: ${execFileSync(chromium, ['--version'], { encoding: 'utf8' }).trim()}`);
  } catch (error) {
    console.error(`install-chromium: ${(error as Error).message}`);
    process.exit(1);
  }
}
