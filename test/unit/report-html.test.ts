/** The HTML report: chart scales, ticks and paths, the series it charts, and escaping. */
import { describe, expect, it } from 'vitest';
import { escapeHtml, formatCompact, formatElapsed, linePath, linearScale, niceTicks, stepPath, timeTicks } from '../../cli/chart';
import { migrationRecord, recordMarkdown } from '../../cli/report';
import { decisionDetail } from '../../cli/phase-story';
import { decisionMarkers, pauseBands, progressOf, rateSeries, recordHtml, sampleSeries, timeSpan, withPauses } from '../../cli/report-html';
import { newMigrationStatus, type MigrationEvent, type MigrationStatus, type ProgressSample } from '../../lib/status';

const T0 = Date.parse('2025-03-01T10:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();

function statusWith(overrides: Partial<MigrationStatus> = {}): MigrationStatus {
  const table = (name: string, estimatedRows: number | null) => ({ name, exists: true, columns: [], estimatedRows, keyType: 'integer', keyIsUnique: true });
  return {
    ...newMigrationStatus({
      migrationId: 'ferry/split-names/2025-03-01T10:00:00Z',
      planName: 'split-names',
      execute: true,
      startedAt: at(0),
      throttle: { rowsPerSecond: null, batchSize: 1000, concurrency: 1 },
    }),
    phase: 'completed',
    finishedAt: at(60),
    inspection: { source: table('public.users', 10_000), target: table('public.users_v2', 0), sameDatabase: true, sample: null, problems: [], warnings: [] },
    phases: [
      { name: 'backfill', startedAt: at(1), endedAt: at(50) },
      { name: 'gate:cutover-reads', startedAt: at(50), endedAt: at(58) },
      { name: 'cleanup', startedAt: at(58), endedAt: at(60) },
    ],
    rowsRead: 10_000,
    rowsWritten: 9_990,
    ...overrides,
  };
}

const sample = (seconds: number, rowsRead: number, batchSize = 100): ProgressSample => ({ at: at(seconds), rowsRead, batchSize });

describe('scales and ticks', () => {
  it('maps a domain linearly onto a range, inverted ranges included', () => {
    const x = linearScale([0, 100], [50, 950]);
    expect([x(0), x(50), x(100)]).toEqual([50, 500, 950]);
    const y = linearScale([0, 1000], [200, 20]);
    expect([y(0), y(500), y(1000)]).toEqual([200, 110, 20]);
  });

  it('never returns NaN: an empty domain or a value that is not a number maps to the range start', () => {
    const flat = linearScale([5, 5], [10, 90]);
    expect(flat(5)).toBe(10);
    expect(flat(7)).toBe(10);
    expect(linearScale([0, NaN], [10, 90])(3)).toBe(10);
    expect(linearScale([0, 10], [10, 90])(NaN)).toBe(10);
  });

  it('picks round ticks that cover the values', () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0, 950, 4)).toEqual([0, 500, 1000]);
    expect(niceTicks(0, 0.3, 3)).toEqual([0, 0.1, 0.2, 0.3]);
    expect(niceTicks(0, 0)).toEqual([0, 1]);
    expect(niceTicks(NaN, NaN)).toEqual([0, 1]);
    expect(niceTicks(0, 20_500, 4)).toEqual([0, 10_000, 20_000, 30_000]);
  });

  it('puts time ticks at steps a clock reads well', () => {
    expect(timeTicks(90)).toEqual([0, 15, 30, 45, 60, 75, 90]);
    expect(timeTicks(3 * 3600)).toEqual([0, 1800, 3600, 5400, 7200, 9000, 10800]);
    expect(timeTicks(0)).toEqual([0, 1]);
    expect(timeTicks(NaN)).toEqual([0, 1]);
    expect(timeTicks(7)).toEqual([0, 2, 4, 6, 8]);
  });

  it('formats elapsed time and counts for axes', () => {
    expect([0, 45, 60, 150, 3600, 3900, 90_000, NaN].map(formatElapsed)).toEqual(['0s', '45s', '1m', '2m30s', '1h', '1h05m', '1d1h', '0s']);
    expect([0, 950, 1500, 20_000, 3_250_000, 0.25].map(formatCompact)).toEqual(['0', '950', '1.5k', '20k', '3.25M', '0.25']);
  });
});

describe('paths', () => {
  const x = linearScale([0, 10], [0, 100]);
  const y = linearScale([0, 100], [100, 0]);

  it('draws a line through the points in order, and nothing for none', () => {
    expect(linePath([{ x: 0, y: 0 }, { x: 5, y: 50 }, { x: 10, y: 100 }], x, y)).toBe('M0,100 L50,50 L100,0');
    expect(linePath([], x, y)).toBe('');
  });

  it('draws each step over the interval before its point', () => {
    expect(stepPath([{ x: 4, y: 10 }, { x: 10, y: 30 }], x, y, 2)).toBe('M20,90 L40,90 L40,70 L100,70');
    expect(stepPath([], x, y, 0)).toBe('');
  });
});

describe('charted series', () => {
  it('computes rows/s from differences between consecutive samples', () => {
    const samples = [sample(2, 0), sample(4, 1000), sample(8, 3000), sample(8, 3000), sample(10, 3000)];
    expect(rateSeries(samples, at(0))).toEqual([
      { x: 4, y: 500 },
      { x: 8, y: 500 },
      // A sample at the same time is left out rather than divided by zero.
      { x: 10, y: 0 },
    ]);
    expect(rateSeries([], at(0))).toEqual([]);
    expect(rateSeries([sample(2, 100)], at(0))).toEqual([]);
  });

  it('anchors progress at the backfill start and end, so the last rows are on the chart', () => {
    const record = migrationRecord(statusWith({ samples: [sample(3, 500), sample(5, 4000)] }));
    expect(progressOf(record)).toEqual([
      { at: at(1), rowsRead: 0 },
      { at: at(3), rowsRead: 500 },
      { at: at(5), rowsRead: 4000 },
      { at: at(50), rowsRead: 10_000 },
    ]);
    expect(progressOf(migrationRecord(statusWith()))).toEqual([{ at: at(1), rowsRead: 0 }, { at: at(50), rowsRead: 10_000 }]);
    // Still backfilling: no end yet; no backfill at all: the samples alone.
    const running = statusWith({ phases: [{ name: 'backfill', startedAt: at(1), endedAt: null }], samples: [sample(3, 500)] });
    expect(progressOf(migrationRecord(running))).toEqual([{ at: at(1), rowsRead: 0 }, { at: at(3), rowsRead: 500 }]);
    expect(progressOf(migrationRecord(statusWith({ phases: [], samples: [sample(3, 500)] })))).toEqual([{ at: at(3), rowsRead: 500 }]);
  });

  it('charts rows read and batch size against seconds since the start', () => {
    const samples = [sample(2, 0, 100), sample(4, 1000, 400)];
    expect(sampleSeries(samples, at(0), 'rowsRead')).toEqual([{ x: 2, y: 0 }, { x: 4, y: 1000 }]);
    expect(sampleSeries(samples, at(0), 'batchSize')).toEqual([{ x: 2, y: 100 }, { x: 4, y: 400 }]);
  });

  it('marks every decision, flags, retries and verifications included, numbered as in the decisions table', () => {
    const events: MigrationEvent[] = [
      { at: at(10), kind: 'throttle', by: 'alice', detail: 'rowsPerSecond 400 -> 5000 (night)' },
      { at: at(12), kind: 'flags', by: 'ferry', detail: 'dual writes on' },
      { at: at(20), kind: 'pause', by: 'bob', detail: 'deploy' },
      { at: at(25), kind: 'resume', by: null, detail: 'resumed' },
      { at: at(40), kind: 'approve', by: 'carol', detail: 'gate cutover-reads approved' },
      { at: at(45), kind: 'abort', by: 'dave', detail: 'wrong target' },
      { at: at(46), kind: 'retry', by: 'erin', detail: 'retried 3 rows' },
      { at: at(47), kind: 'verify', by: 'ferry', detail: 'pass 1: 10 rows checked' },
    ];
    const markers = decisionMarkers(events, at(0));
    expect(markers.map((m) => [m.x, m.label])).toEqual([
      [10, '1 throttle'],
      [12, '2 flags'],
      [20, '3 pause'],
      [25, '4 resume'],
      [40, '5 approve'],
      [45, '6 abort'],
      [46, '7 retry'],
      [47, '8 verify'],
    ]);
    expect(markers[0]!.title).toBe(`1. ${at(10)} throttle by alice: rowsPerSecond 400 -> 5000 (night)`);
  });

  it('keeps the rows-read line flat and the rate at zero across a pause, instead of a slope between its samples', () => {
    // 1,000 rows in the 4 s of copying around a 100 s pause: 250 rows/s, not 1,000 / 104 s.
    const progress = [sample(10, 0), sample(12, 500), sample(116, 1500)].map(({ at, rowsRead }) => ({ at, rowsRead }));
    const bands = [{ from: 14, to: 114, kind: 'paused', title: 'paused: deploy' }];
    const cut = withPauses(progress, at(0), bands);
    expect(cut).toEqual([progress[0], progress[1], { at: at(14), rowsRead: 1000 }, { at: at(114), rowsRead: 1000 }, progress[2]]);
    expect(rateSeries(cut, at(0))).toEqual([
      { x: 12, y: 250 },
      { x: 14, y: 250 },
      { x: 114, y: 0 },
      { x: 116, y: 250 },
    ]);
    expect(withPauses(progress, at(0), [])).toEqual(progress);
  });

  it('says each decision once: a reason the detail already gives is not repeated', () => {
    expect(decisionDetail({ detail: 'checking replica (checking replica)' })).toBe('checking replica');
    expect(decisionDetail({ detail: 'resumed after: checking replica (checking replica)' })).toBe('resumed after: checking replica');
    expect(decisionDetail({ detail: 'rowsPerSecond 400 -> 5000 (night)' })).toBe('rowsPerSecond 400 -> 5000 (night)');
  });

  it('shades paused spans, from a pause to the next resume or to the end', () => {
    const events: MigrationEvent[] = [
      { at: at(10), kind: 'pause', by: 'bob', detail: 'deploy' },
      { at: at(12), kind: 'pause', by: 'bob', detail: 'again' },
      { at: at(15), kind: 'resume', by: 'bob', detail: 'resumed' },
      { at: at(30), kind: 'auto-pause', by: 'ferry', detail: 'too many failed rows' },
    ];
    expect(pauseBands(events, at(0), 40).map((b) => [b.from, b.to, b.title])).toEqual([
      [10, 15, 'paused: deploy'],
      [30, 40, 'paused: too many failed rows'],
    ]);
    expect(pauseBands([], at(0), 40)).toEqual([]);
  });

  it('spans the run to the latest time the record knows of', () => {
    const running = migrationRecord(statusWith({ finishedAt: null, phase: 'backfilling', phases: [{ name: 'backfill', startedAt: at(1), endedAt: null }], samples: [sample(30, 10)] }));
    expect(timeSpan(running)).toBe(30);
    expect(timeSpan(migrationRecord(statusWith({ phases: [], finishedAt: null })))).toBe(0);
  });
});

describe('the HTML record', () => {
  const throughRun = [sample(2, 0), sample(4, 800), sample(6, 2000, 400), sample(8, 6000, 1000), sample(10, 10_000, 1000)];

  it('has the facts the Markdown record has, and four charts', () => {
    const record = migrationRecord(statusWith({ samples: throughRun, events: [{ at: at(5), kind: 'throttle', by: 'alice', detail: 'batchSize 100 -> 1000' }] }));
    const html = recordHtml(record);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.match(/<svg /g)).toHaveLength(4);
    for (const fact of ['ferry/split-names/2025-03-01T10:00:00Z', 'split-names', 'completed', '10,000', '9,990', 'gate:cutover-reads', 'batchSize 100 -&gt; 1000', 'estimate 10,000']) {
      expect(html).toContain(fact);
    }
    expect(html).toContain('>1 throttle</text>');
    // The Markdown record is unchanged by the charts' fields.
    expect(recordMarkdown(record)).not.toContain('samples');
    expect(JSON.parse(JSON.stringify(record))).toMatchObject({ rows: { estimated: 10_000 }, samples: throughRun });
  });

  it('needs no script and loads nothing', () => {
    const html = recordHtml(migrationRecord(statusWith({ samples: throughRun })));
    expect(html).not.toMatch(/<script|<link|<img|src=|href=|url\(/i);
  });

  it('renders runs with no samples, one sample, and no phases without NaN', () => {
    for (const status of [
      statusWith(),
      statusWith({ samples: [sample(3, 500)] }),
      statusWith({ samples: [sample(3, 500), sample(3, 500)] }),
      statusWith({ phases: [], finishedAt: null, phase: 'inspecting', inspection: null, rowsRead: 0, rowsWritten: 0 }),
    ]) {
      const html = recordHtml(migrationRecord(status));
      expect(html).not.toMatch(/NaN|Infinity|undefined/);
      expect(html.match(/<svg /g)).toHaveLength(4);
    }
    expect(recordHtml(migrationRecord(statusWith({ phases: [] })))).toContain('not enough progress samples to chart');
    // A run too short for a sample still has its backfill's start and end to chart.
    expect(recordHtml(migrationRecord(statusWith()))).toContain('<path class="series rows" d="M');
  });

  it('escapes plan names, event details and who decided', () => {
    const record = migrationRecord(
      statusWith({
        planName: 'names<b>',
        events: [
          { at: at(5), kind: 'pause', by: '"><img src=x onerror=alert(1)>', detail: 'deploy <script>alert("x")</script> & more' },
          { at: at(7), kind: 'abort', by: "o'neil", detail: 'wrong <target>' },
        ],
        abort: { at: at(7), by: "o'neil", reason: '<script>alert(2)</script>', phaseReached: 'backfilling', flagsNote: 'flags <unchanged>' },
        samples: throughRun,
      }),
    );
    const html = recordHtml(record);
    expect(html).not.toMatch(/<script|<img|<b>|<target>|<unchanged>/i);
    expect(html).toContain('deploy &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more');
    expect(html).toContain('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('names&lt;b&gt;');
    expect(html).toContain('o&#39;neil');
    // In the markers' hover titles too.
    expect(html).toContain('<title>1. 2025-03-01T10:00:05.000Z pause by &quot;&gt;&lt;img src=x onerror=alert(1)&gt;: deploy &lt;script&gt;');
  });

  it('escapes every character that matters in content and attributes', () => {
    expect(escapeHtml(`<a href="x" title='y'>&amp;</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
  });
});
