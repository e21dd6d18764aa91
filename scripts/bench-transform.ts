/**
 * The benchmark's JavaScript transform: the twin of the SQL transform in scripts/bench/dataset.ts
 * (it must produce the same target values). It accepts values as Postgres's text or as pg's
 * parsed types, and passes the timestamp through untouched, so that microseconds survive if the
 * copier hands it text.
 */

type SourceValue = string | number | boolean | Date | Record<string, unknown> | null;
type SourceRow = Record<string, SourceValue>;

function cents(amount: SourceValue): string {
  if (typeof amount === 'number') return String(Math.round(amount * 100));
  const [whole = '0', fraction = ''] = String(amount).split('.');
  return String(BigInt(whole + fraction.padEnd(2, '0').slice(0, 2)));
}

function jsonOf(value: SourceValue): Record<string, unknown> {
  return typeof value === 'string' ? (JSON.parse(value) as Record<string, unknown>) : (value as Record<string, unknown>);
}

export default function transform(row: SourceRow): Record<string, unknown> {
  const payload = jsonOf(row.payload ?? null);
  return {
    id: row.id,
    display_name: String(row.name).toUpperCase(),
    created_at: row.created_at,
    payload: { ...payload, schema: 2 },
    amount_cents: cents(row.amount ?? null),
    country: payload.country,
  };
}
