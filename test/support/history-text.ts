/** Every piece of text in workflow histories as Temporal stores them, for tests that look for leaks. */
import type { Client } from '@temporalio/client';

/**
 * The strings and bytes (as UTF-8) anywhere in `value`, one a line. Walks the objects itself:
 * JSON.stringify would call the protobuf objects' toJSON, which turns bytes into base64 and
 * so hides exactly what a leak test looks for.
 */
export function textOf(value: unknown, seen = new Set<unknown>()): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (typeof value !== 'object' || seen.has(value)) return '';
  seen.add(value);
  const parts: string[] = [];
  for (const [key, item] of Object.entries(value)) parts.push(key, textOf(item, seen));
  return parts.filter(Boolean).join('\n');
}

/** The stored histories of every run whose workflow id starts with `prefix` (children included). */
export async function historiesText(client: Client, prefix: string): Promise<string> {
  const texts: string[] = [];
  for await (const execution of client.workflow.list({ query: `WorkflowId STARTS_WITH '${prefix}'` })) {
    texts.push(textOf(await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory()));
  }
  return texts.join('\n');
}
