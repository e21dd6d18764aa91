/** `ferry list`'s table: one line a migration, newest first, with what its worker could say. */
import { formatDuration } from '../lib/progress';
import type { MigrationListing } from '../operator';
import { formatCount } from './render';

function progressText(listing: MigrationListing): string {
  if (!listing.progressKnown || listing.rowsRead === null) return listing.runState === 'running' ? '? (no worker)' : '-';
  const percent = listing.estimatedRows ? ` ${Math.min(100, (100 * listing.rowsRead) / Math.max(1, listing.estimatedRows)).toFixed(0)}%` : '';
  return `${formatCount(listing.rowsRead)}/~${formatCount(listing.estimatedRows)}${percent}`;
}

function phaseText(listing: MigrationListing): string {
  // A run that failed, or was terminated, never set its phase to say so.
  if (listing.runState !== 'running' && listing.runState !== 'completed') return listing.runState;
  return `${listing.phase ?? '?'}${listing.paused ? ' (paused)' : ''}`;
}

/** The listing as a table with a header, newest first, ages relative to `now`. */
export function formatListingTable(listings: readonly MigrationListing[], now = Date.now()): string {
  const header = ['MIGRATION', 'PLAN', 'TARGET', 'PHASE', 'PROGRESS', 'AGE'];
  const rows = listings.map((l) => [
    l.migrationId,
    l.plan ?? '?',
    l.target ?? '?',
    phaseText(l),
    progressText(l),
    formatDuration(Math.max(0, (now - Date.parse(l.startedAt)) / 1000)),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  const lines = [line(header), ...rows.map(line)];
  if (listings.some((l) => l.runState === 'running' && !l.progressKnown)) {
    lines.push('', 'progress "?": no Ferry worker answered for that migration; phase is as the workflow last recorded it');
  }
  return lines.join('\n');
}
