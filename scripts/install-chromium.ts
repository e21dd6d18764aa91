/**
 * Makes sure a headless Chromium is at /usr/bin/chromium, for the test that renders `ferry report
 * --format html`: installs Debian's `chromium` package when it is missing and we are root, and
 * otherwise says exactly what to do. Safe to run twice; does nothing when Chromium is there.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ensureDebianPackage } from './services/debian-package';

export const CHROMIUM = '/usr/bin/chromium';

/** Installs Chromium if needed and returns its path; throws with the reason (and what to do) when it cannot. */
export function ensureChromium(): string {
  ensureDebianPackage('chromium', CHROMIUM, () => existsSync(CHROMIUM));
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
