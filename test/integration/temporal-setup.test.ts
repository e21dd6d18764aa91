/**
 * `ferry setup` on a Temporal server that Ferry did not start: it registers Ferry's search
 * attributes once (a second run changes nothing), and before it `start` says what is missing.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFerryWorker, type FerryWorker } from '../../workers/worker';
import { ExitCode } from '../../cli/exit-codes';
import { startTemporal, type TemporalServer } from '../../scripts/services/temporal';
import { ferry } from '../support/cli';
import { uniqueName } from '../support/harness';
import type { TemporalSettings } from '../../lib/settings';

describe('ferry setup', () => {
  let server: TemporalServer;
  let temporal: TemporalSettings;
  let planFile: string;
  let worker: FerryWorker;
  let running: Promise<void>;

  beforeAll(async () => {
    server = await startTemporal({ withoutFerrySearchAttributes: true });
    temporal = { address: server.address, namespace: 'default', taskQueue: uniqueName('setup') };
    worker = await createFerryWorker({ temporal, env: {}, workflowBundle: { codePath: inject('workflowBundlePath') }, shutdownGraceSeconds: 1 });
    running = worker.run();
    planFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'ferry-setup-')), 'plan.yaml');
    writeFileSync(planFile, 'name: setup-check\nsource: { connection: NOWHERE_DB, table: a, key: id }\ntarget: { connection: NOWHERE_DB, table: b }\ntransform: { sql: { id: id } }\n');
  });
  afterAll(async () => {
    worker?.shutdown();
    await running;
    await server?.stop();
  });

  it('start on a bare server says the search attributes are missing and how to add them', async () => {
    // The plan's database variable is unset on the worker: the dry run fails at once, after starting.
    const result = await ferry(['start', planFile, '--id', uniqueName('bare')], temporal);
    expect(result.stderr).toContain("does not know Ferry's search attributes");
    expect(result.stderr).toContain('run `ferry setup` once for namespace default');
  });

  it('registers them, and a second run finds them there', async () => {
    const first = await ferry(['setup', '--json'], temporal);
    expect(first.code).toBe(ExitCode.ok);
    expect(JSON.parse(first.stdout)).toEqual({ namespace: 'default', added: ['FerryPlan', 'FerryPhase', 'FerryTarget'], present: [] });
    const second = await ferry(['setup'], temporal);
    expect(second.code).toBe(ExitCode.ok);
    expect(second.stdout.trim()).toBe('already there: FerryPlan, FerryPhase, FerryTarget');
  });

  it('start no longer warns once they are registered', async () => {
    const result = await ferry(['start', planFile, '--id', uniqueName('ready')], temporal);
    expect(result.stderr).not.toContain('search attributes');
    expect(result.code).toBe(ExitCode.failed);
  });
});
