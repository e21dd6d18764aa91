/** Flags held in memory for the client library's unit tests, changed the way a migration would. */
import type { Registry } from 'prom-client';
import { initialFlags, type Flags } from '../../lib/flags';
import type { FlagSource } from '../../client/flags';

export interface FakeFlags extends FlagSource {
  /** Changes the flags and bumps the version, telling onChange listeners (unless `quietly`). */
  set(change: Partial<Omit<Flags, 'version'>>, quietly?: boolean): Flags;
}

export function fakeFlags(start: Partial<Flags> = {}): FakeFlags {
  let flags: Flags = { ...initialFlags, version: 1, ...start };
  const listeners = new Set<(flags: Flags, previous: Flags) => void>();
  return {
    get: async () => flags,
    onChange(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    set(change, quietly = false) {
      const previous = flags;
      flags = { ...flags, ...change, version: flags.version + 1 };
      if (!quietly) for (const fn of listeners) fn(flags, previous);
      return flags;
    },
  };
}

/** A logger that keeps its lines, to check what they say and that they carry no values. */
export function memoryLogger() {
  const lines: { message: string; details: Record<string, unknown> }[] = [];
  return { lines, warn: (message: string, details: Record<string, unknown>) => void lines.push({ message, details }) };
}

/** The value of one labelled series in a prom-client registry (0 when it has none yet). */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const series = values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value));
  return series?.value ?? 0;
}
