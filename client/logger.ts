/** Where the client library's few log lines go. They carry names, keys and counts, never row values. */

export interface ClientLogger {
  warn(message: string, details: Record<string, unknown>): void;
}

/** One JSON line on stderr per event. */
export const consoleLogger: ClientLogger = {
  warn(message, details) {
    console.warn(JSON.stringify({ level: 'warn', source: 'ferry-client', message, ...details }));
  },
};

/** A short description of an error without its message, which may quote row values. */
export function describeError(error: unknown): { errorName: string; code?: string } {
  const name = error instanceof Error ? error.name : typeof error;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? { errorName: name, code } : { errorName: name };
}
