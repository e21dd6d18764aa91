/**
 * What one differential run generates: a source table (key, partition column, typed columns and
 * rows), what a live application does to it during the copy, and the damage done at the gate.
 */
import fc from 'fast-check';
import { COLUMN_TYPE_NAMES, COLUMN_TYPES, valueOf, type ColumnTypeName, type Hazard } from './values';

export type ShardKind = 'key-range' | 'quantile' | 'partition';
export type KeyType = 'int4' | 'int8' | 'text' | 'uuid';
export type PartitionType = 'int4' | 'text' | 'enum';

export interface SourceRow {
  key: string | null;
  part: string | null;
  values: (string | null)[];
}

/** The application, during the backfill, on the old table only except hard deletes (README: Deletes). */
export type WriterOp =
  | { kind: 'insert'; row: SourceRow }
  | { kind: 'update'; pick: number; column: number; value: string | null }
  | { kind: 'delete'; pick: number }
  | { kind: 'rekey'; pick: number; key: string }
  | { kind: 'repartition'; pick: number; part: string | null }
  /** The same number at a larger scale (0.5 to 0.500...). */
  | { kind: 'rescale'; pick: number; column: number };

/** Differences made on purpose at the gate, each of a known category. */
export type DamageOp =
  | { kind: 'drop-target'; pick: number }
  | { kind: 'extra-target'; pick: number; key: string }
  | { kind: 'alter-target'; pick: number; column: number; value: string }
  | { kind: 'delete-source'; pick: number }
  | { kind: 'alter-source'; pick: number; column: number; value: string };

export interface TableSpec {
  keyType: KeyType;
  /** The key is UNIQUE but nullable, and some keys are NULL. */
  nullKeys: boolean;
  partType: PartitionType;
  columns: ColumnTypeName[];
  rows: SourceRow[];
  writer: WriterOp[];
  damage: DamageOp[];
  /** Target in the source's database (JavaScript paths choose; SQL paths are fixed by the path). */
  sameDatabase: boolean;
  /** After the migration has ended, damage the target once more and run `ferry verify` on it. */
  verifyAfterFinish: boolean;
}

export interface SpecOptions {
  shardKind: ShardKind;
  /** Hazards this case leaves out (known defects; see cases.ts). */
  excluded: readonly Hazard[];
  minRows: number;
  maxRows: number;
  /** Key types the path can handle (one-to-many derives target keys from the key's text). */
  keyTypes?: readonly KeyType[];
  /** A hazard the run must exercise: NULL keys always, a jsonb column always. */
  focus?: Hazard | null;
}

export function keyValues(type: KeyType): fc.Arbitrary<string> {
  switch (type) {
    case 'int4':
      return fc.oneof(fc.constantFrom('-2147483648', '2147483647', '0'), fc.integer({ min: -1000, max: 1000 }).map(String), fc.integer().map(String));
    case 'int8':
      return fc.oneof(
        fc.constantFrom('-9223372036854775808', '9223372036854775807', '9007199254740993', '0'),
        fc.bigInt({ min: -500n, max: 500n }).map(String),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
      );
    case 'text':
      return valueOf('text', [], 1000).filter((text): text is string => text !== null);
    case 'uuid':
      return fc.uuid();
  }
}

const KEY_TYPES: Record<ShardKind, KeyType[]> = {
  'key-range': ['int4', 'int8'],
  quantile: ['text', 'uuid'],
  partition: ['int4', 'int8', 'text', 'uuid'],
};

/** True one time in five: a case that is refused by design (NULLs) should not crowd out the rest. */
const rarely = fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, { arbitrary: fc.constant(true), weight: 1 });

export function tableSpec(options: SpecOptions): fc.Arbitrary<TableSpec> {
  const allowed = (hazard: Hazard) => !options.excluded.includes(hazard);
  const keyTypes = KEY_TYPES[options.shardKind].filter((t) => !options.keyTypes || options.keyTypes.includes(t));
  return fc
    .record({
      keyType: fc.constantFrom(...keyTypes),
      partType: fc.constantFrom<PartitionType>('int4', 'text', 'enum'),
      columns: fc
        .shuffledSubarray<ColumnTypeName>([...COLUMN_TYPE_NAMES], { minLength: Math.min(8, COLUMN_TYPE_NAMES.length) })
        .map((columns): ColumnTypeName[] => {
          // A run about a value hazard always has a column of the type that carries it.
          const carrier =
            options.focus === 'numeric-scale-only' ? 'numeric' : options.focus ? COLUMN_TYPE_NAMES.find((t) => COLUMN_TYPES[t].nasty.some((v) => v.hazard === options.focus)) : undefined;
          return carrier && !columns.includes(carrier) ? [...columns, carrier] : columns;
        }),
      nullKeys: options.focus === 'null-key' ? fc.constant(true) : allowed('null-key') ? rarely : fc.constant(false),
      sameDatabase: fc.boolean(),
      verifyAfterFinish: fc.constant(allowed('verify-after-finish')),
    })
    .chain((shape) => {
      const key = keyValues(shape.keyType);
      const partValue = valueOf(shape.partType, [], 1000).filter((p): p is string => p !== null);
      const partitionNulls = allowed('null-partition');
      return fc
        .record({
          partitions: fc.uniqueArray(partValue, { minLength: options.focus === 'partition-change' ? 2 : 1, maxLength: 4 }),
          withNullPartition: options.focus === 'null-partition' ? fc.constant(true) : partitionNulls ? rarely : fc.constant(false),
          keys: fc.uniqueArray(key, { minLength: options.minRows, maxLength: options.maxRows, size: 'max' }),
          nullKeyRows: fc.integer({ min: 1, max: 3 }),
        })
        .chain(({ partitions, withNullPartition, keys, nullKeyRows }) => {
          // A run about partition changes keeps one value out of the first rows: shards are planned
          // from the values present, and the writer, last, moves rows to the one left out.
          const unplanned = options.focus === 'partition-change' ? partitions.slice(-1) : [];
          const planned = options.focus === 'partition-change' ? partitions.slice(0, -1) : partitions;
          const part = withNullPartition ? fc.option(fc.constantFrom(...planned), { freq: 5 }) : fc.constantFrom(...planned);
          const values = fc.tuple(...shape.columns.map((type) => valueOf(type, options.excluded, 6, options.focus ?? null)));
          const row = (k: fc.Arbitrary<string | null>) => fc.record({ key: k, part, values }) as fc.Arbitrary<SourceRow>;
          const allKeys: (string | null)[] = shape.nullKeys ? [...keys, ...Array<null>(nullKeyRows).fill(null)] : keys;
          const pick = fc.nat();
          const column = fc.nat({ max: shape.columns.length - 1 });
          const nonNull = fc.nat({ max: shape.columns.length - 1 }).chain((c) => valueOf(shape.columns[c]!, options.excluded, 1000).filter((value) => value !== null).map((value) => ({ c, value: value! })));
          const writerOp: fc.Arbitrary<WriterOp> = fc.oneof(
            row(key).map((r) => ({ kind: 'insert' as const, row: r })),
            column.chain((c) => valueOf(shape.columns[c]!, options.excluded).map((value) => ({ c, value }))).chain(({ c, value }) =>
              pick.map((p) => ({ kind: 'update' as const, pick: p, column: c, value })),
            ),
            ...(allowed('source-row-gone')
              ? [pick.map((p) => ({ kind: 'delete' as const, pick: p })), fc.tuple(pick, key).map(([p, k]) => ({ kind: 'rekey' as const, pick: p, key: k }))]
              : []),
            ...(options.shardKind === 'partition' && allowed('partition-change')
              ? [fc.tuple(pick, part).map(([p, v]) => ({ kind: 'repartition' as const, pick: p, part: v }))]
              : []),
          );
          const damageOp: fc.Arbitrary<DamageOp> = fc.oneof(
            pick.map((p) => ({ kind: 'drop-target' as const, pick: p })),
            fc.tuple(pick, nonNull).map(([p, { c, value }]) => ({ kind: 'alter-target' as const, pick: p, column: c, value })),
            ...(allowed('source-row-gone')
              ? [fc.tuple(pick, key).map(([p, k]) => ({ kind: 'extra-target' as const, pick: p, key: k })), pick.map((p) => ({ kind: 'delete-source' as const, pick: p }))]
              : []),
            fc.tuple(pick, nonNull).map(([p, { c, value }]) => ({ kind: 'alter-source' as const, pick: p, column: c, value })),
          );
          const rescaled = options.focus === 'numeric-scale-only';
          // A run about rows leaving the source always leaves one there at the gate.
          const gone: fc.Arbitrary<DamageOp[]> =
            options.focus === 'source-row-gone' ? pick.map((p) => [{ kind: 'delete-source' as const, pick: p }]) : fc.constant([]);
          return fc.record({
            rows: fc.tuple(...allKeys.map((k) => row(fc.constant(k)))),
            writer: fc
              .tuple(fc.array(writerOp, { minLength: 5, maxLength: 25 }), fc.array(pick, { maxLength: unplanned.length * 3 }), fc.array(pick, { maxLength: rescaled ? 8 : 0 }))
              .map(([ops, moves, rescales]) => [
                ...ops,
                ...rescales.map((p) => ({ kind: 'rescale' as const, pick: p, column: shape.columns.indexOf('numeric') })),
                ...moves.map((p) => ({ kind: 'repartition' as const, pick: p, part: unplanned[0]! })),
              ]),
            damage: fc.tuple(gone, fc.array(damageOp, { minLength: 1, maxLength: 8 })).map(([a, b]) => [...a, ...b]),
          });
        })
        .map(({ rows, writer, damage }) => ({ ...shape, rows, writer, damage }));
    });
}

export function sqlTypeOf(type: ColumnTypeName): string {
  return COLUMN_TYPES[type].sql;
}
