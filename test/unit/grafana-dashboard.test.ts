/**
 * The Grafana provisioning in deploy/grafana: the dashboard parses, every PromQL expression names
 * metrics a Ferry worker really exports (workers/metrics.ts, or the Temporal SDK's), every Ferry
 * metric has a panel, and the datasource points at the compose Prometheus.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createFerryMetrics } from '../../workers/metrics';

const root = path.join(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

interface Target { expr: string; datasource?: { uid: string } }
interface Panel { type: string; title: string; targets?: Target[]; panels?: Panel[]; datasource?: { uid: string } }

const dashboard = JSON.parse(read('deploy/grafana/dashboards/ferry.json')) as {
  uid: string;
  panels: Panel[];
  templating: { list: { query: { query: string } | string }[] };
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const expressions = [
  ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ...dashboard.templating.list.map((v) => (typeof v.query === 'string' ? v.query : v.query.query)),
];

/** Ferry's metrics, from the registry a worker serves: name to type. */
const ferryMetrics = new Map<string, string>();
beforeAll(async () => {
  for (const m of await createFerryMetrics().registry.getMetricsAsJSON()) ferryMetrics.set(m.name, String(m.type));
});

/**
 * The Temporal SDK metrics the dashboard may use: seen on a real worker's SDK endpoint
 * (@temporalio/worker 1.24, installSdkMetrics in workers/worker.ts: prefix temporal_, seconds, unit
 * and _total suffixes). Histograms are listed by base name.
 */
const TEMPORAL_SDK_METRICS = new Map([
  ['temporal_worker_task_slots_available', 'gauge'],
  ['temporal_worker_task_slots_used', 'gauge'],
  ['temporal_num_pollers', 'gauge'],
  ['temporal_activity_execution_latency_seconds', 'histogram'],
  ['temporal_activity_schedule_to_start_latency_seconds', 'histogram'],
  ['temporal_workflow_task_schedule_to_start_latency_seconds', 'histogram'],
  ['temporal_workflow_task_execution_latency_seconds', 'histogram'],
  ['temporal_request_latency_seconds', 'histogram'],
  ['temporal_request_total', 'counter'],
]);

/** The metric a series name belongs to, and whether it is a histogram's _bucket/_sum/_count. */
function metricOf(series: string): { name: string; histogramPart: boolean } {
  const part = /_(bucket|sum|count)$/.exec(series);
  return part ? { name: series.slice(0, -part[0].length), histogramPart: true } : { name: series, histogramPart: false };
}

describe('the Grafana dashboard', () => {
  it('has panels with PromQL for every one of them', () => {
    expect(dashboard.uid).toBe('ferry');
    const charts = panels.filter((p) => p.type !== 'row');
    expect(charts.length).toBeGreaterThanOrEqual(10);
    for (const p of charts) expect(p.targets?.length, p.title).toBeGreaterThan(0);
  });

  it('names only metrics that workers/metrics.ts defines (or the Temporal SDK exports), used as their type allows', () => {
    expect(ferryMetrics.size).toBeGreaterThanOrEqual(10);
    for (const expr of expressions) {
      const series = expr.match(/\b(?:ferry|temporal)_[a-z0-9_]+\b/g) ?? [];
      expect(series.length, expr).toBeGreaterThan(0);
      for (const s of series) {
        const { name, histogramPart } = metricOf(s);
        const known = ferryMetrics.get(s) ?? ferryMetrics.get(name) ?? TEMPORAL_SDK_METRICS.get(s) ?? TEMPORAL_SDK_METRICS.get(name);
        expect(known, `${s} in ${expr}`).toBeDefined();
        if (histogramPart) expect(known, `${s}: only histograms have _bucket, _sum and _count`).toBe('histogram');
        else expect(known, `${s}: a histogram is queried through _bucket, _sum or _count`).not.toBe('histogram');
        // A counter is charted as a rate or increase, or as a running total (progress); label_values lists its labels.
        if (known === 'counter') expect(expr, `${s} is a counter`).toMatch(new RegExp(`(rate|increase|label_values)\\(${s}\\b|\\bsum by \\(migration\\) \\(${s}\\{`));
      }
    }
  });

  it('charts every Ferry metric', () => {
    const used = new Set(expressions.flatMap((e) => (e.match(/\bferry_[a-z0-9_]+\b/g) ?? []).map((s) => metricOf(s).name)));
    for (const name of ferryMetrics.keys()) expect(used.has(name), name).toBe(true);
  });

  it('queries the provisioned datasource, which is the compose Prometheus', () => {
    const datasources = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: { uid: string; type: string; url: string }[] };
    const [prometheus] = datasources.datasources;
    expect(prometheus).toMatchObject({ uid: 'prometheus', type: 'prometheus', url: 'http://prometheus:9090' });
    for (const p of panels.filter((x) => x.type !== 'row')) {
      expect(p.datasource?.uid, p.title).toBe(prometheus!.uid);
      for (const t of p.targets ?? []) expect(t.datasource?.uid, p.title).toBe(prometheus!.uid);
    }
    const compose = parse(read('docker-compose.yml')) as { services: Record<string, { image?: string; volumes?: string[] }> };
    expect(compose.services.prometheus).toBeDefined();
    expect(compose.services.grafana?.image).toMatch(/^grafana\/grafana-oss:/);
    expect(compose.services.grafana?.volumes).toEqual(
      expect.arrayContaining(['./deploy/grafana/provisioning:/etc/grafana/provisioning:ro', './deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro']),
    );
    const provider = parse(read('deploy/grafana/provisioning/dashboards/ferry.yml')) as { providers: { options: { path: string } }[] };
    expect(provider.providers[0]!.options.path).toBe('/var/lib/grafana/dashboards');
  });
});
