/** Error helpers shared by workflows, activities and the CLI. */

/** The innermost message of a failure chain: a child or activity failure wraps the real error. */
export function rootMessage(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  for (let cause = (error as { cause?: unknown }).cause; cause; cause = (cause as { cause?: unknown }).cause) {
    message = (cause as Error).message || message;
  }
  return message;
}
