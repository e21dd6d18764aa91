/**
 * Temporal's answers as the CLI words them: what is known of a migration no worker serves, and
 * an SDK error as one line with the exit code it means.
 */
import type { KnownWithoutWorker } from '../operator';
import { ExitCode } from './exit-codes';

/** One line for `ferry status` when no worker can say more: what Temporal records, marked as such. */
export function formatKnownWithoutWorker(known: KnownWithoutWorker): string {
  return [
    `migration ${known.migrationId}: running (from Temporal's record; live figures need a worker)`,
    `phase     ${known.phase ?? 'unknown'} (as the workflow last recorded it)`,
    `started   ${known.startedAt}`,
    `queue     ${known.taskQueue}: no worker`,
  ].join('\n');
}

/** gRPC status codes the CLI tells apart in an SDK error's cause chain. */
function grpcCode(error: unknown): number | null {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.code === 'number') return e.code;
  }
  return null;
}

/**
 * An SDK error as one line with its root cause, and the exit code it means: the SDK's own
 * wrappers ("Failed to list workflows", "Workflow Update failed") say nothing an operator can act on.
 */
export function sdkErrorLine(error: unknown): { message: string; exitCode: number; redact: boolean } | null {
  if (error instanceof Error && error.name === 'NamespaceNotFoundError') {
    // The name is the operator's own (--namespace / TEMPORAL_NAMESPACE), not a value to hide.
    const namespace = (error as { namespace?: unknown }).namespace;
    return { message: `no Temporal namespace "${String(namespace)}"; pass --namespace / set TEMPORAL_NAMESPACE`, exitCode: ExitCode.badInput, redact: false };
  }
  if (!(error instanceof Error) || !/^(Failed to |Workflow Update failed|Workflow execution failed|Unexpected error)/.test(error.message)) return null;
  let root = error.message;
  for (let cause = (error as { cause?: unknown }).cause; cause instanceof Error; cause = (cause as { cause?: unknown }).cause) root = cause.message || root;
  const what = error.message.replace(/^Failed to /, 'could not ').replace(/\.$/, '');
  const message = `${what}: ${root.replace(/^\d+ [A-Z_]+: /, '').split('\n')[0]}`;
  const code = grpcCode(error);
  if (code === 14 || code === 4) return { message: `${message}; is Temporal up at the address given (--address / TEMPORAL_ADDRESS)?`, exitCode: ExitCode.unreachable, redact: true };
  if (code === 5 && /namespace/i.test(root)) return { message: `${message}; pass --namespace / set TEMPORAL_NAMESPACE`, exitCode: ExitCode.badInput, redact: true };
  return { message, exitCode: ExitCode.failed, redact: true };
}
