/**
 * A queued run is data, never code: the sweep's name, the run's id, the command (`search`) and its flags, checked
 * by the worker exactly as a sweep file's runs are before anything runs. Also what the worker and the run's child
 * process say to each other.
 */
import { UsageError } from '../../foundation/errors.js';
import { SEARCH_FLAGS } from '../pipeline/flags.js';
import { flagsToArgv, validateSweepSpec, type Flags } from '../sweep/spec.js';

/** The queue every sweep goes to (BullMQ queue name). */
export const QUEUE_NAME = 'prunus-runs';

export interface JobData {
  sweep: string;
  runId: string;
  command: 'search';
  flags: Flags;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/** Checks a job's data as the sweep file it came from was checked; a one-line UsageError names what is wrong. */
export function validateJob(jobId: string | undefined, raw: unknown): JobData {
  const label = `job ${jobId ?? '?'}`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UsageError(`${label}: the job's data must be an object`);
  const d = raw as Record<string, unknown>;
  const extra = Object.keys(d).filter((k) => !['sweep', 'runId', 'command', 'flags'].includes(k));
  if (extra.length) throw new UsageError(`${label}: unknown field '${extra[0]}' in the job's data`);
  if (typeof d.sweep !== 'string' || !ID.test(d.sweep)) throw new UsageError(`${label}: sweep must be a sweep name, got ${JSON.stringify(d.sweep)}`);
  if (typeof d.runId !== 'string' || !ID.test(d.runId) || d.runId.length > 120) throw new UsageError(`${label}: runId must be a run id, got ${JSON.stringify(d.runId)}`);
  if (jobId !== undefined && jobId !== `${d.sweep}/${d.runId}`) throw new UsageError(`${label}: the job id must be ${d.sweep}/${d.runId}`);
  // Queued runs are `prunus search` runs only (enqueue.ts refuses other sweeps), though sweep files name others.
  if (d.command !== 'search') throw new UsageError(`${label}: command must be one of search, got ${typeof d.command === 'string' ? `'${d.command}'` : JSON.stringify(d.command)}`);
  const spec = validateSweepSpec({ name: d.sweep, command: d.command, runs: [d.flags] }, { label, knownFlags: new Set(Object.keys(SEARCH_FLAGS)) });
  return { sweep: d.sweep, runId: d.runId, command: 'search', flags: spec.runs![0]! };
}

/**
 * The run's `prunus search` flags on a worker: the job's, with --workers and --train-threads (this machine's share
 * of cores for the run) from the worker unless the sweep set them.
 */
export function jobArgv(job: JobData, workers: number): string[] {
  const argv = flagsToArgv(job.flags);
  if (job.flags.workers === undefined) argv.push('--workers', String(workers));
  if (job.flags['train-threads'] === undefined) argv.push('--train-threads', String(workers));
  return argv;
}

export interface RunChildTask {
  action: 'search' | 'resume';
  runDir: string;
  /** `prunus search` flags of the run (search only). */
  argv: string[];
  /** Where this worker caches references. */
  resultsRoot: string;
}

export type ChildMessage =
  | { type: 'progress'; phase: string; iteration: number; total: number; compression: number }
  | { type: 'checkpoint'; iteration: number; phase: string }
  | { type: 'event'; line: string };

/** The run's child exits with this when this worker cannot continue the run (it started on another backend). */
export const EXIT_OTHER_WORKER = 75;
