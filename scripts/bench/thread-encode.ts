/**
 * The JavaScript transform's cost on its thread, apart from Postgres and the event loop: the
 * bench's rows (as dataset.ts makes them) as COPY text, through the bench's transform and the
 * thread's encode, in this process, round after round. `--cpu-prof` on node shows where a row's
 * microseconds go (`node --cpu-prof --import tsx scripts/bench/thread-encode.ts`). It ends with
 * the floor under any JavaScript transform of these rows: V8's own JSON.parse of each payload and
 * JSON.stringify of the object the transform returns for it, with nothing else.
 *
 *   npx tsx scripts/bench/thread-encode.ts [rows]
 */
import path from 'node:path';
import { encode } from '../../activities/transform/transform-thread';
import type { ColumnKinds } from '../../activities/transform/exact-values';
import { targetColumns } from './dataset';

const ROUNDS = 5;
/** About the parts the copy hands a thread (PART_BYTES in transform-threads.ts). */
const ROWS_A_PART = 1000;
const COUNTRIES = ['NL', 'DE', 'FR', 'US', 'JP', 'BR', 'IN'];

/** Row i of the bench's source table as COPY text: the key, then id, name, created_at, payload, amount. */
function sourceLine(i: number): string {
  const payload = {
    email: `user${i}@example.com`,
    country: COUNTRIES[i % 7],
    tags: [`tag-${i % 13}`, `tag-${i % 17}`, `plan-${['free', 'pro', 'team'][i % 3]}`],
    score: ((i * 7919) % 10000) / 100,
    address: { street: `${i % 500} Main Street`, city: `City ${i % 1000}`, zip: String(i % 100000).padStart(5, '0') },
    preferences: { newsletter: i % 2 === 0, theme: ['dark', 'light'][i % 2] },
  };
  // jsonb's text: a space after each comma and colon.
  const jsonb = JSON.stringify(payload).replace(/,"/g, ', "').replace(/":/g, '": ');
  return `${i}\t${i}\tada lovelace\t2020-01-01 00:00:00.123456+00\t${jsonb}\t${(((i * 104729) % 10000000) / 100).toFixed(2)}\n`;
}

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 200_000);
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (let first = 1; first <= rows; first += ROWS_A_PART) {
    let text = '';
    for (let i = first; i < Math.min(first + ROWS_A_PART, rows + 1); i++) text += sourceLine(i);
    parts.push(encoder.encode(text));
  }
  const fields = [
    { name: 'id', oid: 20 },
    { name: 'name', oid: 25 },
    { name: 'created_at', oid: 1184 },
    { name: 'payload', oid: 3802 },
    { name: 'amount', oid: 1700 },
  ];
  const columns = targetColumns.map((c) => c.name);
  const kinds: ColumnKinds = { id: 'integer', display_name: 'other', created_at: 'other', payload: 'json', amount_cents: 'integer', country: 'other' };
  const module = path.join(__dirname, '..', 'bench-transform.ts');
  console.log(`${rows.toLocaleString('en-US')} rows in ${parts.length} parts, ${ROUNDS} rounds, one thread's work in this process:`);
  for (let round = 1; round <= ROUNDS; round++) {
    const began = process.hrtime.bigint();
    let bytes = 0;
    for (const source of parts) {
      const result = await encode({ id: round, kind: 'encode', module, fields, source, columns, kinds });
      if (result.failed.length) throw new Error(`row ${result.failed[0]!.key} failed: ${result.failed[0]!.error}`);
      bytes += result.copyText.length;
    }
    const microsARow = Number(process.hrtime.bigint() - began) / rows / 1000;
    console.log(`  round ${round}: ${microsARow.toFixed(2)} µs a row (${(bytes / rows).toFixed(0)} bytes of COPY text a row)`);
  }
  const payloads = Array.from({ length: rows }, (_, i) => sourceLine(i + 1).split('\t')[4]!);
  console.log(`the same payloads through V8's JSON alone (the floor of any JavaScript transform that reads and writes them):`);
  for (let round = 1; round <= ROUNDS; round++) {
    const began = process.hrtime.bigint();
    let bytes = 0;
    for (const text of payloads) bytes += JSON.stringify({ ...(JSON.parse(text) as object), schema: 2 }).length;
    const microsARow = Number(process.hrtime.bigint() - began) / rows / 1000;
    console.log(`  round ${round}: ${microsARow.toFixed(2)} µs a row (${(bytes / rows).toFixed(0)} bytes of JSON a row)`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
