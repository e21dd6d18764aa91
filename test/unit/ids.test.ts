/** The ids and names shared across boundaries: what one side builds, the other reads back. */
import { describe, expect, it } from 'vitest';
import { tableKey as clientTableKey } from '../../client/index';
import {
  checkShardWorkflowId,
  checkWorkflowId,
  migrationIdOf,
  migrationIdProblem,
  newMigrationId,
  shardIndexOf,
  shardWorkflowId,
  tableKey,
  verifyPassPrefix,
  verifyShardWorkflowId,
} from '../../lib/ids';
import { migrationFields } from '../../workers/logging';

const migrationId = newMigrationId('orders-v2', new Date('2026-03-04T05:06:07.089Z'));

describe('workflow ids', () => {
  it('name a migration by plan and start time, sortable', () => {
    expect(migrationId).toBe('ferry/orders-v2/20260304-050607.089Z');
  });

  it('read back the migration and the shard from every id below a migration', () => {
    const ids = [
      shardWorkflowId(migrationId, 7),
      verifyShardWorkflowId(migrationId, 2, 7),
      verifyShardWorkflowId(migrationId, 2, 7, true),
      checkShardWorkflowId(checkWorkflowId(migrationId, 1), 3, 7),
    ];
    expect(ids).toEqual([
      `${migrationId}/shard-7`,
      `${migrationId}/verify-2/shard-7`,
      `${migrationId}/verify-2-sample/shard-7`,
      `${migrationId}/check-1/pass-3/shard-7`,
    ]);
    for (const id of ids) {
      expect(shardIndexOf(id)).toBe(7);
      expect(migrationIdOf(id)).toBe(migrationId);
      expect(migrationFields(id)).toEqual({ migration: migrationId, shard: 7 });
    }
    expect(shardIndexOf(migrationId)).toBeNull();
    expect(migrationIdOf('someone-else/1')).toBeNull();
    expect(migrationFields(migrationId)).toEqual({ migration: migrationId });
  });

  it('let status count the shards of a pass by its prefix', () => {
    expect(verifyShardWorkflowId(migrationId, 4, 0).startsWith(`${verifyPassPrefix(migrationId, 4)}/`)).toBe(true);
  });
});

describe('a migration id an operator chooses', () => {
  it("is taken when Ferry reads it back as one migration's id", () => {
    for (const id of [migrationId, 'ferry/orders-v2/first-try', 'bare_1234', 'team.orders-2026']) expect(migrationIdProblem(id), id).toBeNull();
  });

  it('is refused, with the reason, when it would be read as another or as a child', () => {
    expect(migrationIdProblem('')).toBe('is empty');
    expect(migrationIdProblem('ferry/x/my run')).toBe('holds a space or a control character');
    expect(migrationIdProblem('ferry/x//y')).toBe('holds an empty part between slashes');
    expect(migrationIdProblem('ferry/x/y/z')).toMatch(/three parts/);
    expect(migrationIdProblem(`${migrationId}/shard-3`)).toMatch(/three parts/);
    expect(migrationIdProblem('mine/shard-3')).toMatch(/shard, check or verification/);
    expect(migrationIdProblem('x'.repeat(201))).toMatch(/at most 200/);
  });
});

describe('the table key', () => {
  it('is schema.table, unquoted, and the client library builds the same one', () => {
    expect(tableKey({ schema: 'public', table: 'Orders' })).toBe('public.Orders');
    expect(clientTableKey({ schema: 'app', table: 'items' })).toBe(tableKey({ schema: 'app', table: 'items' }));
  });
});
