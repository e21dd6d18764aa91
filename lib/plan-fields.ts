/** Field kinds that several parts of a plan share: a Postgres name, and SQL text from the plan. */
import { z } from 'zod';
import { sqlFragmentProblem } from './sql-fragment';

/** Postgres truncates identifiers longer than this, which would silently change their meaning. */
const MAX_IDENTIFIER_BYTES = 63;

export const identifier = z
  .string()
  .min(1, 'must not be empty')
  .refine((name) => new TextEncoder().encode(name).length <= MAX_IDENTIFIER_BYTES, {
    message: `must be at most ${MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)`,
  })
  .refine((name) => !name.includes('\0'), { message: 'must not contain a NUL character' });

/** SQL from a plan runs inside Ferry's statements: one expression, nothing that could end them. */
export const safeSql = (what: string) =>
  z
    .string()
    .trim()
    .min(1, what)
    .superRefine((text, ctx) => {
      const problem = sqlFragmentProblem(text);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });
