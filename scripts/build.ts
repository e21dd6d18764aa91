/**
 * `npm run build`: compiles Ferry to JavaScript with type declarations in dist/, and bundles the
 * workflow code once (dist/workflow-bundle.js), so that `ferry` runs compiled code and a worker
 * starts without bundling. `npm ci` runs it (prepare), and so does `npm test` (pretest).
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const root = path.join(__dirname, '..');
const dist = path.join(root, 'dist');
/** Written last: its time says when dist/ was complete. */
const stamp = path.join(dist, '.built');
const SOURCE_DIRS = ['cli', 'workers', 'activities', 'workflows', 'lib', 'client'];

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(file));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(file).mtimeMs);
  }
  return newest;
}

/** dist/ is complete and newer than every source file (and the build settings). */
export function buildIsCurrent(): boolean {
  if (!existsSync(stamp)) return false;
  const built = statSync(stamp).mtimeMs;
  const inputs = [...SOURCE_DIRS.map((dir) => newestSource(path.join(root, dir))), statSync(path.join(root, 'tsconfig.build.json')).mtimeMs, statSync(path.join(root, 'package.json')).mtimeMs];
  return inputs.every((mtime) => mtime <= built);
}

export async function build(): Promise<void> {
  rmSync(dist, { recursive: true, force: true });
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
  const bundle = await bundleWorkflowCode({
    workflowsPath: path.join(dist, 'workflows', 'index.js'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error },
  });
  writeFileSync(path.join(dist, 'workflow-bundle.js'), bundle.code);
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

if (require.main === module) {
  const started = Date.now();
  // --if-stale: nothing to do when dist/ is newer than every source (npm ci has just built it).
  const skip = process.argv.includes('--if-stale') && buildIsCurrent();
  (skip ? Promise.resolve() : build()).then(
    () => console.log(skip ? 'dist/ is current' : `built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`),
    (error: unknown) => {
      console.error(`build failed: ${(error as Error).message}`);
      process.exit(1);
    },
  );
}
