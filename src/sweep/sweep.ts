/**
 * Resumable sweeps: many `prunus search` or `prunus compress` runs (the sweep's `command`) as child processes,
 * several at once, in one sweep directory.
 *
 *   <sweep>/sweep.json          the resolved sweep (spec, runs with ids and flags), written atomically
 *   <sweep>/runs/<id>/          each run's own run directory (config.json, events.jsonl, report.json, ...)
 *   <sweep>/state/<id>.json     the sweep's record of each attempt (action, pid + start time, exit), atomic
 *   <sweep>/logs/<id>.log       the run's stderr (appended over attempts); logs/<id>.stdout.json its last stdout
 *   <sweep>/summary.{csv,md,json}
 *   <sweep>/sweep.lock          the sweep's lease (foundation/lease.ts), held while a sweep process works on the folder
 *
 * What is on disk decides what happens to a run, so a sweep killed at any moment (SIGKILL included) carries on
 * when started again: report.json present → finished, never run again; config.json without report.json →
 * interrupted, continued with `prunus resume`; otherwise started with `prunus <command>`. A run whose process
 * outlived a killed sweep is waited for, not started twice. Runs that failed are tried again on the next start.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic, writeJsonAtomic } from '../../foundation/atomic.js';
import { UsageError } from '../../foundation/errors.js';
import { processesUsing, sleep } from './procs.js';
import { acquireLease } from '../../foundation/lease.js';
import { identify, isAlive } from '../../foundation/process.js';
import { expandRuns, flagsToArgv, parseSweepText, validateSweepSpec, type Flags, type SweepRun, type SweepSpec } from './spec.js';
import { commandFlagNames, isSweepCommand, sweepCommand } from './commands.js';
import { buildSummary, summaryCsv, summaryMarkdown, type SummaryRow } from './summary.js';

export interface SweepOptions {
  /** Sweep directory (overrides the file's `out`). */
  out?: string;
  /** Runs at once (overrides the file's `parallel`). */
  parallel?: number;
  /** --backend for every run (overrides base.backend). */
  backend?: string;
  /** Cores to plan for (default os.availableParallelism()). */
  cores?: number;
  /**
   * The argv prefix that runs prunus (default: this node binary and the package's bin/prunus.js). Tests point it
   * at a small script that honours the run-directory contract; so does the environment variable
   * PRUNUS_SWEEP_EXEC (a script run with this node binary).
   */
  exec?: string[];
  /** Extra environment for the runs. */
  env?: Record<string, string>;
  /** Aborting stops the running runs (SIGTERM; they stay resumable) and returns what is done. */
  signal?: AbortSignal;
  onEvent?: (e: SweepEvent) => void;
  /** How often to look at runs of an earlier sweep process that are still going (default 500 ms). */
  pollMs?: number;
}

/** How a run was started: its command (a fresh run) or `resume` (an interrupted one). */
export type RunAction = 'search' | 'compress' | 'resume';

export type SweepEvent =
  | { type: 'start'; name: string; dir: string; total: number; finished: number; parallel: number; workers: number }
  | { type: 'skip'; id: string; reason: 'finished' }
  | { type: 'run-start'; id: string; action: RunAction; attempt: number; pid: number }
  | { type: 'run-wait'; id: string; pid: number }
  | { type: 'run-end'; id: string; status: 'finished' | 'failed' | 'interrupted'; code: number | null; signal: string | null; error?: string; wallMs: number }
  | { type: 'done'; finished: number; failed: number; pending: number; interrupted: boolean };

export interface SweepResult {
  name: string;
  dir: string;
  rows: SummaryRow[];
  finished: number;
  failed: number;
  /** Runs neither finished nor failed (only when the sweep was aborted). */
  pending: number;
  interrupted: boolean;
  files: { sweep: string; csv: string; markdown: string; json: string };
}

/** One attempt at a run, as recorded in state/<id>.json. */
export interface Attempt {
  n: number;
  action: RunAction | 'wait';
  pid: number;
  start: number | null;
  startedAt: string;
  endedAt?: string;
  code?: number | null;
  signal?: string | null;
  result?: 'finished' | 'failed' | 'interrupted' | 'gone';
  error?: string;
}

export interface RunState {
  id: string;
  flags: Flags;
  attempts: Attempt[];
}

/** The resolved sweep as written to <sweep>/sweep.json. */
export interface ResolvedSweep {
  prunusSweep: 1;
  name: string;
  command: string;
  source: string | null;
  spec: SweepSpec;
  parallel: number;
  workers: number;
  cores: number;
  runs: (SweepRun & { dir: string; argv: string[] })[];
}

const SWEEP_FILE = 'sweep.json';

function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(d, 'package.json');
    if (existsSync(p)) {
      try {
        if ((JSON.parse(readFileSync(p, 'utf8')) as { name?: string }).name === 'prunus') return d;
      } catch {
        // keep looking
      }
    }
    d = dirname(d);
  }
  throw new Error('sweep: cannot find the prunus package root');
}

export function defaultExec(): string[] {
  const hook = process.env.PRUNUS_SWEEP_EXEC;
  if (hook) return [process.execPath, resolve(hook)];
  return [process.execPath, join(packageRoot(), 'bin', 'prunus.js')];
}

/** Flag names `prunus <command>` accepts, or null when they cannot be known (custom exec, module not built). */
async function knownFlags(command: string, customExec: boolean): Promise<Set<string> | null> {
  if (customExec || !isSweepCommand(command)) return null;
  return commandFlagNames(command);
}

interface Loaded {
  spec: SweepSpec;
  source: string | null;
  /** Default folder when neither --out nor the file names one. */
  dir: string | null;
  label: string;
}

/** Reads a sweep file, a resolved <sweep>/sweep.json, or a sweep directory. */
function loadInput(input: string | SweepSpec, known: ReadonlySet<string> | null): Loaded {
  if (typeof input !== 'string') {
    const spec = validateSweepSpec(input, { label: 'sweep', knownFlags: known });
    return { spec, source: null, dir: spec.out ? resolve(spec.out) : null, label: 'sweep' };
  }
  let path = resolve(input);
  if (!existsSync(path)) throw new UsageError(`${input} does not exist`);
  let dir: string | null = null;
  if (statSync(path).isDirectory()) {
    dir = path;
    path = join(path, SWEEP_FILE);
    if (!existsSync(path)) throw new UsageError(`${input} is a folder without ${SWEEP_FILE}: not a sweep directory`);
  }
  const label = basename(path);
  const text = readFileSync(path, 'utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${label}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof raw === 'object' && raw !== null && (raw as { prunusSweep?: unknown }).prunusSweep === 1) {
    // A resolved sweep: continue it in its own folder.
    const r = raw as ResolvedSweep;
    return { spec: validateSweepSpec(r.spec, { label, knownFlags: known }), source: r.source, dir: dirname(path), label };
  }
  if (dir) throw new UsageError(`${input}/${SWEEP_FILE} is not a resolved sweep (no "prunusSweep": 1)`);
  const spec = parseSweepText(text, { label, knownFlags: known });
  return { spec, source: path, dir: spec.out ? resolve(dirname(path), spec.out) : null, label };
}

/** The command a sweep runs, read before validation (so that flag names can be checked against it); 'search' by default. */
function peekCommand(input: string | SweepSpec): string {
  let raw: unknown = input;
  if (typeof input === 'string') {
    try {
      const p = resolve(input);
      raw = JSON.parse(readFileSync(statSync(p).isDirectory() ? join(p, SWEEP_FILE) : p, 'utf8'));
      if (raw && typeof raw === 'object' && (raw as { prunusSweep?: unknown }).prunusSweep === 1) raw = (raw as { spec?: unknown }).spec;
    } catch {
      return 'search'; // loadInput reports the problem
    }
  }
  const c = raw && typeof raw === 'object' ? (raw as { command?: unknown }).command : undefined;
  return typeof c === 'string' ? c : 'search';
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

function canonicalFlags(f: Flags): string {
  return JSON.stringify(Object.keys(f).sort().map((k) => [k, f[k]]));
}

function lastLine(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('--- attempt'));
    return lines.at(-1) ?? '';
  } catch {
    return '';
  }
}

/** A validated sweep and its runs (ids and flags), before any folder is chosen. */
export interface LoadedSweep {
  spec: SweepSpec;
  command: string;
  /** The sweep file's path, or null for a spec object. */
  source: string | null;
  /** The folder the file names (its `out`, or the folder of a resolved sweep), or null. */
  fileDir: string | null;
  /** Name used in messages. */
  label: string;
  runs: SweepRun[];
}

/**
 * Reads and validates a sweep (a file, a sweep folder or its sweep.json, or a spec object) and expands its runs;
 * `backend` overrides base.backend. Bad input throws a one-line UsageError. Local sweeps and queued ones start here.
 */
export async function loadSweep(input: string | SweepSpec, opts: Pick<SweepOptions, 'backend' | 'exec'> = {}): Promise<LoadedSweep> {
  const customExec = (opts.exec ?? null) !== null || Boolean(process.env.PRUNUS_SWEEP_EXEC);
  const known = await knownFlags(peekCommand(input), customExec);
  const { spec, source, dir: fileDir, label } = loadInput(input, known);
  const command = spec.command ?? 'search';
  if (opts.backend !== undefined) spec.base = { ...(spec.base ?? {}), backend: opts.backend };
  return { spec, command, source, fileDir, label, runs: expandRuns(spec, label) };
}

/** Resolves a sweep without running anything: the folder, the runs, their ids and argv. Validates everything. */
export async function resolveSweep(input: string | SweepSpec, opts: SweepOptions = {}): Promise<ResolvedSweep & { dir: string; label: string }> {
  const { spec, command, source, fileDir, label, runs } = await loadSweep(input, opts);
  const dir = resolve(opts.out ?? fileDir ?? join('results', 'sweeps', spec.name));
  if (source && resolve(dir, SWEEP_FILE) === source) throw new UsageError(`${label}: the sweep folder would overwrite the sweep file itself; choose another out`);
  const cores = opts.cores ?? availableParallelism();
  const explicitWorkers = typeof spec.base?.workers === 'number' ? spec.base.workers : null;
  const parallel = opts.parallel ?? spec.parallel ?? Math.max(1, Math.floor(cores / Math.max(1, explicitWorkers ?? 1)));
  const workers = explicitWorkers ?? Math.max(1, Math.floor(cores / parallel));
  const cmd = sweepCommand(command);
  const resolvedRuns = runs.map((r) => {
    const runDir = join(dir, 'runs', r.id);
    const flags = { ...r.flags };
    const argv = [command, ...flagsToArgv(flags)];
    if (flags.workers === undefined && cmd.takesWorkers(flags)) argv.push('--workers', String(workers));
    // Sharded training steps get the same share of the cores as the evaluator (results do not depend on it).
    if (flags['train-threads'] === undefined) argv.push('--train-threads', String(workers));
    argv.push('--out', runDir, '--json');
    return { ...r, dir: `runs/${r.id}`, argv };
  });
  // Runs already in the folder must have been started with the same flags: their results would not match otherwise.
  for (const r of resolvedRuns) {
    const st = readJson<RunState>(join(dir, 'state', `${r.id}.json`));
    if (st && canonicalFlags(st.flags) !== canonicalFlags(r.flags)) {
      throw new UsageError(`${label}: run '${r.id}' already exists in ${dir} with other flags (${JSON.stringify(st.flags)}); use another out folder`);
    }
  }
  return { prunusSweep: 1, name: spec.name, command, source, spec, parallel, workers, cores, runs: resolvedRuns, dir, label };
}

/**
 * Runs (or continues) a sweep. `input` is a sweep file, a sweep directory (or its sweep.json), or a spec object.
 * Bad input throws a UsageError before anything is written.
 */
export async function sweep(input: string | SweepSpec, opts: SweepOptions = {}): Promise<SweepResult> {
  const resolved = await resolveSweep(input, opts);
  const { dir, label: _label, ...record } = resolved;
  void _label;
  const exec = opts.exec ?? defaultExec();
  const pollMs = opts.pollMs ?? 500;
  const emit = (e: SweepEvent) => opts.onEvent?.(e);

  mkdirSync(dir, { recursive: true });
  const lock = acquireLease(dir, 'prunus sweep', join(dir, 'sweep.lock'));
  try {
    for (const sub of ['runs', 'state', 'logs']) mkdirSync(join(dir, sub), { recursive: true });
    writeJsonAtomic(join(dir, SWEEP_FILE), record);

    const statePath = (id: string) => join(dir, 'state', `${id}.json`);
    const loadState = (r: SweepRun): RunState => readJson<RunState>(statePath(r.id)) ?? { id: r.id, flags: r.flags, attempts: [] };
    const saveState = (st: RunState) => writeJsonAtomic(statePath(st.id), st);
    const reportOf = (r: { dir: string }) => join(dir, r.dir, 'report.json');
    const cmd = sweepCommand(resolved.command);

    const finishedAtStart = resolved.runs.filter((r) => existsSync(reportOf(r))).length;
    emit({ type: 'start', name: resolved.name, dir, total: resolved.runs.length, finished: finishedAtStart, parallel: resolved.parallel, workers: resolved.workers });

    const pending: typeof resolved.runs = [];
    for (const r of resolved.runs) {
      if (existsSync(reportOf(r))) emit({ type: 'skip', id: r.id, reason: 'finished' });
      else pending.push(r);
    }

    const running = new Map<string, { run: (typeof resolved.runs)[number]; done: Promise<void>; key: string | null; child?: ReturnType<typeof spawn> }>();
    let aborted = opts.signal?.aborted ?? false;
    const onAbort = () => {
      aborted = true;
      for (const r of running.values()) if (r.child && r.child.exitCode === null) r.child.kill('SIGTERM');
    };
    opts.signal?.addEventListener('abort', onAbort);

    const waitedFor = new Set<string>();
    const runOne = async (r: (typeof resolved.runs)[number], slot: { child?: ReturnType<typeof spawn> }): Promise<void> => {
      const runDir = join(dir, r.dir);
      const st = loadState(r);
      // An attempt of an earlier sweep process that never got an end: wait for it while it is still alive.
      const last = st.attempts.at(-1);
      if (last && last.endedAt === undefined) {
        const p = { pid: last.pid, start: last.start };
        if (isAlive(p)) {
          emit({ type: 'run-wait', id: r.id, pid: p.pid });
          waitedFor.add(r.id);
          while (isAlive(p) && !aborted) await sleep(pollMs);
          if (aborted) return;
        }
        last.endedAt = new Date().toISOString();
        last.result = existsSync(reportOf(r)) ? 'finished' : 'gone';
        saveState(st);
      }
      // Any other live process working on this run directory (no record of it survived, or started by hand): wait.
      for (let others = processesUsing(runDir); others.length > 0 && !aborted; others = others.filter(isAlive)) {
        if (!waitedFor.has(r.id)) emit({ type: 'run-wait', id: r.id, pid: others[0]!.pid });
        waitedFor.add(r.id);
        await sleep(pollMs);
      }
      if (aborted) return;
      if (existsSync(reportOf(r))) {
        emit({ type: 'run-end', id: r.id, status: 'finished', code: null, signal: null, wallMs: 0 });
        return;
      }
      const action: RunAction = existsSync(join(runDir, 'config.json')) ? 'resume' : cmd.name;
      const argv = action === 'resume' ? ['resume', runDir, '--json'] : r.argv;
      const logPath = join(dir, 'logs', `${r.id}.log`);
      const outPath = join(dir, 'logs', `${r.id}.stdout.json`);
      const n = st.attempts.length + 1;
      const logFd = openSync(logPath, 'a');
      writeSync(logFd, `--- attempt ${n}: ${action} at ${new Date().toISOString()} ---\n`);
      const outFd = openSync(outPath, 'w');
      const t0 = Date.now();
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(exec[0]!, [...exec.slice(1), ...argv], {
          stdio: ['ignore', outFd, logFd],
          env: { ...process.env, ...(opts.env ?? {}) },
        });
      } finally {
        closeSync(logFd);
        closeSync(outFd);
      }
      slot.child = child;
      const exited = new Promise<{ code: number | null; signal: string | null; error?: string }>((res) => {
        child.once('error', (e) => res({ code: null, signal: null, error: e.message }));
        child.once('exit', (code, signal) => res({ code, signal }));
      });
      if (child.pid !== undefined) {
        const attempt: Attempt = { n, action, ...identify(child.pid), startedAt: new Date(t0).toISOString() };
        st.attempts.push(attempt);
        saveState(st);
        emit({ type: 'run-start', id: r.id, action, attempt: n, pid: child.pid });
      }
      const ex = await exited;
      const finished = existsSync(reportOf(r)) && ex.code === 0;
      const status = finished ? 'finished' : aborted ? 'interrupted' : 'failed';
      let error: string | undefined;
      if (!finished) {
        error = ex.error ?? (lastLine(logPath) || (ex.signal ? `killed by ${ex.signal}` : `exit code ${ex.code}`));
        if (ex.code === 0) error = `exited 0 without writing report.json${error ? ` (${error})` : ''}`;
      }
      const a = st.attempts.at(-1);
      if (a && a.n === n) {
        a.endedAt = new Date().toISOString();
        a.code = ex.code;
        a.signal = ex.signal;
        a.result = status;
        if (error) a.error = error;
      } else {
        st.attempts.push({ n, action, pid: -1, start: null, startedAt: new Date(t0).toISOString(), endedAt: new Date().toISOString(), code: ex.code, signal: ex.signal, result: status, ...(error ? { error } : {}) });
      }
      saveState(st);
      emit({ type: 'run-end', id: r.id, status, code: ex.code, signal: ex.signal, ...(error ? { error } : {}), wallMs: Date.now() - t0 });
    };

    // Scheduler: up to `parallel` runs at once; a run that would train the same reference (search) or baseline
    // (compress) as one still training it waits (it then finds it cached), unless nothing else is left to start.
    const blocked = (r: (typeof resolved.runs)[number]) => {
      const key = cmd.sharedTrainingKey(r.flags);
      if (key === null) return false;
      for (const o of running.values()) if (o.key === key && !cmd.pastSharedTraining(join(dir, o.run.dir))) return true;
      return false;
    };
    try {
      while (!aborted && (pending.length > 0 || running.size > 0)) {
        while (!aborted && running.size < resolved.parallel && pending.length > 0) {
          let i = pending.findIndex((r) => !blocked(r));
          if (i < 0 && running.size === 0) i = 0;
          if (i < 0) break;
          const r = pending.splice(i, 1)[0]!;
          const slot: { child?: ReturnType<typeof spawn> } = {};
          const entry = { run: r, key: cmd.sharedTrainingKey(r.flags), done: Promise.resolve(), get child() { return slot.child; } };
          entry.done = runOne(r, slot).finally(() => running.delete(r.id));
          running.set(r.id, entry);
        }
        await Promise.race([...[...running.values()].map((x) => x.done), sleep(pollMs)]);
      }
      // On abort: wait for the runs we stopped to exit so their state is recorded.
      await Promise.allSettled([...running.values()].map((x) => x.done));
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }

    const rows = buildSummary(dir, resolved.runs, (id) => readJson<RunState>(statePath(id)), resolved.command);
    const files = {
      sweep: join(dir, SWEEP_FILE),
      csv: join(dir, 'summary.csv'),
      markdown: join(dir, 'summary.md'),
      json: join(dir, 'summary.json'),
    };
    writeFileAtomic(files.csv, summaryCsv(rows));
    writeFileAtomic(files.markdown, summaryMarkdown(rows, { name: resolved.name }));
    writeJsonAtomic(files.json, { name: resolved.name, dir, rows });
    const finished = rows.filter((r) => r.status === 'finished').length;
    const failed = rows.filter((r) => r.status === 'failed').length;
    const result: SweepResult = {
      name: resolved.name,
      dir,
      rows,
      finished,
      failed,
      pending: rows.length - finished - failed,
      interrupted: aborted,
      files,
    };
    emit({ type: 'done', finished, failed, pending: result.pending, interrupted: aborted });
    return result;
  } finally {
    lock.release();
  }
}

/** Lists run ids present under <sweep>/runs (including ones no longer in the sweep file). */
export function runDirs(dir: string): string[] {
  try {
    return readdirSync(join(dir, 'runs'), { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}
