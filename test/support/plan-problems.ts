/** A plan's problems as "path: message" lines, the way `ferry` prints them; empty for a valid plan. */
import { InvalidPlanError, validatePlan } from '../../lib/plan';

export function planProblems(plan: unknown): string[] {
  try {
    validatePlan(plan);
  } catch (error) {
    if (error instanceof InvalidPlanError) return error.problems.map((p) => `${p.path}: ${p.message}`);
    throw error;
  }
  return [];
}
