/** The plan's JSON Schema stays generated from the plan schema, and every example plan passes it. */
import Ajv2020 from 'ajv/dist/2020';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { PLAN_JSON_SCHEMA_PATH, planJsonSchemaText } from '../../lib/plan-json-schema';
import { parsePlan } from '../../lib/plan';

const root = path.join(__dirname, '..', '..');
const committed = readFileSync(path.join(root, PLAN_JSON_SCHEMA_PATH), 'utf8');
const examplesDir = path.join(root, 'examples');
const examples = readdirSync(examplesDir).filter((f) => /\.ya?ml$/.test(f));
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(JSON.parse(committed) as object);

describe('the plan JSON Schema', () => {
  it('is the one the plan schema generates (run `npm run plan-schema` after changing lib/plan.ts)', () => {
    expect(committed).toBe(planJsonSchemaText());
  });

  it.each(examples)('accepts examples/%s, which points editors at it and which Ferry accepts too', (file) => {
    const text = readFileSync(path.join(examplesDir, file), 'utf8');
    expect(text.split('\n')[0]).toBe(`# yaml-language-server: $schema=../${PLAN_JSON_SCHEMA_PATH}`);
    expect(validate(parse(text)), JSON.stringify(validate.errors)).toBe(true);
    expect(() => parsePlan(text, file)).not.toThrow();
  });

  it('refuses what Ferry refuses: an unknown key, a missing table, a batch size out of bounds', () => {
    const plan = parse(readFileSync(path.join(examplesDir, examples[0]!), 'utf8')) as Record<string, Record<string, unknown>>;
    const bad = [
      { ...plan, colour: 'red' },
      { ...plan, source: { ...plan.source, table: undefined } },
      { ...plan, throttle: { ...plan.throttle, batchSize: 5 } },
    ].map((p) => JSON.parse(JSON.stringify(p)) as unknown);
    for (const candidate of bad) expect(validate(candidate)).toBe(false);
  });
});
