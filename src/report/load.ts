/**
 * Reading run directories and sweep directories (the run-directory contract of `prunus search`); compress run folders
 * are told apart here and read by compress-load.ts.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { UsageError } from '../../foundation/errors.js';
import { buildSummary, type SummaryRow } from '../sweep/summary.js';
import type { Flags } from '../sweep/spec.js';
import type * as Written from '../pipeline/olmp.js';

export interface RunConfigFile {
  command: string;
  model: string;
  dataset: string;
  seed: number;
  backend: { name: string; requested?: string; detail?: string; adapter?: string } & Record<string, unknown>;
  versions?: Record<string, string>;
  options?: Record<string, unknown>;
}

/**
 * Events as read back from events.jsonl: the pipeline's own types (src/pipeline/olmp.ts), with every field beyond
 * the ones reports need made optional, so run folders written before a field was added still load.
 */
type AsRead<E, Required extends keyof E> = Pick<E, Required> & Partial<Omit<E, Required>>;
export type LogEvent = AsRead<Written.LogEvent, 'type' | 'iteration' | 'compression' | 'accuracy'>;
export type SearchEvent = AsRead<Written.SearchEvent, 'type' | 'iteration' | 'layers' | 'crates' | 'compression' | 'accuracy' | 'evaluations' | 'feasible' | 'generations'>;
export type PhaseEvent = Written.PhaseEvent;
export type RunEvent = LogEvent | SearchEvent | PhaseEvent;

export interface RunReport {
  status: 'finished';
  command?: string;
  model: string;
  dataset?: string;
  seed: number;
  backend: { name: string } & Record<string, unknown>;
  optimizer?: string;
  constraint?: string;
  compression: number;
  nonZero: number;
  params: number;
  layers: { name: string; nonZero: number; params: number; density: number }[];
  validationAccuracy?: number;
  testAccuracy: number;
  testError: number;
  wallTimeMs?: number;
  evaluations?: number;
  iterations?: number;
  [k: string]: unknown;
}

export interface RunData {
  dir: string;
  /** Folder name (the run id inside a sweep). */
  name: string;
  config: RunConfigFile;
  events: RunEvent[];
  report: RunReport | null;
  status: 'finished' | 'interrupted';
  /** Lines of events.jsonl that could not be read (e.g. a last line cut by a kill). */
  badLines: number;
}

export interface SweepData {
  dir: string;
  name: string;
  runs: RunData[];
  rows: SummaryRow[];
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`${what}: cannot read ${path} (${(e as Error).message.split('\n')[0]})`);
  }
}

const isNum = (v: unknown): v is number => typeof v === 'number';

function validEvent(e: unknown): e is RunEvent {
  if (typeof e !== 'object' || e === null) return false;
  const x = e as Record<string, unknown>;
  if (!isNum(x.iteration)) return false;
  if (x.type === 'log') return isNum(x.compression) && isNum(x.accuracy);
  if (x.type === 'search') return Array.isArray(x.generations) && isNum(x.compression);
  if (x.type === 'phase') return typeof x.phase === 'string';
  return false;
}

export function readEvents(path: string): { events: RunEvent[]; bad: number } {
  if (!existsSync(path)) return { events: [], bad: 0 };
  const events: RunEvent[] = [];
  let bad = 0;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as unknown;
      if (validEvent(e)) events.push(e);
      else if (!(typeof e === 'object' && e !== null && typeof (e as { type?: unknown }).type === 'string')) bad++;
    } catch {
      bad++;
    }
  }
  return { events, bad };
}

export function isRunDir(dir: string): boolean {
  return existsSync(join(dir, 'config.json'));
}

/** A run folder written by `prunus compress` (its config.json says so). */
export function isCompressRunDir(dir: string): boolean {
  if (!isRunDir(dir)) return false;
  try {
    return (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { command?: unknown }).command === 'compress';
  } catch {
    return false;
  }
}

export function isSweepDir(dir: string): boolean {
  if (!existsSync(join(dir, 'sweep.json'))) return false;
  try {
    return (JSON.parse(readFileSync(join(dir, 'sweep.json'), 'utf8')) as { prunusSweep?: unknown }).prunusSweep === 1;
  } catch {
    return false;
  }
}

export function loadRun(dirIn: string): RunData {
  const dir = resolve(dirIn);
  if (!isRunDir(dir)) throw new UsageError(`${dirIn} is not a run directory (no config.json)`);
  const config = readJson(join(dir, 'config.json'), 'report') as RunConfigFile;
  if (typeof config !== 'object' || config === null || typeof config.model !== 'string') throw new UsageError(`report: ${join(dir, 'config.json')} has no model`);
  if (typeof config.backend !== 'object' || config.backend === null) config.backend = { name: String(config.backend ?? 'unknown') };
  const { events, bad } = readEvents(join(dir, 'events.jsonl'));
  const reportPath = join(dir, 'report.json');
  const report = existsSync(reportPath) ? (readJson(reportPath, 'report') as RunReport) : null;
  return { dir, name: basename(dir), config, events, report, status: report && report.status === 'finished' ? 'finished' : 'interrupted', badLines: bad };
}

export function loadSweep(dirIn: string): SweepData {
  const dir = resolve(dirIn);
  if (!isSweepDir(dir)) throw new UsageError(`${dirIn} is not a sweep directory (no resolved sweep.json)`);
  const resolved = readJson(join(dir, 'sweep.json'), 'report') as { name: string; runs: { id: string; flags: Flags; dir: string }[] };
  const rows = buildSummary(dir, resolved.runs, (id) => {
    try {
      return JSON.parse(readFileSync(join(dir, 'state', `${id}.json`), 'utf8')) as { attempts: { result?: string; error?: string }[] };
    } catch {
      return null;
    }
  });
  const runs = resolved.runs.filter((r) => isRunDir(join(dir, r.dir))).map((r) => loadRun(join(dir, r.dir)));
  return { dir, name: resolved.name, runs, rows };
}

export function kindOf(dirIn: string): 'run' | 'sweep' | 'compress' {
  const dir = resolve(dirIn);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${dirIn} is not a folder`);
  if (isSweepDir(dir)) return 'sweep';
  if (isCompressRunDir(dir)) return 'compress';
  if (isRunDir(dir)) return 'run';
  throw new UsageError(`${dirIn} is neither a run directory (config.json) nor a sweep directory (sweep.json)`);
}
