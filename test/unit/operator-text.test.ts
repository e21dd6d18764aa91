/**
 * Text an operator gave (names, reasons, notes) prints on the line it belongs to, its control
 * characters shown escaped: a reason holding a newline must not print a line that reads as
 * Ferry's own (a forged approval), nor a terminal escape hide what follows.
 */
import { describe, expect, it } from 'vitest';
import { auditMarkdown } from '../../cli/audit-report';
import { pauseStory, phaseStory } from '../../cli/phase-story';
import { printable } from '../../cli/printable';
import { formatFailures, formatStatus } from '../../cli/render';
import { migrationRecord, recordMarkdown } from '../../cli/report';
import { newMigrationStatus, type MigrationStatus } from '../../lib/status';

const FORGED = '2025-01-01T00:00:00.000Z approve by alice: gate cutover-reads approved';
const REASON = `checking\n  ${FORGED}`;

function status(overrides: Partial<MigrationStatus> = {}): MigrationStatus {
  return {
    ...newMigrationStatus({
      migrationId: 'ferry/items/2025-01-01T00:00:00Z',
      planName: 'items',
      execute: true,
      startedAt: '2025-01-01T00:00:00.000Z',
      throttle: { rowsPerSecond: null, batchSize: 1000, concurrency: 1 },
    }),
    phase: 'backfilling',
    ...overrides,
  };
}

/** No line starts with the forged text, or holds a control character. */
function expectNoForgedLine(text: string): void {
  for (const line of text.split('\n')) {
    expect(line.trimStart().startsWith(FORGED), line).toBe(false);
    expect([...line].filter((c) => c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f)), line).toEqual([]);
  }
}

describe('printable', () => {
  it('shows control characters escaped: C0, DEL and C1', () => {
    expect(printable('a\nb\rc\td')).toBe('a\\nb\\rc\\td');
    expect(printable('carol\x1b[8m')).toBe('carol\\u001b[8m');
    expect(printable('\x00\x07\x7f\x85\x9b')).toBe('\\u0000\\u0007\\u007f\\u0085\\u009b');
  });

  it('leaves every other character as it is', () => {
    for (const text of ['', 'alice (as alice@host)', 'Zoë — 東京 🚀', 'C:\\temp\\n is a path', '\u00a0\u00ff\u2027\u2030']) expect(printable(text)).toBe(text);
  });

  it('shows escaped what a reader cannot see or what turns the text after it around', () => {
    // "alice" then a right-to-left override: what follows would read backwards.
    expect(printable('alice\u202e (as bob@h)')).toBe('alice\\u202e (as bob@h)');
    expect(printable('ali\u200bce\u2028x\ufeff\u2066')).toBe('ali\\u200bce\\u2028x\\ufeff\\u2066');
  });
});

describe('operator text in ferry status', () => {
  it('prints a pause reason holding a newline on one line, escaped, in the phase and in the decisions', () => {
    const paused = status({
      paused: { since: '2025-01-01T00:01:00.000Z', by: 'bob\r', reason: REASON },
      events: [
        { at: '2025-01-01T00:01:00.000Z', kind: 'pause', by: 'bob\r', detail: REASON },
        { at: '2025-01-01T00:02:00.000Z', kind: 'throttle', by: 'carol\x1b[8m', detail: `rowsPerSecond 1 -> 2 (\x1b[2K${FORGED})` },
      ],
    });
    const text = formatStatus({ migrationId: paused.migrationId, runState: 'running', status: paused, failure: null });
    expectNoForgedLine(text);
    const lines = text.split('\n');
    expect(lines.find((line) => line.startsWith('phase '))).toContain(`by bob\\r: checking\\n  ${FORGED} (since`);
    expect(lines).toContain(`  2025-01-01T00:01:00.000Z pause by bob\\r: checking\\n  ${FORGED}`);
    expect(lines).toContain(`  2025-01-01T00:02:00.000Z throttle by carol\\u001b[8m: rowsPerSecond 1 -> 2 (\\u001b[2K${FORGED})`);
    expect(pauseStory(paused)).not.toContain('\n');
    // The command it names runs as printed: with the migration's id.
    expect(pauseStory(paused)).toContain(`\`ferry resume ${paused.migrationId}\` copies again`);
    expect(phaseStory(paused)).not.toContain('\n');
  });

  it('prints an abort by and reason escaped, in the ABORTED line and the phase story', () => {
    const aborted = status({
      phase: 'aborted',
      abort: { at: '2025-01-01T00:03:00.000Z', by: 'dave\n', reason: REASON, phaseReached: 'backfilling', flagsNote: 'flags unchanged' },
    });
    const text = formatStatus({ migrationId: aborted.migrationId, runState: 'completed', status: aborted, failure: null });
    expectNoForgedLine(text);
    expect(text).toContain(`ABORTED   by dave\\n in backfilling: checking\\n  ${FORGED}; flags unchanged`);
    expect(phaseStory(aborted)).toBe(`aborted by dave\\n: checking\\n  ${FORGED}`);
  });
});

describe('operator text in ferry report', () => {
  it('keeps each decision in its row and the abort on its line, whatever they hold', () => {
    const aborted = status({
      phase: 'aborted',
      events: [{ at: '2025-01-01T00:01:00.000Z', kind: 'abort', by: 'eve|\x1b[8m', detail: `abort requested (${REASON}\r| x |)` }],
      abort: { at: '2025-01-01T00:03:00.000Z', by: 'eve\x9b', reason: REASON, phaseReached: 'backfilling', flagsNote: 'flags unchanged' },
    });
    const markdown = recordMarkdown(migrationRecord(aborted));
    expectNoForgedLine(markdown);
    expect(markdown).toContain(`| 2025-01-01T00:01:00.000Z | abort | eve\\|\\u001b[8m | abort requested (checking\\n  ${FORGED}\\r\\| x \\|) |`);
    expect(markdown).toContain(`Aborted by eve\\u009b at 2025-01-01T00:03:00.000Z in phase backfilling: checking\\n  ${FORGED}.`);
    expect(markdown).toContain(`- the migration was aborted (checking\\n  ${FORGED}): flags unchanged`);

    const audit = auditMarkdown({
      migrationId: aborted.migrationId,
      planName: 'items',
      entries: [
        { entry: 'start', at: '2025-01-01T00:00:00.000Z', kind: 'start', by: 'eve\n', detail: REASON },
        { entry: 'event 1', at: '2025-01-01T00:01:00.000Z', kind: 'pause', by: 'eve', detail: REASON },
        { entry: 'end', at: '2025-01-01T00:03:00.000Z', kind: 'aborted', by: null, detail: REASON },
      ],
    });
    expectNoForgedLine(audit);
    expect(audit).toContain(`- started 2025-01-01T00:00:00.000Z by eve\\n: checking\\n  ${FORGED}`);
    expect(audit).toContain(`| 2025-01-01T00:01:00.000Z | pause | eve | checking\\n  ${FORGED} |`);
  });
});

describe('counts in words', () => {
  it('say one row, not one rows', () => {
    const one = status({ rowsFailed: 1, unresolvedFailures: 1 });
    expect(formatFailures(one).split('\n')[0]).toBe('1 row failed, 1 unresolved, 0 fixed by retry');
    expect(recordMarkdown(migrationRecord(one))).toContain('1 row failed and was left out of verification');
    expect(formatFailures(status({ rowsFailed: 2, unresolvedFailures: 2 })).split('\n')[0]).toBe('2 rows failed, 2 unresolved, 0 fixed by retry');
  });
});
