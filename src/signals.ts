/**
 * Stopping long work from the terminal: the first SIGINT or SIGTERM aborts the returned signal (its reason is the
 * signal's name) so that the work can save its state and stop; a second one exits at once, as an impatient user
 * expects.
 */
export interface StopSignals {
  signal: AbortSignal;
  /** The signal that was received, if any. */
  received(): NodeJS.Signals | null;
  dispose(): void;
}

export function onStopSignals(onFirst?: (s: NodeJS.Signals) => void): StopSignals {
  const abort = new AbortController();
  let got: NodeJS.Signals | null = null;
  const handler = (s: NodeJS.Signals) => {
    if (got) process.exit(s === 'SIGTERM' ? 143 : 130);
    got = s;
    onFirst?.(s);
    abort.abort(s);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: abort.signal,
    received: () => got,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
