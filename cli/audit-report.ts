/**
 * A migration's report rebuilt from ferry.audit on its target: who started it, every decision,
 * how it ended. For runs Temporal no longer keeps (past the namespace's retention).
 */
import pg from 'pg';
import { readAudit, type AuditRecord } from '../activities/state/audit';
import { printable } from './printable';

/** Reads the audit through the database URL in environment variable `connection` (as a plan names it). */
export async function auditOf(connection: string, migrationId: string, env: NodeJS.ProcessEnv = process.env): Promise<AuditRecord | null> {
  const url = env[connection];
  if (!url) throw new Error(`environment variable ${connection} is not set; set it to the target database's URL (the plan's target.connection)`);
  const client = new pg.Client({ connectionString: url, application_name: 'ferry report' });
  await client.connect();
  try {
    return await readAudit(client, migrationId);
  } finally {
    await client.end();
  }
}

/** A table cell on one line: control characters shown escaped, pipes too. */
const cell = (text: string) => printable(text).replace(/\|/g, '\\|');

export function auditMarkdown(record: AuditRecord): string {
  const start = record.entries.find((e) => e.entry === 'start');
  const end = record.entries.find((e) => e.entry === 'end');
  const decisions = record.entries.filter((e) => e.entry !== 'start' && e.entry !== 'end');
  const lines = [
    `# Migration ${record.migrationId}`,
    '',
    `Rebuilt from ferry.audit on the target: decisions and outcome only (Temporal no longer holds the run's phases and progress).`,
    '',
    `- plan: \`${record.planName}\``,
    `- outcome: **${end ? end.kind : 'not ended (or its end was not recorded)'}**`,
    ...(start ? [`- started ${start.at}${start.by ? ` by ${printable(start.by)}` : ''}: ${printable(start.detail)}`] : []),
    ...(end ? [`- ended ${end.at}: ${printable(end.detail)}`] : []),
    '',
    '## Decisions',
    '',
  ];
  if (decisions.length === 0) lines.push('None.');
  else {
    lines.push('| when | what | by | detail |', '| --- | --- | --- | --- |');
    for (const e of decisions) lines.push(`| ${e.at} | ${e.kind} | ${cell(e.by ?? '')} | ${cell(e.detail)} |`);
  }
  lines.push('');
  return lines.join('\n');
}
