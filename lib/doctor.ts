/** What `ferry doctor` found: one line a check, with the GRANT that fixes a missing privilege. */

export interface DoctorCheck {
  side: 'source' | 'target';
  name: string;
  /** fail: the migration would fail; warn: it would run, less safely or less well. */
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  /** SQL for a database owner to run. */
  fix?: string;
}

/** What stops a capture from being installed on the source, and the SQL that removes the obstacle. */
export interface CaptureProblem {
  name: string;
  detail: string;
  fix: string;
}

/** A problem as a line of an error or of the inspection's report. */
export function describeCaptureProblem(p: CaptureProblem): string {
  return `${p.detail} (fix: ${p.fix})`;
}

export interface DoctorReport {
  checks: DoctorCheck[];
  /** No check failed (warnings allowed). */
  ok: boolean;
}

const MARK: Record<DoctorCheck['status'], string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };

export function formatDoctorReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = report.checks.map((c) => `${MARK[c.status]}  ${c.side.padEnd(6)}  ${c.name.padEnd(width)}  ${c.detail}`);
  const fixes = report.checks.filter((c) => c.fix).map((c) => `  ${c.fix}`);
  const failed = report.checks.filter((c) => c.status === 'fail').length;
  const warned = report.checks.filter((c) => c.status === 'warn').length;
  return [
    ...lines,
    '',
    failed ? `${failed} check${failed === 1 ? '' : 's'} failed${warned ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}: the migration would not run as planned.` : warned ? `ready, with ${warned} warning${warned === 1 ? '' : 's'}.` : 'ready.',
    ...(fixes.length ? ['', 'Run as a database owner (on the side each line names):', ...fixes] : []),
  ].join('\n');
}
