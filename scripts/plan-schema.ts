/** Writes schema/plan.schema.json from the plan schema (npm run plan-schema); a test keeps it current. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { PLAN_JSON_SCHEMA_PATH, planJsonSchemaText } from '../lib/plan-json-schema';

const file = path.join(__dirname, '..', PLAN_JSON_SCHEMA_PATH);
writeFileSync(file, planJsonSchemaText());
console.log(`wrote ${path.relative(process.cwd(), file)}`);
