/**
 * The boundary between activities and Temporal: every error an activity throws is redacted
 * (lib/errors.ts) before the SDK logs it or records it in a workflow history, whatever code
 * threw it. The error keeps its class, type, code and retry policy; only its text changes.
 */
import type { ActivityInboundCallsInterceptor, ActivityInterceptorsFactory, ActivityExecuteInput, Next } from '@temporalio/worker';
import { isRaisedError, RAISED_MESSAGE_WITHHELD, redactMessage } from '../lib/errors';

/** Redacts `error` and its causes in place (message and stack) and returns it. */
export function redactInPlace<E>(error: E, depth = 0): E {
  if (!(error instanceof Error) || depth > 8) return error;
  const original = error.message;
  const redacted = isRaisedError(error) ? RAISED_MESSAGE_WITHHELD : redactMessage(original);
  if (redacted !== original) {
    error.message = redacted;
    if (typeof error.stack === 'string') {
      error.stack = error.stack.includes(original) ? error.stack.replace(original, redacted) : `${error.name}: ${redacted}`;
    }
  }
  // pg's DatabaseError carries the row's values again in these fields.
  for (const field of ['detail', 'where', 'hint', 'internalQuery'] as const) {
    if (field in error) (error as unknown as Record<string, unknown>)[field] = undefined;
  }
  redactInPlace((error as { cause?: unknown }).cause, depth + 1);
  return error;
}

class RedactingInbound implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (error) {
      throw redactInPlace(error);
    }
  }
}

export const redactActivityErrors: ActivityInterceptorsFactory = () => ({ inbound: new RedactingInbound() });
