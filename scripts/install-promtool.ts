/**
 * Makes sure `promtool` (Prometheus's own checker of the exposition format) is on the PATH:
 * installs Debian's `prometheus` package when it is missing and we are root, and otherwise
 * says exactly what to do. Safe to run twice; does nothing when promtool is there.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { ensureDebianPackage } from './services/debian-package';

export function promtoolOnPath(): boolean {
  return spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Installs promtool if needed; throws with the reason (and what to do) when it cannot. */
export function ensurePromtool(): void {
  ensureDebianPackage('prometheus', 'promtool', promtoolOnPath);
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
