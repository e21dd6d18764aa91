/**
 * Gate metrics on Ferry's own metrics port: the worker finds the migrations on its task queue
 * that wait at a gate (visibility, then each one's status query) every few seconds and serves
 * how long each has waited. Workflow code cannot reach prom-client; deriving the figures here
 * keeps it out of the workflow, and a gate that ends drops out at the next look.
 */
import { Client } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { Gauge, type Registry } from 'prom-client';
import type { MigrationStatus } from '../lib/status';
import type { TemporalSettings } from '../lib/settings';
import { statusQuery } from '../workflows/messages';
import { connectClientConnection } from './temporal-connection';
import { phaseKey } from '../lib/search-attributes';

/** A migration waiting at a gate, as last seen. */
export interface WaitingGate {
  migration: string;
  gate: string;
  sinceMs: number;
  reminders: number;
  verificationClean: boolean | null;
}

export interface GateWatch {
  /** Whether the last look at Temporal succeeded (readiness: the worker's Temporal is reachable). */
  connected(): boolean;
  stop(): Promise<void>;
}

export interface GateGauges {
  /** The gates waiting now; any not in the list are gone from the metrics. */
  set(gates: WaitingGate[]): void;
}

/** How often the gates are looked at. (Default: 10 s) */
export const GATE_LOOK_MS = 10_000;

/** Registers the gate gauges in `registry`, values computed at scrape time from the last look. */
export function registerGateMetrics(registry: Registry): GateGauges {
  let gates: WaitingGate[] = [];
  const labelNames = ['migration', 'gate'] as const;
  new Gauge({
    name: 'ferry_gate_waiting_seconds',
    help: 'How long a migration has waited at its gate; absent when no gate waits.',
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const g of gates) this.set({ migration: g.migration, gate: g.gate }, Math.max(0, (Date.now() - g.sinceMs) / 1000));
    },
  });
  new Gauge({
    name: 'ferry_gate_reminders',
    help: 'Reminders logged while a migration waits at its gate; absent when no gate waits.',
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const g of gates) this.set({ migration: g.migration, gate: g.gate }, g.reminders);
    },
  });
  new Gauge({
    name: 'ferry_gate_verification_clean',
    help: "1 when the waiting migration's last verification is clean, 0 when not; absent when no gate waits or nothing was verified.",
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const g of gates) if (g.verificationClean !== null) this.set({ migration: g.migration, gate: g.gate }, g.verificationClean ? 1 : 0);
    },
  });
  return {
    set(next) {
      gates = next;
    },
  };
}

/** The gates waiting among the running migrations of one task queue. */
async function waitingGates(client: Client, taskQueue: string): Promise<WaitingGate[]> {
  const base = `WorkflowType = 'migrationWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue.replace(/'/g, "\\'")}'`;
  const ids: string[] = [];
  const collect = async (query: string) => {
    for await (const run of client.workflow.list({ query })) ids.push(run.workflowId);
  };
  // A server that does not know Ferry's search attributes refuses the phase filter: ask every run.
  await collect(`${base} AND ${phaseKey.name} = 'awaiting-approval'`).catch(async () => {
    ids.length = 0;
    await collect(base);
  });
  const gates = await Promise.all(
    ids.map(async (id): Promise<WaitingGate | null> => {
      const status = await client.workflow
        .getHandle(id)
        .query<MigrationStatus>(statusQuery)
        .catch(() => null);
      const gate = status?.gate;
      if (!status || !gate) return null;
      return {
        migration: status.planName,
        gate: gate.name,
        sinceMs: Date.parse(gate.waitingSince),
        reminders: gate.reminders,
        verificationClean: status.verification ? status.verification.clean : null,
      };
    }),
  );
  return gates.filter((g): g is WaitingGate => g !== null);
}

/** Looks at the gates every `intervalMs` until stopped; a failed look keeps the last figures. */
export async function watchGates(options: {
  temporal: TemporalSettings;
  gauges: GateGauges;
  /** The worker's own, so encrypted payloads read the same. */
  dataConverter: DataConverter;
  intervalMs?: number;
}): Promise<GateWatch> {
  const { gauges } = options;
  const connection = await connectClientConnection(options.temporal);
  const client = new Client({ connection, namespace: options.temporal.namespace, dataConverter: options.dataConverter });
  let connected = true;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let looking: Promise<void> = Promise.resolve();
  const look = async () => {
    try {
      gauges.set(await client.withDeadline(Date.now() + 10_000, () => waitingGates(client, options.temporal.taskQueue)));
      connected = true;
    } catch {
      connected = false;
    }
    if (!stopped) timer = setTimeout(() => (looking = look()), options.intervalMs ?? GATE_LOOK_MS);
  };
  looking = look();
  return {
    connected: () => connected,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await looking;
      await connection.close();
    },
  };
}
