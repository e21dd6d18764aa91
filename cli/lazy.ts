/**
 * Modules the CLI loads on first use, so that `ferry --help` starts without the Temporal SDK:
 * commands import these loaders, never the modules, at their top.
 */
import type * as TemporalClientExports from '@temporalio/client';
import type * as PlansExports from '../lib/plan';
import type * as OperatorExports from '../operator';
import type * as TemporalConnectionExports from '../workers/temporal-connection';
import type * as PayloadCodecExports from '../workers/payload-codec';
import type * as TracingExports from '../workers/tracing';
import type * as RenderExports from './render';
import type * as WatchExports from './watch';
import type * as TemporalHealthExports from './temporal-health';

/** The value `load` returns, loaded on the first call and kept. */
export function lazy<T>(load: () => T): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= load());
}

/* eslint-disable @typescript-eslint/no-require-imports */
export const temporalClientModule = lazy(() => require('@temporalio/client') as typeof TemporalClientExports);
export const operatorModule = lazy(() => require('../operator') as typeof OperatorExports);
export const plansModule = lazy(() => require('../lib/plan') as typeof PlansExports);
export const temporalConnectionModule = lazy(() => require('../workers/temporal-connection') as typeof TemporalConnectionExports);
export const payloadCodecModule = lazy(() => require('../workers/payload-codec') as typeof PayloadCodecExports);
export const tracingModule = lazy(() => require('../workers/tracing') as typeof TracingExports);
export const renderModule = lazy(() => require('./render') as typeof RenderExports);
export const watchModule = lazy(() => require('./watch') as typeof WatchExports);
export const temporalHealthModule = lazy(() => require('./temporal-health') as typeof TemporalHealthExports);
/* eslint-enable @typescript-eslint/no-require-imports */
