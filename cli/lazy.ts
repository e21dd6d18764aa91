/** Modules the CLI loads on first use, so that `ferry --help` starts without the Temporal SDK. */

/** The value `load` returns, loaded on the first call and kept. */
export function lazy<T>(load: () => T): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= load());
}
