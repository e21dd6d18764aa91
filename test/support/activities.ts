/** Runs one activity outside a worker, in Temporal's mock activity context (heartbeats and cancellation included). */
import { MockActivityEnvironment } from '@temporalio/testing';

export function runActivity<I, O>(activity: (input: I) => Promise<O>, input: I): Promise<O> {
  return new MockActivityEnvironment().run(activity, input);
}
