/** Runs the doctor's checks on a worker, which alone holds the plan's connection variables. */
import { proxyActivities } from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { DoctorReport } from '../lib/doctor';
import type { Plan } from '../lib/plan';

const { doctor } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 2 },
});

export async function doctorWorkflow(input: { plan: Plan }): Promise<DoctorReport> {
  return doctor({ plan: input.plan });
}
