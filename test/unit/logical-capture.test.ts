/** Logical capture's checks, fed the settings a server reports, and the names its slot and publication take. */
import { describe, expect, it } from 'vitest';
import { logicalCaptureProblems, walRetentionCheck, type LogicalCaptureSettings } from '../../activities/capture/logical-setup';
import { LOGICAL_CAPTURE_PREFIX, logicalCaptureName } from '../../lib/ids';

const ready: LogicalCaptureSettings = {
  walLevel: 'logical',
  maxSlots: 10,
  slotsUsed: 2,
  slotExists: false,
  publicationExists: false,
  mayReplicate: true,
  role: 'ferry',
  tableExists: true,
  ownsTable: true,
  owner: 'ferry',
  mayCreate: true,
  replicaIdentity: 'd',
  identityColumns: ['id'],
};
const source = { schema: 'public', table: 'accounts' };
const problems = (changes: Partial<LogicalCaptureSettings>) => logicalCaptureProblems({ ...ready, ...changes }, source, 'id');

describe('the checks before logical capture', () => {
  it('pass on a server set for it', () => {
    expect(problems({})).toEqual([]);
    expect(problems({ replicaIdentity: 'f', identityColumns: [] })).toEqual([]);
    expect(problems({ slotsUsed: 10, slotExists: true })).toEqual([]);
  });

  it('refuse wal_level replica, naming the setting and its fix', () => {
    expect(problems({ walLevel: 'replica' })).toEqual([
      { name: 'wal_level', detail: 'wal_level is replica on the source; logical capture needs wal_level = logical', fix: 'ALTER SYSTEM SET wal_level = logical; -- then restart the server' },
    ]);
  });

  it('refuse a server with no free slot, a role without REPLICATION, and a key the replica identity does not cover', () => {
    expect(problems({ slotsUsed: 10 }).map((p) => p.detail)).toEqual(['no free replication slot: 10 of max_replication_slots = 10 are in use']);
    expect(problems({ mayReplicate: false }).map((p) => p.fix)).toEqual(['ALTER ROLE "ferry" REPLICATION;']);
    expect(problems({ identityColumns: ['other'] }).map((p) => p.detail)).toEqual([
      'public.accounts has a replica identity of (other), which does not cover the key id: the old key of an update or a delete would not be in the WAL',
    ]);
    expect(problems({ replicaIdentity: 'n', identityColumns: [] })[0]!.detail).toMatch(/REPLICA IDENTITY NOTHING.*updates and deletes would fail/);
    expect(problems({ walLevel: 'minimal', mayReplicate: false, ownsTable: false, owner: 'app' }).map((p) => p.name)).toEqual(['wal_level', 'REPLICATION privilege', 'publication']);
  });
});

describe('the WAL a slot may keep', () => {
  it('warns without a cap, naming the fix, and is ok with one', () => {
    expect(walRetentionCheck('-1')).toMatchObject({ status: 'warn', fix: expect.stringContaining('max_slot_wal_keep_size') });
    expect(walRetentionCheck('20GB')).toMatchObject({ status: 'ok', detail: 'max_slot_wal_keep_size = 20GB: a slot never keeps more' });
  });
});

describe('the slot and publication name', () => {
  it('comes from the migration id alone, fits a slot name, and says it is Ferry\'s', () => {
    const name = logicalCaptureName('ferry/orders-v2/20260304-050607.089Z');
    expect(name).toBe(logicalCaptureName('ferry/orders-v2/20260304-050607.089Z'));
    expect(name).not.toBe(logicalCaptureName('ferry/orders-v2/20260304-050607.090Z'));
    expect(name).toMatch(/^[a-z0-9_]{1,63}$/);
    expect(name.startsWith(LOGICAL_CAPTURE_PREFIX)).toBe(true);
    expect(logicalCaptureName(`ferry/${'x'.repeat(200)}`).length).toBeLessThanOrEqual(63);
  });
});
