/**
 * Loading a transform module: only from the worker's transform directory (links resolved), once
 * per path and process, with errors that say what to change and never quote the file.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { require as tsxRequire } from 'tsx/cjs/api';
import { tsImport } from 'tsx/esm/api';
import type { RowTransform } from './rows';

const loaded = new Map<string, Promise<RowTransform>>();

const ESM_ONLY = new Set(['.mjs', '.mts']);

async function importModule(file: string): Promise<unknown> {
  const parent = path.join(process.cwd(), 'ferry-transform-loader.js');
  if (!ESM_ONLY.has(path.extname(file))) {
    try {
      return tsxRequire(file, parent);
    } catch (error) {
      // A .js file of a "type": "module" package, or one using top-level await: import it.
      const code = (error as { code?: unknown }).code;
      if (code !== 'ERR_REQUIRE_ESM' && code !== 'ERR_REQUIRE_ASYNC_MODULE') throw error;
    }
  }
  const url = pathToFileURL(file).href;
  try {
    // Under tsx (the worker) the native import already understands TypeScript.
    return await import(url);
  } catch (error) {
    // Elsewhere (plain node, test runners) a .mts file needs tsx's loader, scoped to this import.
    if ((error as { code?: unknown }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw error;
    return tsImport(url, pathToFileURL(parent).href);
  }
}

/** The transform function of a loaded module: its default export, or its `transform` export. */
function transformExportOf(mod: unknown): RowTransform | null {
  const candidates: unknown[] = [mod];
  for (let i = 0; i < candidates.length && i < 8; i++) {
    const value = candidates[i];
    if (typeof value === 'function') return value as RowTransform;
    if (value && typeof value === 'object') {
      // ESM namespaces and transpiled CJS wrap the default export once or twice.
      const record = value as Record<string, unknown>;
      candidates.push(record.default, record.transform);
    }
  }
  return null;
}

function describeExports(mod: unknown): string {
  if (mod === null || mod === undefined) return 'it exports nothing';
  if (typeof mod !== 'object') return `its export is a ${typeof mod}`;
  const names = Object.keys(mod);
  // Names only, and only those that read as identifiers: never a piece of the file's content.
  const shown = names.filter((name) => /^[A-Za-z_$][\w$]{0,63}$/.test(name)).slice(0, 10);
  const others = names.length - shown.length;
  if (names.length === 0) return 'it exports nothing';
  return `its exports are: ${[...shown, ...(others > 0 ? [`${others} other${others === 1 ? '' : 's'}`] : [])].join(', ')}`;
}

/**
 * Why a module did not load, without quoting it: the error's class and, for a syntax error, the
 * line. Loader messages quote the offending source, and the file may not be a module at all (a
 * file of secrets given by mistake, or on purpose).
 */
function loadErrorSummary(error: unknown): string {
  const name = error instanceof Error ? error.name : typeof error;
  const code = (error as { code?: unknown } | null)?.code;
  const line = /:(\d+):\d+/.exec(error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : '')?.[1];
  return `${name}${typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? ` [${code}]` : ''}${line ? ` near line ${line}` : ''} (the loader's message is withheld: it may quote the file)`;
}

/** Where a worker may load transform modules from: FERRY_TRANSFORM_DIR, when set. */
export function transformDirFromEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  const dir = env.FERRY_TRANSFORM_DIR?.trim();
  return dir ? dir : null;
}

/**
 * The real path of the module at `modulePath` (relative paths are resolved against the
 * worker's working directory), once checked to be a file inside `directory` after resolving
 * every link, so a link that points outside is refused. Without a directory the worker loads no
 * module at all. Fails with a non-retryable ApplicationFailure saying what to change.
 */
export async function resolveTransformModule(modulePath: string, directory: string | null): Promise<string> {
  if (!directory) {
    throw ApplicationFailure.nonRetryable(
      `transform module ${modulePath} is refused: this worker loads transform modules only from a directory it is given; ` +
        'start it with --transform-dir DIR (or FERRY_TRANSFORM_DIR=DIR) and put the module there',
      'TransformModuleRefused',
    );
  }
  const root = await realpath(path.resolve(process.cwd(), directory)).catch(() => null);
  if (!root) {
    throw ApplicationFailure.nonRetryable(
      `the worker's transform directory ${directory} does not exist; create it or start the worker with another --transform-dir`,
      'TransformModuleRefused',
    );
  }
  const file = path.resolve(process.cwd(), modulePath);
  const real = await realpath(file).catch(() => null);
  if (!real) {
    throw ApplicationFailure.nonRetryable(
      `transform module ${file} does not exist on this worker (relative paths are resolved against the worker's ` +
        `working directory, ${process.cwd()}); deploy the module with the worker into ${root}`,
      'TransformModuleNotFound',
    );
  }
  const inside = path.relative(root, real);
  if (inside === '' || inside.startsWith('..') || path.isAbsolute(inside)) {
    throw ApplicationFailure.nonRetryable(
      `transform module ${file} is refused: it is not inside the worker's transform directory ${root} (links are followed ` +
        'before this check); put the module there, or start the worker with another --transform-dir',
      'TransformModuleRefused',
    );
  }
  const info = await stat(real);
  if (!info.isFile()) {
    throw ApplicationFailure.nonRetryable(`transform module ${file} is not a file`, 'TransformModuleNotFound');
  }
  return real;
}

async function load(file: string): Promise<RowTransform> {
  let mod: unknown;
  try {
    mod = await importModule(file);
  } catch (error) {
    // No cause attached: it would carry the loader's message, and so the file, into the history.
    throw ApplicationFailure.nonRetryable(`transform module ${file} failed to load: ${loadErrorSummary(error)}`, 'TransformModuleInvalid');
  }
  const transform = transformExportOf(mod);
  if (!transform) {
    throw ApplicationFailure.nonRetryable(
      `transform module ${file} has no function to call: ${describeExports(mod)}; ` +
        'export the row transform as its default export (export default (row) => ...) or as `transform`',
      'TransformModuleInvalid',
    );
  }
  return transform;
}

/**
 * The row transform of a module whose path resolveTransformModule returned. Loaded once per
 * path and process, so a changed module takes effect when the worker restarts; a module that
 * failed to load is tried again on the next call.
 */
export function loadResolvedTransform(file: string): Promise<RowTransform> {
  let transform = loaded.get(file);
  if (!transform) {
    transform = load(file);
    loaded.set(file, transform);
    transform.catch(() => loaded.delete(file));
  }
  return transform;
}

/**
 * The row transform of the module at `modulePath`, allowed only inside `directory` (see
 * resolveTransformModule). Fails with a non-retryable ApplicationFailure when the module is
 * refused, missing, does not load, or exports no function.
 */
export async function loadTransform(modulePath: string, directory: string | null): Promise<RowTransform> {
  return loadResolvedTransform(await resolveTransformModule(modulePath, directory));
}
