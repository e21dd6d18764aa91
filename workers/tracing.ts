/**
 * OpenTelemetry tracing through Temporal's own interceptors, on only when an OTLP endpoint is
 * configured (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): spans of the
 * CLI's calls, of workflows and of activities, linked into one trace, sent over OTLP/HTTP (JSON).
 * Unset, nothing here is loaded. Spans carry names and ids only (workflow, run, activity), never
 * arguments or results; an activity's error reaches its span already redacted (the tracing
 * interceptor runs outside the redacting one).
 */
import type * as otel from '@opentelemetry/api';
import type * as OtlpHttpExports from '@opentelemetry/exporter-trace-otlp-http';
import type * as ResourcesExports from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import type * as TraceBaseExports from '@opentelemetry/sdk-trace-base';
import type { BasicTracerProvider, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type * as TemporalClientTracingExports from '@temporalio/interceptors-opentelemetry/lib/client';
import type * as TemporalWorkerTracingExports from '@temporalio/interceptors-opentelemetry/lib/worker';
import type { ActivityInterceptorsFactory, InjectedSinks } from '@temporalio/worker';
import type { WorkflowClientInterceptor } from '@temporalio/client';
import { AsyncLocalStorage } from 'node:async_hooks';

/* eslint-disable @typescript-eslint/no-require-imports -- loaded only when tracing is on */

/** Whether an OTLP endpoint is configured (and OTEL_SDK_DISABLED does not turn tracing off). */
export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** The module whose interceptors go into the workflow bundle of a traced worker. */
export function workflowTracingModule(): string {
  return require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');
}

interface Tracer {
  tracer: otel.Tracer;
  provider: BasicTracerProvider;
  processor: SpanProcessor;
  resource: Resource;
}

/**
 * Span context follows async calls, so that the client's span is the parent of the headers it
 * sends and an activity's span of what it starts. (@opentelemetry/context-async-hooks does this
 * too; AsyncLocalStorage alone is enough here.)
 */
class AsyncLocalContextManager implements otel.ContextManager {
  private readonly storage = new AsyncLocalStorage<otel.Context>();
  constructor(private readonly root: otel.Context) {}
  active(): otel.Context {
    return this.storage.getStore() ?? this.root;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(context: otel.Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.storage.run(context, () => fn.call(thisArg, ...args));
  }
  bind<T>(context: otel.Context, target: T): T {
    if (typeof target !== 'function') return target;
    const run = (self: unknown, args: unknown[]) => this.with(context, () => (target as (...a: unknown[]) => unknown).apply(self, args));
    return function (this: unknown, ...args: unknown[]) {
      return run(this, args);
    } as T;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.storage.disable();
    return this;
  }
}

function startTracer(defaultServiceName: string, env: NodeJS.ProcessEnv): Tracer {
  const api = require('@opentelemetry/api') as typeof otel;
  const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base') as typeof TraceBaseExports;
  const { Resource } = require('@opentelemetry/resources') as typeof ResourcesExports;
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof OtlpHttpExports;
  const resource = new Resource({ 'service.name': env.OTEL_SERVICE_NAME?.trim() || defaultServiceName });
  // The exporter reads the endpoint, headers and timeout from the standard OTEL_EXPORTER_OTLP_*
  // variables; this exporter speaks JSON.
  const processor = new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 1000 });
  const provider = new BasicTracerProvider({ resource, spanProcessors: [processor] });
  // Global, as Temporal's interceptors propagate context through the global propagator (W3C).
  provider.register({ contextManager: new AsyncLocalContextManager(api.ROOT_CONTEXT) });
  return { tracer: provider.getTracer('ferry'), provider, processor, resource };
}

export interface WorkerTracing {
  activity: ActivityInterceptorsFactory;
  workflowModules: string[];
  sinks: InjectedSinks<Record<string, never>>;
  /** Sends the spans still held; safe to call twice. */
  shutdown(): Promise<void>;
}

/** The worker's tracing, or null when no OTLP endpoint is configured. */
export function workerTracing(env: NodeJS.ProcessEnv = process.env): WorkerTracing | null {
  if (!tracingEnabled(env)) return null;
  const { tracer, provider, processor, resource } = startTracer('ferry-worker', env);
  const worker = require('@temporalio/interceptors-opentelemetry/lib/worker') as typeof TemporalWorkerTracingExports;
  return {
    activity: (ctx) => ({ inbound: new worker.OpenTelemetryActivityInboundInterceptor(ctx, { tracer }), outbound: new worker.OpenTelemetryActivityOutboundInterceptor(ctx) }),
    workflowModules: [workflowTracingModule()],
    sinks: { exporter: withInfoAttributes(worker.makeWorkflowExporter(processor, resource)) } as unknown as InjectedSinks<Record<string, never>>,
    shutdown: once(() => within(WORKER_FLUSH_MS, provider.shutdown())),
  };
}

/**
 * The workflow facts a workflow span may carry. Temporal's exporter would copy the whole
 * WorkflowInfo onto each span, memo, search attributes, last result and last failure included.
 */
const SPAN_WORKFLOW_INFO = ['workflowId', 'runId', 'workflowType', 'taskQueue', 'namespace', 'attempt', 'firstExecutionRunId', 'continuedFromExecutionRunId'] as const;

type WorkflowExporterSink = ReturnType<typeof TemporalWorkerTracingExports.makeWorkflowExporter>;

function withInfoAttributes(sink: WorkflowExporterSink): WorkflowExporterSink {
  const { fn } = sink.export;
  return {
    export: {
      ...sink.export,
      fn: (info, spans) => {
        const kept = Object.fromEntries(SPAN_WORKFLOW_INFO.flatMap((key) => (info[key] === undefined ? [] : [[key, info[key]]])));
        return fn(kept as unknown as typeof info, spans);
      },
    },
  };
}

export interface ClientTracing {
  workflow: WorkflowClientInterceptor[];
  shutdown(): Promise<void>;
}

/** The CLI's tracing, or null when no OTLP endpoint is configured. */
export function clientTracing(env: NodeJS.ProcessEnv = process.env): ClientTracing | null {
  if (!tracingEnabled(env)) return null;
  const { tracer, provider } = startTracer('ferry-cli', env);
  const client = require('@temporalio/interceptors-opentelemetry/lib/client') as typeof TemporalClientTracingExports;
  // A command waits a moment at most for a collector that does not answer, never the exporter's 10 s.
  return { workflow: [new client.OpenTelemetryWorkflowClientInterceptor({ tracer })], shutdown: once(() => within(CLI_FLUSH_MS, provider.shutdown())) };
}

/** How long a worker that stops may wait to send its last spans. */
const WORKER_FLUSH_MS = 5000;
/** How long a CLI command may wait at its end to send its spans. */
const CLI_FLUSH_MS = 2000;

function within(ms: number, work: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms).unref()));
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

function once(run: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= run().catch(() => {}));
}
