/** `ferry doctor`: a plan checked against both databases from a worker, with the GRANTs that are missing. */
import type { Command } from 'commander';
import type * as DoctorReportExports from '../../lib/doctor';
import { readPlan, settingsOf, withClient } from '../context';
import { ExitCode } from '../exit-codes';
import { lazy, operatorModule } from '../lazy';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const doctorReportModule = lazy(() => require('../../lib/doctor') as typeof DoctorReportExports);

export function addDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description("Check a plan against both databases from a worker (which holds the connection variables): tables, key, each transform column against its target column's type, and every privilege Ferry needs, printing the GRANT statements that are missing. Writes nothing.")
    .argument('<plan>', 'the migration plan (YAML)')
    .option('--json', 'print the checks as JSON', false)
    .action(async (planFile: string, options: { json: boolean }, command: Command) => {
      const plan = readPlan(planFile);
      const settings = settingsOf(command);
      await withClient(settings, async (client) => {
        const report = await operatorModule().runDoctor(client, settings, plan);
        console.log(options.json ? JSON.stringify(report, null, 2) : doctorReportModule().formatDoctorReport(report));
        if (!report.ok) process.exitCode = ExitCode.failed;
      });
    });
}
