/**
 * The record of a migration as one self-contained HTML page (`ferry report --format html`): the
 * same facts as the Markdown record, from the same MigrationRecord, plus inline SVG charts of
 * progress over time with the decisions marked. No external assets and no scripts. Every text
 * that comes from a plan or a person (names, details, `by`) is escaped.
 */
import type { MigrationEvent, ProgressSample } from '../lib/status';
import { escapeHtml, lineChart, timelineChart, type Band, type Bar, type Marker, type Point } from './chart';
import { formatCount } from './render';
import { decisionDetail, forcedPastSentence } from './phase-story';
import { LATER_CHECK_COLUMNS, LATER_CHECKS_NOTE, laterCheckCells, verificationCaveat, verificationScope, type MigrationRecord } from './report';


/** Seconds from `start` to `at`; 0 when either is not a time. */
export function secondsSince(start: string, at: string): number {
  const s = (Date.parse(at) - Date.parse(start)) / 1000;
  return Number.isFinite(s) ? s : 0;
}

/** Rows read by a time. */
export type Progress = Pick<ProgressSample, 'at' | 'rowsRead'>;

/**
 * The samples, anchored at the backfill's start (no rows yet) and end (every row the record
 * counts): samples come at most every 2 s, so without the anchors a short run or its last
 * seconds would be missing from the charts.
 */
export function progressOf(record: Pick<MigrationRecord, 'samples' | 'phases' | 'rows'>): Progress[] {
  const points: Progress[] = record.samples.map(({ at, rowsRead }) => ({ at, rowsRead }));
  const backfill = record.phases.find((p) => p.name === 'backfill');
  if (!backfill) return points;
  const first = points[0];
  if (!first || Date.parse(backfill.startedAt) < Date.parse(first.at)) points.unshift({ at: backfill.startedAt, rowsRead: 0 });
  const last = points[points.length - 1]!;
  if (backfill.endedAt && Date.parse(backfill.endedAt) > Date.parse(last.at) && record.rows.read >= last.rowsRead) {
    points.push({ at: backfill.endedAt, rowsRead: record.rows.read });
  }
  return points;
}

/**
 * Rows/s between consecutive points, each at the later point's time (drawn as a step over the
 * interval). Intervals without elapsed time are left out; fewer than two points give none.
 */
export function rateSeries(progress: readonly Progress[], startedAt: string): Point[] {
  const points: Point[] = [];
  for (let i = 1; i < progress.length; i += 1) {
    const previous = progress[i - 1]!;
    const sample = progress[i]!;
    const seconds = (Date.parse(sample.at) - Date.parse(previous.at)) / 1000;
    if (!(seconds > 0)) continue;
    points.push({ x: secondsSince(startedAt, sample.at), y: Math.max(0, sample.rowsRead - previous.rowsRead) / seconds });
  }
  return points;
}

/** Rows read, or batch size, against seconds since the start. */
export function sampleSeries<K extends 'rowsRead' | 'batchSize'>(samples: readonly Pick<ProgressSample, 'at' | K>[], startedAt: string, field: K): Point[] {
  return samples.map((s) => ({ x: secondsSince(startedAt, s.at), y: s[field] })).filter((p) => Number.isFinite(p.y));
}

/** A marker for every decision (of every kind: retries, verifications, flags too), numbered as in the decisions table. */
export function decisionMarkers(events: readonly MigrationEvent[], startedAt: string): Marker[] {
  return events.map((e, i) => ({
    x: secondsSince(startedAt, e.at),
    kind: e.kind,
    label: `${i + 1} ${e.kind}`,
    title: `${i + 1}. ${e.at} ${e.kind}${e.by ? ` by ${e.by}` : ''}: ${decisionDetail(e)}`,
  }));
}

/**
 * Progress with the paused spans made flat: no sample is taken while paused, so the samples
 * around a pause would otherwise be joined by a slope (and a rate) across time nothing moved.
 * The rows between the two samples are split by the copying time on either side of the pause.
 */
export function withPauses(progress: readonly Progress[], startedAt: string, bands: readonly Band[]): Progress[] {
  const atSeconds = (seconds: number) => new Date(Date.parse(startedAt) + seconds * 1000).toISOString();
  const points: Progress[] = [];
  progress.forEach((sample, i) => {
    const previous = progress[i - 1];
    if (previous) {
      const [from, to] = [secondsSince(startedAt, previous.at), secondsSince(startedAt, sample.at)];
      const paused = bands
        .map((b) => ({ from: Math.max(from, b.from), to: Math.min(to, b.to) }))
        .filter((b) => b.to > b.from)
        .sort((a, b) => a.from - b.from);
      const copyingSeconds = to - from - paused.reduce((sum, b) => sum + (b.to - b.from), 0);
      if (paused.length && copyingSeconds > 0) {
        const rows = sample.rowsRead - previous.rowsRead;
        let last = from;
        let read = previous.rowsRead;
        for (const band of paused) {
          read += (rows * (band.from - last)) / copyingSeconds;
          points.push({ at: atSeconds(band.from), rowsRead: Math.round(read) }, { at: atSeconds(band.to), rowsRead: Math.round(read) });
          last = band.to;
        }
      }
    }
    points.push(sample);
  });
  return points;
}

/** Paused spans: from each pause (by a person or by Ferry) to the next resume, or to `end`. */
export function pauseBands(events: readonly MigrationEvent[], startedAt: string, end: number): Band[] {
  const bands: Band[] = [];
  let open: MigrationEvent | null = null;
  for (const e of events) {
    if ((e.kind === 'pause' || e.kind === 'auto-pause') && !open) open = e;
    else if (e.kind === 'resume' && open) {
      bands.push({ from: secondsSince(startedAt, open.at), to: secondsSince(startedAt, e.at), kind: 'paused', title: `paused: ${open.detail}` });
      open = null;
    }
  }
  if (open) bands.push({ from: secondsSince(startedAt, open.at), to: Math.max(secondsSince(startedAt, open.at), end), kind: 'paused', title: `paused: ${open.detail}` });
  return bands;
}

/** The span the charts cover: from the start to the latest time the record knows of. */
export function timeSpan(record: MigrationRecord): number {
  const times = [
    record.finishedAt,
    ...record.samples.map((s) => s.at),
    ...record.decisions.map((e) => e.at),
    ...record.phases.flatMap((p) => [p.startedAt, p.endedAt]),
  ].filter((t): t is string => t !== null);
  return Math.max(0, ...times.map((t) => secondsSince(record.startedAt, t)));
}

export function phaseBars(record: MigrationRecord, end: number): Bar[] {
  return record.phases.map((p) => {
    const from = secondsSince(record.startedAt, p.startedAt);
    return {
      label: p.name,
      from,
      to: p.endedAt ? secondsSince(record.startedAt, p.endedAt) : Math.max(from, end),
      open: p.endedAt === null,
      className: p.name.startsWith('gate:') ? 'gate' : 'phase',
      title: `${p.name}: ${p.startedAt} to ${p.endedAt ?? '(running)'}${p.seconds === null ? '' : ` (${p.seconds.toFixed(1)} s)`}`,
    };
  });
}

/** The charts, as SVG elements in the order the page shows them. */
export function recordCharts(record: MigrationRecord): { phases: string; rate: string; cumulative: string; batch: string } {
  const end = timeSpan(record);
  const markers = decisionMarkers(record.decisions, record.startedAt);
  const fewSamples = 'not enough progress samples to chart (one every 2 s while copying)';
  const bands = pauseBands(record.decisions, record.startedAt, end);
  const progress = withPauses(progressOf(record), record.startedAt, bands);
  return {
    // The section's heading already says "Phases".
    phases: timelineChart({ title: 'Timeline, seconds since the start', xEnd: end, bars: phaseBars(record, end), markers }),
    rate: lineChart({
      title: 'Rows read per second',
      yLabel: 'rows/s',
      xEnd: end,
      series: [
        {
          points: rateSeries(progress, record.startedAt),
          shape: 'step',
          stepFrom: progress.length ? secondsSince(record.startedAt, progress[0]!.at) : 0,
          className: 'rate',
          label: 'rows/s between progress samples',
        },
      ],
      markers,
      bands,
      emptyText: fewSamples,
    }),
    cumulative: lineChart({
      title: 'Rows read, against the estimate',
      yLabel: 'rows',
      xEnd: end,
      series: [{ points: sampleSeries(progress, record.startedAt, 'rowsRead'), className: 'rows', label: 'rows read' }],
      ...(record.rows.estimated !== null ? { reference: { y: record.rows.estimated, label: `estimate ${formatCount(record.rows.estimated)}` } } : {}),
      markers,
      bands,
      emptyText: fewSamples,
    }),
    batch: lineChart({
      title: 'Batch size (mean of running shards)',
      yLabel: 'rows',
      xEnd: end,
      series: [{ points: sampleSeries(record.samples, record.startedAt, 'batchSize'), className: 'batch', label: 'batch size' }],
      markers,
      bands,
      emptyText: fewSamples,
    }),
  };
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 24px auto; max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; word-break: break-all; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
time.ts { white-space: nowrap; font-variant-numeric: tabular-nums; }
code { background: #f6f8fa; padding: 1px 4px; border-radius: 3px; }
.outcome { font-weight: 600; } .outcome.completed { color: #1a7f37; } .outcome.aborted, .outcome.failed { color: #cf222e; }
.not-clean { color: #cf222e; font-weight: 600; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 12px 0 4px; }
svg .chart-title { font-size: 14px; font-weight: 600; fill: #1f2328; }
svg .tick, svg .axis-label, svg .bar-label { font-size: 11px; fill: #57606a; }
svg .grid { stroke: #eaeef2; } svg .axis { stroke: #8c959f; }
svg .series { fill: none; stroke-width: 2; } svg .rate { stroke: #0969da; } svg .rows { stroke: #1a7f37; } svg .batch { stroke: #8250df; }
svg .series-dot { stroke: none; fill: #1a7f37; }
svg .reference { stroke: #57606a; stroke-dasharray: 6 4; } svg .reference-label { font-size: 11px; fill: #57606a; }
svg .empty { font-size: 13px; fill: #8c959f; }
svg .marker line { stroke: #bc4c00; stroke-width: 1.5; stroke-dasharray: 4 3; } svg .marker-label { font-size: 11px; fill: #bc4c00; }
svg .marker-throttle line { stroke: #0550ae; } svg .marker-throttle .marker-label { fill: #0550ae; }
svg .marker-resume line { stroke: #1a7f37; } svg .marker-resume .marker-label { fill: #1a7f37; }
svg .marker-approve line { stroke: #8250df; } svg .marker-approve .marker-label { fill: #8250df; }
svg .marker-abort line, svg .marker-reject line, svg .marker-gate-expired line { stroke: #cf222e; }
svg .marker-abort .marker-label, svg .marker-reject .marker-label, svg .marker-gate-expired .marker-label { fill: #cf222e; }
svg .band-paused { fill: #fff1e5; }
svg .bar rect { fill: #54aeff; } svg .bar.gate rect { fill: #d8b9ff; } svg .bar.open rect { fill-opacity: 0.5; stroke: #0969da; stroke-dasharray: 3 2; }
`;

const cell = (value: string | number | null | undefined) => escapeHtml(value === null || value === undefined ? '' : String(value));
/** A timestamp that fits its column on one line: the date and time to the second, UTC; the full one on hover. */
const time = (iso: string | null) =>
  iso === null ? '' : `<time class="ts" datetime="${escapeHtml(iso)}" title="${escapeHtml(iso)}">${escapeHtml(iso.replace('T', ' ').replace(/(:\d\d)(\.\d+)?Z$/, '$1Z'))}</time>`;
const row = (cells: string[], tag = 'td') => `<tr>${cells.map((c) => `<${tag}>${c}</${tag}>`).join('')}</tr>`;
const numbers = (values: number[]) => `<tr>${values.map((v) => `<td class="n">${escapeHtml(formatCount(v))}</td>`).join('')}</tr>`;

export function recordHtml(record: MigrationRecord): string {
  const e = escapeHtml;
  const charts = recordCharts(record);
  const body: string[] = [
    `<h1>Migration ${e(record.migrationId)}</h1>`,
    '<ul>',
    `<li>plan: <code>${e(record.plan)}</code></li>`,
    `<li>outcome: <span class="outcome ${e(record.outcome)}">${e(record.outcome)}</span></li>`,
    `<li>started ${e(record.startedAt)}${record.finishedAt ? `, finished ${e(record.finishedAt)} (${e(record.durationSeconds?.toFixed(1) ?? '')} s)` : ''}</li>`,
    '</ul>',
    '<h2>Phases</h2>',
    charts.phases,
    '<table>',
    row(['phase', 'started', 'ended', 'seconds'], 'th'),
    ...record.phases.map((p) => row([cell(p.name), time(p.startedAt), p.endedAt ? time(p.endedAt) : '(running)', cell(p.seconds?.toFixed(1))])),
    '</table>',
    '<h2>Rows</h2>',
    '<table>',
    row(['read', 'copied', 'already present', 'failed', 'unresolved', 'fixed by retry', 'repaired'], 'th'),
    numbers([record.rows.read, record.rows.copied, record.rows.alreadyPresent, record.rows.failed, record.rows.unresolvedFailures, record.rows.fixedByRetry, record.rows.repaired]),
    '</table>',
    `<p>Estimated rows: ${e(formatCount(record.rows.estimated))}. Backfill throughput: ${record.backfillRowsPerSecond === null ? 'n/a' : `${e(formatCount(record.backfillRowsPerSecond))} rows/s`}.</p>`,
    charts.rate,
    charts.cumulative,
    charts.batch,
    '<p>Dashed vertical lines are the decisions below, by number (hover over one for its detail); shaded spans were paused, and the lines stay flat across them (nothing is copied while paused). Rows/s is the mean between progress samples (one every 2 s or more while copying, none while paused).</p>',
  ];
  if (record.verification) {
    const v = record.verification;
    body.push(
      '<h2>Verification</h2>',
      `<p>${e(verificationScope(v))}${v.clean ? 'clean' : '<span class="not-clean">NOT clean</span>'} after ${v.passes} pass(es): ${e(formatCount(v.rowsChecked))} rows checked, ${v.missing} missing, ${v.extra} extra, ${v.value} differing, ${v.repaired} repaired.` +
        e(verificationCaveat(v)) +
        (v.forcedBy ? ` ${e(forcedPastSentence(v, v.forcedBy))}` : '') +
        '</p>',
    );
  }
  if (record.laterChecks.length) {
    body.push(
      '<h2>Later checks</h2>',
      `<p>${e(LATER_CHECKS_NOTE).replace(/`([^`]+)`/g, '<code>$1</code>')}</p>`,
      '<table>',
      row(LATER_CHECK_COLUMNS, 'th'),
      ...record.laterChecks.map((check) => row(laterCheckCells(check).map(cell))),
      '</table>',
    );
  }
  body.push('<h2>Decisions</h2>');
  if (record.decisions.length === 0) body.push('<p>None.</p>');
  else {
    body.push(
      '<table>',
      row(['#', 'when', 'what', 'by', 'detail'], 'th'),
      ...record.decisions.map((d, i) => row([String(i + 1), time(d.at), cell(d.kind), cell(d.by), cell(decisionDetail(d))])),
      '</table>',
    );
  }
  if (record.abort) {
    const a = record.abort;
    body.push('<h2>Abort</h2>', `<p>Aborted by ${e(a.by)} at ${e(a.at)} in phase ${e(a.phaseReached)}: ${e(a.reason)}.</p>`, `<p>${e(a.flagsNote)}.</p>`);
  }
  if (record.flags) {
    const f = record.flags;
    body.push(
      '<h2>Flags</h2>',
      `<p>Version ${f.version}: write old ${f.writeOld ? 'on' : 'off'}, write new ${f.writeNew ? 'on' : 'off'}, reads from ${e(f.readFrom)}, compare ${f.comparePercent}%.</p>`,
    );
  }
  // The Markdown record's `code` spans become <code> here.
  body.push('<h2>Left to do by hand</h2>', '<ul>', ...record.leftToDo.map((t) => `<li>${e(t).replace(/`([^`]+)`/g, '<code>$1</code>')}</li>`), '</ul>');
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // No scripts, no fetches: the page is a record to keep and mail around.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    `<title>Migration ${e(record.migrationId)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    ...body,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
