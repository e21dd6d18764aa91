/**
 * `npm run build`: compiles Ferry to JavaScript with type declarations in dist/, and bundles the
 * workflow code once (dist/workflow-bundle.js, and dist/workflow-bundle-traced.js with the tracing
 * interceptors), so that `ferry` runs compiled code and a worker
 * starts without bundling. `npm ci` runs it (prepare), and so does `npm test` (pretest).
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { workflowTracingModule } from '../workers/tracing';

const root = path.join(__dirname, '..');
const dist = path.join(root, 'dist');
/** Written last: its time says when dist/ was complete. */
const stamp = path.join(dist, '.built');
const SOURCE_DIRS = ['cli', 'operator', 'workers', 'activities', 'workflows', 'lib', 'client'];

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
  // Two bundles: a worker with an OTLP endpoint runs the one with Temporal's tracing interceptors,
  // any other worker pays nothing for them.
  for (const [file, workflowInterceptorModules] of [
    ['workflow-bundle.js', []],
    ['workflow-bundle-traced.js', [workflowTracingModule()]],
  ] as const) {
    const bundle = await bundleWorkflowCode({
      workflowsPath: path.join(dist, 'workflows', 'index.js'),
      workflowInterceptorModules: [...workflowInterceptorModules],
      // Evaluated once per worker, not once per new workflow (workflows/shared-modules.ts).
      preloadModules: [path.join(dist, 'workflows', 'shared-modules.js')],
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error },
    });
    writeFileSync(path.join(dist, file), bundle.code);
  }
  buildClientPackage();
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

/**
 * The client library as a package of its own (client/, an npm workspace): CommonJS with types,
 * and an ES module entry that re-exports the CommonJS one, so that an application that both
 * imports and requires it still gets one copy of its state (one flag cache, one kill switch).
 */
function buildClientPackage(): void {
  const clientDir = path.join(root, 'client');
  const clientDist = path.join(clientDir, 'dist');
  rmSync(clientDist, { recursive: true, force: true });
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(clientDir, 'tsconfig.build.json')], { stdio: 'inherit', cwd: clientDir });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const names = Object.keys(require(path.join(clientDist, 'cjs', 'client', 'index.js')) as object).filter((name) => name !== '__esModule' && name !== 'default');
  mkdirSync(path.join(clientDist, 'esm'), { recursive: true });
  writeFileSync(
    path.join(clientDist, 'esm', 'index.mjs'),
    `import client from '../cjs/client/index.js';\nexport const { ${names.join(', ')} } = client;\nexport default client;\n`,
  );
  writeFileSync(path.join(clientDist, 'esm', 'index.d.mts'), `export * from '../cjs/client/index.js';\n`);
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
