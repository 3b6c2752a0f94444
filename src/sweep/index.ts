/** Library API of sweeps: `sweep(fileOrSpec, opts)` runs or continues one; the rest is for tools built on it. */
export { sweep, resolveSweep, loadSweep, type LoadedSweep, defaultExec, runDirs, type SweepOptions, type SweepEvent, type SweepResult, type ResolvedSweep, type RunState, type Attempt, type RunAction } from './sweep.js';
export { validateSweepSpec, parseSweepText, expandRuns, runId, flagsToArgv, SWEEP_COMMANDS, type SweepSpec, type SweepRun, type Flags, type FlagValue } from './spec.js';
export { buildSummary, summaryRow, summaryCsv, summaryMarkdown, formatDuration, TABLE_COLUMNS, COMPRESS_TABLE_COLUMNS, tableColumns, type SummaryRow, type RunStatus } from './summary.js';
