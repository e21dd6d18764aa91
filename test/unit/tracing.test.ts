/** Tracing is on only with an OTLP endpoint, and costs nothing otherwise. */
import { describe, expect, it } from 'vitest';
import { clientTracing, tracingEnabled, workerTracing } from '../../workers/tracing';

describe('tracing settings', () => {
  it('turns on with either OTLP endpoint variable, and off with OTEL_SDK_DISABLED', () => {
    expect(tracingEnabled({})).toBe(false);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' })).toBe(false);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(true);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' })).toBe(false);
  });

  it('gives no interceptors at all without an endpoint', () => {
    expect(workerTracing({})).toBeNull();
    expect(clientTracing({})).toBeNull();
  });
});
