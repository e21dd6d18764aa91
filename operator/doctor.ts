/** The doctor's checks of a plan, run on a worker of the task queue (which holds the connection variables), and their answer. */
import type { Client } from '@temporalio/client';
import type { DoctorReport } from '../lib/doctor';
import type { Plan } from '../lib/plan';
import type { TemporalSettings } from '../lib/settings';
import type { doctorWorkflow } from '../workflows/doctor';
import { doctorWorkflowId } from '../lib/ids';

export async function runDoctor(client: Client, temporal: TemporalSettings, plan: Plan): Promise<DoctorReport> {
  return client.workflow.execute<typeof doctorWorkflow>('doctorWorkflow', {
    taskQueue: temporal.taskQueue,
    workflowId: doctorWorkflowId(plan.name, new Date()),
    args: [{ plan }],
    // A doctor nobody answers should not linger: it is asked again, not resumed.
    workflowExecutionTimeout: '10 minutes',
  });
}
