/** Creating OLMP run directories from options, and the library entry points `search` and `resume`. */
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { acquireLease, type Lease } from '../../foundation/lease.js';
import { join, resolve } from 'node:path';
import { defaultConfig, quickPreset, validateConfig, type OlmpConfig } from './config.js';
import { runOlmp, type PipelineHooks, type OlmpReport, type RunFileConfig } from './olmp.js';
import { initBackend, backendRecord, describeBackend, type BackendName } from '../../backends/backend.js';
import { resolveModel, fitToData, type ModelSource } from '../../models/source.js';
import { datasetInfo, loadRunData } from './olmp.js';
import { writeJsonAtomic } from '../../foundation/atomic.js';
import { runVersions, utcStamp } from '../run-dir.js';
import { UsageError } from '../../foundation/errors.js';

export interface SearchOptions extends Partial<OlmpConfig> {
  model: string;
  backend?: BackendName;
  /** Run directory; default <resultsRoot>/search-<model>-s<seed>-<UTC timestamp>. */
  out?: string;
  resultsRoot?: string;
  /** With the backend line: why the backends before the chosen one were skipped. */
  verbose?: boolean;
  /** Print the backend line (the CLI does; the library stays quiet unless asked). */
  log?: (line: string) => void;
}

/** Resolves options into a validated config: defaults(model) < quick preset < given options. */
export function resolveConfig(opts: SearchOptions): OlmpConfig {
  const { arch, source } = resolveModel(opts.model);
  const base = defaultConfig(opts.model, arch);
  const quick = opts.quick ? quickPreset(opts.model, arch) : {};
  const given: Partial<OlmpConfig> = {};
  for (const [k, v] of Object.entries(opts)) {
    if (v !== undefined && k in base) (given as Record<string, unknown>)[k] = v;
  }
  const cfg: OlmpConfig = { ...base, ...quick, ...given, limit: { ...base.limit, ...(quick.limit ?? {}), ...(given.limit ?? {}) } };
  if (source.kind === 'file') {
    cfg.model = source.path;
    cfg.modelSha256 = source.sha256;
  }
  return validateConfig(cfg, arch);
}

/** A short name for folder names: the zoo name, or the model file's folder name. */
export function modelSlug(cfg: Pick<OlmpConfig, 'model' | 'modelSha256'>): string {
  if (cfg.modelSha256 === null) return cfg.model;
  const parts = cfg.model.split(/[\\/]/).filter((p) => p !== '' && p !== 'model.json');
  return (parts[parts.length - 1] ?? 'model').replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** Where the run's model comes from, as recorded in its config.json. */
export function modelSource(cfg: Pick<OlmpConfig, 'model' | 'modelSha256'>): ModelSource {
  return cfg.modelSha256 === null ? { kind: 'zoo', name: cfg.model } : { kind: 'file', path: cfg.model, sha256: cfg.modelSha256 };
}

/**
 * Creates the run directory with its config.json, under the run's lease (held when this returns; the caller
 * releases it). Refuses an existing run, and a folder another process holds.
 */
async function prepareRun(opts: SearchOptions): Promise<{ dir: string; lease: Lease }> {
  const cfg = resolveConfig(opts);
  // The model must fit its data before anything is written (the run loads the same data again, from the cache).
  fitToData(resolveModel(cfg.model).arch, datasetInfo(loadRunData(cfg)), cfg.model);
  const resultsRoot = resolve(opts.resultsRoot ?? process.env.PRUNUS_RESULTS ?? 'results');
  const dir = resolve(opts.out ?? join(resultsRoot, `search-${modelSlug(cfg)}-s${cfg.seed}-${utcStamp()}`));
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`--out ${dir} exists and is not a folder`);
  if (existsSync(join(dir, 'report.json'))) throw new UsageError(`${dir} already holds a finished run`);
  if (existsSync(join(dir, 'config.json'))) throw new UsageError(`${dir} already holds a run; continue it with 'prunus resume ${dir}'`);
  const backend = await initBackend(opts.backend ?? 'auto');
  const lease = acquireLease(dir, 'prunus search');
  opts.log?.(describeBackend(backend, opts.verbose));
  try {
    const runCfg: RunFileConfig = {
      command: 'search',
      model: cfg.model,
      modelSource: modelSource(cfg),
      dataset: cfg.dataset,
      seed: cfg.seed,
      backend: backendRecord(backend),
      backendRequested: opts.backend ?? 'auto',
      versions: runVersions(),
      options: cfg,
      resultsRoot,
    };
    mkdirSync(dir, { recursive: true });
    writeJsonAtomic(join(dir, 'config.json'), runCfg);
    return { dir, lease };
  } catch (e) {
    lease.release();
    throw e;
  }
}

/** Creates the run directory with its config.json (the run is then started with `resume`). Refuses an existing run. */
export async function createRun(opts: SearchOptions): Promise<string> {
  const { dir, lease } = await prepareRun(opts);
  lease.release();
  return dir;
}

/** Library entry: runs a whole OLMP search and returns its report. */
export async function search(opts: SearchOptions, hooks: PipelineHooks = {}): Promise<OlmpReport> {
  const { dir, lease } = await prepareRun(opts);
  try {
    return await runOlmp(dir, hooks, lease);
  } catch (e) {
    // A run that failed on bad input before doing any work leaves nothing behind.
    if (e instanceof UsageError && !existsSync(join(dir, 'checkpoint.json'))) rmSync(dir, { recursive: true, force: true });
    throw e;
  } finally {
    lease.release();
  }
}

/** Library entry: continues an interrupted run (or returns the report of a finished one). */
export async function resume(dir: string, hooks: PipelineHooks = {}): Promise<OlmpReport> {
  if (!existsSync(join(dir, 'config.json'))) throw new UsageError(`${dir} is not a prunus run directory (no config.json)`);
  const lease = acquireLease(dir, 'prunus resume');
  try {
    return await runOlmp(dir, hooks, lease);
  } finally {
    lease.release();
  }
}
