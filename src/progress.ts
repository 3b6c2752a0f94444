/**
 * Progress display shared by long commands (training, search, sweeps).
 *
 * - On a terminal (the stream is a TTY and --json is off): a live cli-progress bar, e.g.
 *     `search [=========-----------] 200/401 | phase pruning | compression 12.3x | accuracy 98.1%`
 *   with `log()` lines printed above it.
 * - Otherwise (a pipe, a log file, CI, or --json): plain lines, no escape codes, at most one every `intervalMs`
 *   (default 10 s) plus one whenever the phase changes, each `log()` line, and a last line on `stop()`.
 *
 * Progress never goes to stdout: stdout is kept for a command's result (with --json, the one final JSON object).
 * With --json the display is therefore the plain-line mode on stderr, so logs of unattended runs stay useful;
 * pass `quiet: true` to silence it entirely.
 */
import type { Writable } from 'node:stream';
import cliProgress from 'cli-progress';

export type ProgressFields = Record<string, string | number | boolean | null | undefined>;

export interface ProgressOptions {
  /** The value that means "done" (iterations, runs, ...). */
  total: number;
  /** Shown first on every line / before the bar. */
  label?: string;
  /** The command's --json: never draws the live bar (plain lines on the stream instead). */
  json?: boolean;
  /** Where progress goes (default process.stderr). process.stdout is refused. */
  stream?: Writable & { isTTY?: boolean; columns?: number };
  /** Draw the live bar: default `stream.isTTY && !json`. */
  tty?: boolean;
  /** Plain-line mode: minimum time between two progress lines (default 10,000 ms). */
  intervalMs?: number;
  /** Nothing at all (log() lines included). */
  quiet?: boolean;
  /** Formats one field for display (default: numbers get a few significant digits, see formatField). */
  formatField?: (name: string, value: ProgressFields[string]) => string;
  /** Clock for tests (default Date.now). */
  now?: () => number;
}

export interface Progress {
  /** Sets the current value and (merged) fields. A change of the `phase` field forces a plain line. */
  update(value: number, fields?: ProgressFields): void;
  /** Changes the total (e.g. when a phase with its own length begins). */
  setTotal(total: number): void;
  /** A line of its own (above the bar on a terminal). */
  log(line: string): void;
  /** Ends the display (prints a last plain line, or leaves the bar's final state on screen). Idempotent. */
  stop(): void;
  /** 'bar' | 'lines' | 'quiet' — which mode was chosen. */
  readonly mode: 'bar' | 'lines' | 'quiet';
}

/** Default field formatting: `accuracy 0.981` → `accuracy 98.10%`, `compression 12.345` → `compression 12.3x`. */
export function formatField(name: string, value: ProgressFields[string]): string {
  if (value === undefined || value === null || value === '') return '';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return '';
    if (/accuracy|acc$/i.test(name) && value >= 0 && value <= 1) return `${name} ${(value * 100).toFixed(2)}%`;
    if (/compression/i.test(name)) return `${name} ${value.toFixed(value >= 100 ? 0 : 1)}x`;
    if (Number.isInteger(value)) return `${name} ${value}`;
    return `${name} ${Number(value.toPrecision(4))}`;
  }
  return `${name} ${String(value)}`;
}

export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  if (stream === process.stdout) throw new Error('createProgress: progress must not go to stdout (stdout holds the result)');
  const label = opts.label ?? '';
  const intervalMs = opts.intervalMs ?? 10_000;
  const now = opts.now ?? Date.now;
  const fmt = opts.formatField ?? formatField;
  let total = Math.max(0, opts.total);
  let value = 0;
  const fields: ProgressFields = {};
  let stopped = false;

  const fieldText = () =>
    Object.entries(fields)
      .map(([k, v]) => fmt(k, v))
      .filter((s) => s.length > 0)
      .join(' | ');

  if (opts.quiet) {
    return {
      mode: 'quiet',
      update: (n, f) => {
        value = n;
        Object.assign(fields, f ?? {});
      },
      setTotal: (t) => void (total = t),
      log: () => {},
      stop: () => {},
    };
  }

  const tty = opts.tty ?? (Boolean(stream.isTTY) && !opts.json);
  if (tty) {
    const multi = new cliProgress.MultiBar(
      {
        stream: stream as unknown as NodeJS.WritableStream,
        format: (options, params, payload: { text?: string }) => {
          const size = options.barsize ?? 24;
          const done = Math.round(Math.max(0, Math.min(1, params.progress)) * size);
          const bar = '='.repeat(done) + '-'.repeat(size - done);
          const head = label ? `${label} ` : '';
          return `${head}[${bar}] ${params.value}/${params.total}${payload.text ? ` | ${payload.text}` : ''}`;
        },
        barsize: 24,
        hideCursor: null,
        clearOnComplete: false,
        stopOnComplete: false,
        fps: 5,
        // cli-progress checks the TTY itself; we already decided.
        noTTYOutput: true,
        linewrap: false,
        gracefulExit: false,
      },
      cliProgress.Presets.legacy,
    );
    const bar = multi.create(total, 0, { text: '' });
    return {
      mode: 'bar',
      update: (n, f) => {
        if (stopped) return;
        value = n;
        Object.assign(fields, f ?? {});
        bar.update(Math.min(n, total), { text: fieldText() });
      },
      setTotal: (t) => {
        total = Math.max(0, t);
        bar.setTotal(total);
      },
      log: (line) => {
        if (stopped) {
          stream.write(line.endsWith('\n') ? line : line + '\n');
          return;
        }
        multi.log(line.endsWith('\n') ? line : line + '\n');
        multi.update();
      },
      stop: () => {
        if (stopped) return;
        stopped = true;
        bar.update(Math.min(value, total), { text: fieldText() });
        multi.stop();
      },
    };
  }

  let lastAt = -Infinity;
  let lastPhase: unknown = undefined;
  let lastLine = '';
  const line = () => {
    const head = label ? `${label}: ` : '';
    const f = fieldText();
    return `${head}${value}/${total}${f ? ` | ${f}` : ''}`;
  };
  const emit = () => {
    const l = line();
    if (l === lastLine) return;
    stream.write(l + '\n');
    lastLine = l;
    lastAt = now();
  };
  return {
    mode: 'lines',
    update: (n, f) => {
      if (stopped) return;
      value = n;
      Object.assign(fields, f ?? {});
      const phaseChanged = 'phase' in fields && fields.phase !== lastPhase;
      lastPhase = fields.phase;
      if (phaseChanged || now() - lastAt >= intervalMs) emit();
    },
    setTotal: (t) => void (total = Math.max(0, t)),
    log: (l) => void stream.write(l.endsWith('\n') ? l : l + '\n'),
    stop: () => {
      if (stopped) return;
      stopped = true;
      emit();
    },
  };
}
