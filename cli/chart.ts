/**
 * Hand-written SVG charts for the HTML report: pure functions from numbers to markup (scales,
 * ticks, paths, and whole charts), no DOM and no scripts. Every number that reaches the markup
 * is finite: empty series, one point, or a flat line draw an empty or flat chart, never NaN.
 */

/** Escapes text for HTML and SVG, in element content and in quoted attributes alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export type Scale = (value: number) => number;

/**
 * Maps [d0, d1] linearly onto [r0, r1]. A domain of zero width (or not finite) maps everything to
 * r0, and a value that is not finite maps to r0 too, so a scale never returns NaN.
 */
export function linearScale([d0, d1]: [number, number], [r0, r1]: [number, number]): Scale {
  const width = d1 - d0;
  if (!Number.isFinite(width) || width === 0) return () => r0;
  return (value) => (Number.isFinite(value) ? r0 + ((value - d0) / width) * (r1 - r0) : r0);
}

/** Round numbers for a step: 1, 2 or 5 times a power of ten. */
function niceStep(rough: number, steps: readonly number[] = [1, 2, 5, 10]): number {
  const power = 10 ** Math.floor(Math.log10(rough));
  return (steps.find((s) => s * power >= rough) ?? 10) * power;
}

/**
 * About `count` evenly spaced round values covering [min, max], starting at or below min and
 * ending at or above max. A single value gets [min, min + 1]; values that are not numbers count as 0.
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  let lo = Number.isFinite(min) ? min : 0;
  let hi = Number.isFinite(max) ? max : lo;
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) return [lo, lo + 1];
  const step = niceStep((hi - lo) / Math.max(1, count));
  const first = Math.floor(lo / step) * step;
  const ticks: number[] = [];
  for (let v = first; v < hi + step * 0.5; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < hi) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

/** Steps for an axis of elapsed seconds: seconds, minutes, hours, days. */
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/** Ticks for elapsed seconds from 0 to `end`, at steps a clock reads well (15 s, 5 min, 1 h...). */
export function timeTicks(end: number, count = 6): number[] {
  const span = Number.isFinite(end) && end > 0 ? end : 1;
  const rough = span / Math.max(1, count);
  const step = TIME_STEPS.find((s) => s >= rough) ?? niceStep(rough / 86400) * 86400;
  const ticks: number[] = [];
  for (let v = 0; v < span + step * 0.5; v += step) ticks.push(v);
  if (ticks[ticks.length - 1]! < span) ticks.push(ticks[ticks.length - 1]! + step);
  return ticks;
}

/** Elapsed seconds as a person reads them on an axis: 45s, 2m30s, 1h05m, 2d3h. */
export function formatElapsed(seconds: number): string {
  const s = Math.round(Number.isFinite(seconds) ? Math.max(0, seconds) : 0);
  if (s < 60) return `${s}s`;
  if (s < 3600) return s % 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s / 60}m`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return m ? `${Math.floor(s / 3600)}h${String(m).padStart(2, '0')}m` : `${Math.floor(s / 3600)}h`;
  }
  const h = Math.floor((s % 86400) / 3600);
  return h ? `${Math.floor(s / 86400)}d${h}h` : `${Math.floor(s / 86400)}d`;
}

/** A count short enough for an axis: 950, 1.5k, 20k, 3.2M. */
export function formatCompact(value: number): string {
  if (!Number.isFinite(value)) return '';
  const abs = Math.abs(value);
  const short = (n: number, unit: string) => `${Number(n.toPrecision(3))}${unit}`;
  if (abs >= 1e9) return short(value / 1e9, 'G');
  if (abs >= 1e6) return short(value / 1e6, 'M');
  if (abs >= 1e3) return short(value / 1e3, 'k');
  return String(Number(value.toPrecision(3)));
}

export interface Point {
  x: number;
  y: number;
}

const round = (n: number) => Math.round(n * 10) / 10;

/** An SVG path through the points, in order ("" for none). */
export function linePath(points: readonly Point[], x: Scale, y: Scale): string {
  return points.map((p, i) => `${i === 0 ? 'M' : 'L'}${round(x(p.x))},${round(y(p.y))}`).join(' ');
}

/**
 * A step path: each point's value holds from the previous point's x to its own (so a rate
 * measured over an interval is drawn across that interval). The first point starts at `from`.
 */
export function stepPath(points: readonly Point[], x: Scale, y: Scale, from: number): string {
  let previous = from;
  const parts: string[] = [];
  for (const p of points) {
    parts.push(`${parts.length === 0 ? 'M' : 'L'}${round(x(previous))},${round(y(p.y))}`, `L${round(x(p.x))},${round(y(p.y))}`);
    previous = p.x;
  }
  return parts.join(' ');
}

/** A labelled vertical line at a time: a decision on the chart. */
export interface Marker {
  x: number;
  label: string;
  /** Shown on hover (an SVG <title>). */
  title: string;
  kind: string;
}

export interface Series {
  points: Point[];
  /** `step`: each value holds over the interval before its point. (Default: line) */
  shape?: 'line' | 'step';
  /** Where a step series' first interval begins. (Default: 0) */
  stepFrom?: number;
  className: string;
  label: string;
}

/** A shaded span of time, e.g. a pause. */
export interface Band {
  from: number;
  to: number;
  kind: string;
  title: string;
}

export interface LineChartOptions {
  title: string;
  /** Seconds since the migration started, 0 to xEnd. */
  xEnd: number;
  series: Series[];
  /** A horizontal reference line, e.g. the estimated rows. */
  reference?: { y: number; label: string };
  markers?: Marker[];
  bands?: Band[];
  yLabel: string;
  /** Said inside the chart when no series has a point. */
  emptyText?: string;
  width?: number;
  height?: number;
}

export const CHART_MARGIN = { top: 28, right: 24, bottom: 34, left: 64 };

/** A line chart over elapsed time, as an <svg> element. */
export function lineChart(options: LineChartOptions): string {
  const { width = 960, height = 240, series, markers = [], bands = [] } = options;
  const m = CHART_MARGIN;
  const xTicks = timeTicks(options.xEnd);
  const xEnd = xTicks[xTicks.length - 1]!;
  const values = series.flatMap((s) => s.points.map((p) => p.y)).filter(Number.isFinite);
  if (options.reference && Number.isFinite(options.reference.y)) values.push(options.reference.y);
  const yTicks = niceTicks(0, Math.max(0, ...values), 4);
  const x = linearScale([0, xEnd], [m.left, width - m.right]);
  const y = linearScale([yTicks[0]!, yTicks[yTicks.length - 1]!], [height - m.bottom, m.top]);
  const parts = [
    `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(options.title)}">`,
    `<title>${escapeHtml(options.title)}</title>`,
    `<text class="chart-title" x="${m.left}" y="16">${escapeHtml(options.title)}</text>`,
  ];
  for (const band of bands) {
    const x0 = round(x(band.from));
    parts.push(
      `<rect class="band band-${escapeHtml(band.kind)}" x="${x0}" y="${m.top}" width="${Math.max(1, round(x(band.to) - x0))}" height="${height - m.bottom - m.top}"><title>${escapeHtml(band.title)}</title></rect>`,
    );
  }
  for (const t of yTicks) {
    parts.push(
      `<line class="grid" x1="${m.left}" x2="${width - m.right}" y1="${round(y(t))}" y2="${round(y(t))}"/>`,
      `<text class="tick" x="${m.left - 6}" y="${round(y(t)) + 4}" text-anchor="end">${escapeHtml(formatCompact(t))}</text>`,
    );
  }
  for (const t of xTicks) {
    parts.push(`<text class="tick" x="${round(x(t))}" y="${height - m.bottom + 16}" text-anchor="middle">${escapeHtml(formatElapsed(t))}</text>`);
  }
  parts.push(
    `<line class="axis" x1="${m.left}" x2="${width - m.right}" y1="${height - m.bottom}" y2="${height - m.bottom}"/>`,
    `<line class="axis" x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${height - m.bottom}"/>`,
    `<text class="axis-label" x="${m.left - 6}" y="${m.top - 8}" text-anchor="end">${escapeHtml(options.yLabel)}</text>`,
    `<text class="axis-label" x="${width - m.right}" y="${height - 4}" text-anchor="end">time since start</text>`,
  );
  if (options.reference && Number.isFinite(options.reference.y)) {
    const ry = round(y(options.reference.y));
    parts.push(
      `<line class="reference" x1="${m.left}" x2="${width - m.right}" y1="${ry}" y2="${ry}"/>`,
      // At the left, where the run starts: decisions tend to come later.
      `<text class="reference-label" x="${m.left + 4}" y="${ry - 4}">${escapeHtml(options.reference.label)}</text>`,
    );
  }
  for (const s of series) {
    if (s.points.length === 0) continue;
    const d = s.shape === 'step' ? stepPath(s.points, x, y, s.stepFrom ?? 0) : linePath(s.points, x, y);
    parts.push(`<path class="series ${escapeHtml(s.className)}" d="${d}"><title>${escapeHtml(s.label)}</title></path>`);
    if (s.points.length === 1 && s.shape !== 'step') {
      parts.push(`<circle class="series-dot ${escapeHtml(s.className)}" cx="${round(x(s.points[0]!.x))}" cy="${round(y(s.points[0]!.y))}" r="3"/>`);
    }
  }
  if (values.length === 0 && options.emptyText) {
    parts.push(`<text class="empty" x="${width / 2}" y="${height / 2}" text-anchor="middle">${escapeHtml(options.emptyText)}</text>`);
  }
  parts.push(...markerLines(markers, x, m.top, height - m.bottom));
  parts.push('</svg>');
  return parts.join('\n');
}

/** Vertical lines with their labels written upwards beside them, so close markers stay legible. */
function markerLines(markers: readonly Marker[], x: Scale, top: number, bottom: number, labelled = true): string[] {
  return markers.map((marker) => {
    const mx = round(x(marker.x));
    return [
      `<g class="marker marker-${escapeHtml(marker.kind)}">`,
      `<title>${escapeHtml(marker.title)}</title>`,
      `<line x1="${mx}" x2="${mx}" y1="${top}" y2="${bottom}"/>`,
      labelled ? `<text class="marker-label" transform="translate(${mx + 4},${top + 4}) rotate(90)">${escapeHtml(marker.label)}</text>` : '',
      '</g>',
    ].join('');
  });
}

export interface Bar {
  label: string;
  from: number;
  to: number;
  /** Still running: drawn open-ended. */
  open: boolean;
  className: string;
  title: string;
}

/** Horizontal bars on a shared time axis, one row each: the phase timeline. */
export function timelineChart(options: { title: string; xEnd: number; bars: Bar[]; markers?: Marker[]; width?: number }): string {
  const { width = 960, bars, markers = [] } = options;
  const m = { ...CHART_MARGIN, left: 170 };
  const rowHeight = 22;
  const height = m.top + m.bottom + Math.max(1, bars.length) * rowHeight;
  const xTicks = timeTicks(options.xEnd);
  const x = linearScale([0, xTicks[xTicks.length - 1]!], [m.left, width - m.right]);
  const parts = [
    `<svg class="chart timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(options.title)}">`,
    `<title>${escapeHtml(options.title)}</title>`,
    `<text class="chart-title" x="${m.left}" y="16">${escapeHtml(options.title)}</text>`,
  ];
  for (const t of xTicks) {
    parts.push(
      `<line class="grid" x1="${round(x(t))}" x2="${round(x(t))}" y1="${m.top}" y2="${height - m.bottom}"/>`,
      `<text class="tick" x="${round(x(t))}" y="${height - m.bottom + 16}" text-anchor="middle">${escapeHtml(formatElapsed(t))}</text>`,
    );
  }
  if (bars.length === 0) {
    parts.push(`<text class="empty" x="${(m.left + width - m.right) / 2}" y="${m.top + rowHeight / 2 + 4}" text-anchor="middle">no phases recorded yet</text>`);
  }
  bars.forEach((bar, i) => {
    const top = m.top + i * rowHeight;
    const x0 = round(x(bar.from));
    // A phase too short to see still gets a sliver.
    const w = Math.max(2, round(x(bar.to) - x0));
    parts.push(
      `<g class="bar ${escapeHtml(bar.className)}${bar.open ? ' open' : ''}">`,
      `<title>${escapeHtml(bar.title)}</title>`,
      `<text class="bar-label" x="${m.left - 8}" y="${top + rowHeight / 2 + 4}" text-anchor="end">${escapeHtml(bar.label)}</text>`,
      `<rect x="${x0}" y="${top + 3}" width="${w}" height="${rowHeight - 6}" rx="3"/>`,
      '</g>',
    );
  });
  parts.push(`<line class="axis" x1="${m.left}" x2="${width - m.right}" y1="${height - m.bottom}" y2="${height - m.bottom}"/>`);
  // Unlabelled here: the charts above name them, and the bar labels need the room.
  parts.push(...markerLines(markers, x, m.top, height - m.bottom, false));
  parts.push('</svg>');
  return parts.join('\n');
}
