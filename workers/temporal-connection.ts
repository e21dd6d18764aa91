/**
 * How the CLI, the worker and the scripts reach Temporal, the way Temporal's own tools do: a
 * profile of `temporal.toml` (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE), the standard TEMPORAL_*
 * variables, then flags named as the Temporal CLI names them. API keys and certificates stay
 * in this process: they are never part of a workflow's input.
 */
import { Connection } from '@temporalio/client';
import { loadClientConfigProfile, toClientOptions, type ClientConfigProfile } from '@temporalio/envconfig';
import type * as WorkerExports from '@temporalio/worker';
import type { NativeConnection } from '@temporalio/worker';
import { temporalSettings, type TemporalSettings, type TemporalTls } from '../lib/settings';

/** Connection flags, as `temporal` spells them (`--tls-cert-path` and the like). */
export interface TemporalConnectionFlags {
  address?: string;
  namespace?: string;
  taskQueue?: string;
  profile?: string;
  apiKey?: string;
  /** true: TLS with the system's roots (or --tls-ca-path); false: plain text even with an API key. */
  tls?: boolean;
  tlsCertPath?: string;
  tlsKeyPath?: string;
  tlsCaPath?: string;
  tlsServerName?: string;
}

/** A connection setting that cannot be used: a missing file, a key without a certificate. */
export class TemporalConfigError extends Error {
  override name = 'TemporalConfigError';
}

/**
 * Where and how to reach Temporal: flags over variables over the profile over the defaults
 * (localhost:7233, namespace default, task queue ferry). Reads the certificate files it names.
 */
export function resolveTemporal(env: Record<string, string | undefined>, flags: TemporalConnectionFlags = {}): TemporalSettings {
  const profile = loadProfile(env, flags.profile);
  if (flags.address) profile.address = flags.address;
  if (flags.namespace) profile.namespace = flags.namespace;
  if (flags.apiKey) profile.apiKey = flags.apiKey;
  const tlsFlags = flags.tlsCertPath || flags.tlsKeyPath || flags.tlsCaPath || flags.tlsServerName;
  if (tlsFlags || flags.tls !== undefined) {
    const tls = { ...profile.tls };
    if (flags.tlsCertPath) tls.clientCert = { path: flags.tlsCertPath };
    if (flags.tlsKeyPath) tls.clientKey = { path: flags.tlsKeyPath };
    if (flags.tlsCaPath) tls.serverCACert = { path: flags.tlsCaPath };
    if (flags.tlsServerName) tls.serverName = flags.tlsServerName;
    tls.disabled = flags.tls === false;
    profile.tls = tls;
  }
  if (!profile.tls?.clientCert !== !profile.tls?.clientKey) {
    throw new TemporalConfigError('a client certificate needs its key and the other way round: give both --tls-cert-path and --tls-key-path (or TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)');
  }
  let options: ReturnType<typeof toClientOptions>['connectionOptions'];
  try {
    options = toClientOptions(profile).connectionOptions;
  } catch (error) {
    const { code, path } = error as NodeJS.ErrnoException & { path?: string };
    throw new TemporalConfigError(code === 'ENOENT' && path ? `cannot read ${path}: no such file (a TLS certificate or key named in the flags, the variables or the profile)` : `Temporal connection settings: ${(error as Error).message}`);
  }
  const base = temporalSettings(env, { ...(profile.address ? { address: profile.address } : {}), ...(profile.namespace ? { namespace: profile.namespace } : {}), ...(flags.taskQueue ? { taskQueue: flags.taskQueue } : {}) });
  return {
    ...base,
    ...(options.tls ? { tls: options.tls as boolean | TemporalTls } : {}),
    ...(options.apiKey ? { apiKey: options.apiKey as string } : {}),
    ...(options.metadata && Object.keys(options.metadata).length ? { metadata: options.metadata as Record<string, string> } : {}),
  };
}

function loadProfile(env: Record<string, string | undefined>, profileName: string | undefined): ClientConfigProfile {
  const definedEnv = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const profile = profileName ?? env.TEMPORAL_PROFILE;
  try {
    return loadClientConfigProfile({ ...(profile ? { profile } : {}), overrideEnvVars: definedEnv });
  } catch (error) {
    const { line, column } = error as { line?: unknown; column?: unknown };
    // The TOML parser's message quotes the lines around the mistake, an api_key line among them.
    const cause =
      typeof line === 'number' && typeof column === 'number'
        ? `the Temporal config file (TEMPORAL_CONFIG_FILE, else temporal.toml in the user's config directory) is not valid TOML at line ${line}, column ${column}; its text is not shown, since it may hold an API key`
        : (error as Error).message;
    throw new TemporalConfigError(`Temporal profile${profile ? ` "${profile}"` : ''}: ${cause}`);
  }
}

/** A client connection for the CLI and scripts; fails within `connectTimeoutMs` when nothing answers. */
export function connectClientConnection(settings: TemporalSettings, connectTimeoutMs = 5000): Promise<Connection> {
  return Connection.connect({
    address: settings.address,
    connectTimeout: connectTimeoutMs,
    ...(settings.tls ? { tls: settings.tls } : {}),
    ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
    ...(settings.metadata ? { metadata: settings.metadata } : {}),
  });
}

/** Temporal did not answer, or refused the connection (TLS, certificate, API key). */
export class TemporalUnreachableError extends Error {
  override name = 'TemporalUnreachableError';
}

/** The worker's connection (the SDK's native one). */
export async function connectWorkerConnection(settings: TemporalSettings): Promise<NativeConnection> {
  // Loaded here, not at the top: the worker SDK (its native runtime, rxjs, memfs: about 390
  // modules) would load in every CLI command that only needs a client connection.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { NativeConnection } = require('@temporalio/worker') as typeof WorkerExports;
  try {
    return await NativeConnection.connect({
      address: settings.address,
      ...(settings.tls ? { tls: settings.tls } : {}),
      ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
      ...(settings.metadata ? { metadata: settings.metadata } : {}),
    });
  } catch (error) {
    throw new TemporalUnreachableError(
      `cannot reach Temporal at ${describeConnection(settings)}: ${(error as Error).message.split('\n')[0]}` +
        (settings.tls || settings.apiKey ? '; check the TLS certificates, the server name and the API key' : ''),
      { cause: error },
    );
  }
}

/** Says how a connection was secured, for messages; never the key itself. */
export function describeConnection(settings: TemporalSettings): string {
  const security = [settings.tls ? (typeof settings.tls === 'object' && settings.tls.clientCertPair ? 'mTLS' : 'TLS') : 'plain text', settings.apiKey ? 'API key' : null].filter(Boolean);
  return `${settings.address} (${security.join(', ')})`;
}
