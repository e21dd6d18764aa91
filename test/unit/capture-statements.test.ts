/** The SQL of trigger capture as built: names from the migration id alone, and nothing from a plan that could run. */
import { describe, expect, it } from 'vitest';
import { captureObjectName, changedKeysInRangeSql, createCaptureFunctionSql, createTriggerSql, roundKeysSql } from '../../activities/capture/statements';
import { captureLeftOnSource, describeCapture, newCaptureStatus } from '../../lib/capture';
import { logicalCaptureName } from '../../lib/ids';

describe('capture statements', () => {
  it('name a migration\'s trigger from its id: the same every time, distinct per id, within 63 bytes', () => {
    const id = 'ferry/split-full-name/20261201-114808.913Z';
    expect(captureObjectName(id)).toBe(captureObjectName(id));
    expect(captureObjectName(id)).toMatch(/^ferry_capture_ferry_split_full_name_20261201_[0-9a-f]{12}$/);
    expect(captureObjectName(`${id}x`)).not.toBe(captureObjectName(id));
    expect(captureObjectName('é'.repeat(200))).toMatch(/^ferry_capture_[0-9a-f]{12}$/);
    expect(Buffer.byteLength(captureObjectName('x'.repeat(300)))).toBeLessThanOrEqual(63);
  });

  it('quote the key column and the migration id, so neither can end the function', () => {
    const body = createCaptureFunctionSql(`it's; DROP TABLE x`, 'we"ird');
    expect(body).toContain(`VALUES ('it''s; DROP TABLE x', (OLD."we""ird")::text)`);
    expect(body).toContain('SECURITY DEFINER');
    // A workflow id is anyone's text: one holding the body's dollar quote gets another tag.
    const id = 'm$ferry$; DROP TABLE x; SELECT $ferry_$';
    const quoted = createCaptureFunctionSql(id, 'id');
    const tag = /AS (\$[a-z_]+\$)/.exec(quoted)![1]!;
    expect(id).not.toContain(tag);
    expect(quoted.split(tag)).toHaveLength(3);
    expect(quoted).toContain(`VALUES ('${id}', (OLD."id")::text)`);
    expect(createTriggerSql('m', { schema: 'public', table: 'a"b' })).toMatch(/ON "public"\."a""b" FOR EACH ROW EXECUTE FUNCTION ferry\."ferry_capture_m_[0-9a-f]{12}"\(\)$/);
  });

  it('read the log by snapshot, with every value a parameter', () => {
    const round = roundKeysSql('m', 'integer', { appliedThrough: '10:20:15', round: '30:30:', afterKey: '7' }, 500);
    expect(round.values).toEqual(['m', '10:20:15', '10:20:15', '10:20:15', '30:30:', '30:30:', '7', '7', 500]);
    expect(round.text).toContain('NOT pg_visible_in_snapshot(l.xid, $4::pg_snapshot)');
    expect(round.text).toContain('pg_visible_in_snapshot(l.xid, $6::pg_snapshot)');
    expect(round.text).toMatch(/ORDER BY l\.key::integer LIMIT \$9$/);
    const chunk = changedKeysInRangeSql('m', 'bigint', '5:9:6', { after: '100', upTo: null });
    expect(chunk.values).toEqual(['m', '5:9:6', '5:9:6', '5:9:6', '100']);
    expect(chunk.text).toContain('l.key::bigint > ($5::text)::bigint');
  });

  it('say how far the change apply is behind', () => {
    const status = { ...newCaptureStatus(), installedAt: '2026-12-01T12:00:00Z', lag: { changesWaiting: 3, oldestSeconds: 1.25 }, keysApplied: 10, rowsWritten: 9, rowsDeleted: 1 };
    expect(describeCapture(status)).toBe('trigger since 2026-12-01T12:00:00Z: 3 changes waiting, oldest 1.3 s; 10 changed keys applied (9 rows written, 1 deleted)');
    expect(describeCapture({ ...status, removedAt: '2026-12-01T12:05:00Z' })).toBe('trigger removed at 2026-12-01T12:05:00Z; 10 changed keys applied (9 rows written, 1 deleted)');
  });

  it('say how to remove by hand a capture a failed migration could not remove, with its names', () => {
    const id = "ferry/o'brien/20261201-114808.913Z";
    const installed = { ...newCaptureStatus(), installedAt: '2026-12-01T12:00:00Z', functionName: captureObjectName(id) };
    expect(captureLeftOnSource(installed, id)).toBe(
      'its trigger still logs every write to the source table and refuses a TRUNCATE of it; remove it by hand on the source: ' +
        `DROP FUNCTION IF EXISTS ferry.${captureObjectName(id)}() CASCADE; DELETE FROM ferry.change_log WHERE migration_id = 'ferry/o''brien/20261201-114808.913Z'`,
    );
    const slot = logicalCaptureName(id);
    expect(captureLeftOnSource({ ...installed, mode: 'logical' }, id)).toMatch(
      new RegExp(`^its replication slot ${slot} holds the source's WAL for ever; remove it by hand on the source: SELECT pg_drop_replication_slot\\('${slot}'\\); DROP PUBLICATION IF EXISTS ${slot}; DROP FUNCTION IF EXISTS ferry\\.${captureObjectName(id)}\\(\\) CASCADE; DELETE FROM ferry\\.change_log`),
    );
  });
});
