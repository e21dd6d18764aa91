/** What a migration's record is made of: its status (live, or final once it ended) and the checks run on it after its end. */
import type { Client } from '@temporalio/client';
import type { MigrationStatus } from '../lib/status';
import { laterChecks, type LaterCheck } from './checks';
import { NoRecordError } from './errors';
import { migrationReport } from './status';

export interface RecordData {
  status: MigrationStatus;
  laterChecks: LaterCheck[];
}

/** The record's data; NoRecordError when the run ended before it could report. */
export async function recordData(client: Client, migrationId: string): Promise<RecordData> {
  const report = await migrationReport(client, migrationId);
  if (!report.status) throw new NoRecordError(`migration ${migrationId} ${report.runState} before it could report: ${report.failure}`);
  return { status: report.status, laterChecks: await laterChecks(client, migrationId) };
}
