/** The plan's JSON Schema, generated from the plan schema itself, for editors and other tools. */
import { z } from 'zod';
import { planSchema } from './plan';

/** Where the committed schema lives, relative to the package root; plans point at it. */
export const PLAN_JSON_SCHEMA_PATH = 'schema/plan.schema.json';

/**
 * The schema of a plan as a person writes it (defaults optional). Cross-field rules (the
 * transform must produce the target key, and the like) exist only in Ferry's own validation.
 */
export function planJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(planSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' });
  return {
    ...generated,
    title: 'Ferry migration plan',
    description: 'A Ferry migration plan: what to copy from where to where, and how. `ferry start plan.yaml` checks every rule.',
  };
}

export function planJsonSchemaText(): string {
  return `${JSON.stringify(planJsonSchema(), null, 2)}\n`;
}
