/**
 * Configuration of a `prunus compress` run. The channel side (data splits, baseline, the method's scorer and
 * finetune budgets) is channel pruning's (src/channels/config.ts); the joint search and the OLMP stage add theirs.
 * Defaults(model) < quick preset < explicit options. Every value is recorded in the run's config.json.
 *
 * Modes (what `--compare` sets side by side):
 *   joint     one NCS over keep ratios ⊕ crates → the method's finetuner → OLMP from the winner's crates
 *   chained   NCS over keep ratios alone (as `prunus channels`) → the finetuner → OLMP from its usual start
 *   olmp      OLMP alone on the baseline (no channels removed)
 *   channels  NCS over keep ratios → the finetuner; no magnitude pruning
 */
import { defaultChannelsConfig, validateChannelsConfig, METHOD_NAMES, type ChannelsConfig, type MethodName } from '../channels/config.js';
import { UsageError, check } from '../../foundation/errors.js';
import { resolveModel } from '../../models/source.js';

function hasBatchNorm(model: string): boolean {
  return resolveModel(model).arch.ops.some((o) => o.type === 'batchnorm');
}

export const COMPRESS_MODES = ['joint', 'chained', 'olmp', 'channels'] as const;
export type CompressMode = (typeof COMPRESS_MODES)[number];
export const COMPRESS_OBJECTIVES = ['size', 'macs', 'mixed'] as const;
export type CompressObjective = (typeof COMPRESS_OBJECTIVES)[number];

export interface JointSearchBudget {
  popSize: number;
  /** Evaluations (the start point counts one). */
  budget: number;
  /** Bounds of the per-group keep ratio. */
  lower: number;
  upper: number;
  /**
   * Bounds of the per-layer crates c (threshold max(μ + c·σ, 0) on |w|, spec olmp.md §2): c ≤ −μ/σ prunes nothing,
   * c = 0 about half, larger c more.
   */
  crateLower: number;
  crateUpper: number;
  /** Crates of the start point: μ − σ, which prunes only the smallest weights (about 15% of a half-normal |w|). */
  crateStart: number;
  /**
   * Allowed validation-accuracy loss of a candidate before any finetuning (null: twice maxAccDrop, since finetuning
   * and retraining win part of it back; the final model is held to maxAccDrop by the OLMP stage).
   */
  maxAccDrop: number | null;
}

/** The OLMP stage's schedule (spec olmp.md §5, scaled like `search --quick` when quick). */
export interface OlmpStage {
  iterations: number;
  pruneUntil: number;
  searchPeriod: number;
  searchBudget: number;
  logPeriod: number;
  checkpointPeriod: number;
  /** Factor on the architecture's mask-update gammas (75 in the quick preset, as `search --quick`). */
  gammaScale: number;
  sigmaDivideAt: number[];
  /** Crate bounds of the stage's searches. */
  bounds: [number, number];
  /** Initial crate of every layer when the stage does not start from searched crates (chained, olmp modes). */
  initialCrate: number;
}

export interface CompressConfig extends Omit<ChannelsConfig, 'objective' | 'flopsBudget' | 'search'> {
  mode: CompressMode;
  objective: CompressObjective;
  /** Dense MACs of the slimmed network must be ≤ flopsBudget · dense MACs (null: no MAC constraint). */
  flopsBudget: number | null;
  /** Parameters / non-zeros must reach this (null: none). */
  targetCompression: number | null;
  /** Wall-clock seconds for the whole run; the OLMP stage gets what is left and keeps its best feasible model. */
  timeBudget: number | null;
  search: JointSearchBudget;
  olmp: OlmpStage;
  /** Evaluator pool workers of the searches (0 = in this thread); results do not depend on it. */
  workers: number;
}

function olmpStage(model: string, quick: boolean): OlmpStage {
  const lenet5 = model === 'lenet-5';
  if (quick) {
    return { iterations: 401, pruneUntil: 200, searchPeriod: 100, searchBudget: 40, logPeriod: 50, checkpointPeriod: 50, gammaScale: 75, sigmaDivideAt: lenet5 ? [0, 133] : [0], bounds: lenet5 ? [0, 20] : [0, 10], initialCrate: 0.001 };
  }
  return { iterations: 30001, pruneUntil: 15000, searchPeriod: 1000, searchBudget: 1600, logPeriod: 500, checkpointPeriod: 500, gammaScale: 1, sigmaDivideAt: lenet5 ? [0, 10000] : [0], bounds: lenet5 ? [0, 20] : [0, 10], initialCrate: 0.001 };
}

/** Defaults for a model, the quick preset on top when `quick`. */
export function defaultCompressConfig(model: string, method: MethodName, quick: boolean, mode: CompressMode = 'joint'): CompressConfig {
  const ch = defaultChannelsConfig(model, method, quick);
  const { objective: _o, flopsBudget: _f, search: chSearch, ...rest } = ch;
  return {
    ...rest,
    mode,
    objective: 'size',
    maxAccDrop: 0.01,
    flopsBudget: null,
    targetCompression: null,
    timeBudget: null,
    search: { popSize: chSearch.popSize, budget: quick ? 41 : 201, lower: chSearch.lower, upper: chSearch.upper, crateLower: -1.5, crateUpper: 3, crateStart: -1, maxAccDrop: null },
    olmp: olmpStage(model, quick),
    workers: 0,
  };
}

/** The channel-pruning view of the config (what the scorers, finetuners and the baseline cache read). */
export function channelsView(c: CompressConfig): ChannelsConfig {
  const { mode: _m, objective: _o, targetCompression: _t, timeBudget: _tb, olmp: _ol, workers: _w, flopsBudget, search, ...rest } = c;
  return { ...rest, objective: 'macs', flopsBudget: flopsBudget ?? 1, search: { popSize: search.popSize, budget: search.budget, lower: search.lower, upper: search.upper } };
}

export function checkMode(name: string): CompressMode {
  if (!(COMPRESS_MODES as readonly string[]).includes(name)) throw new UsageError(`--mode must be one of ${COMPRESS_MODES.join(', ')}, got '${name}'`);
  return name as CompressMode;
}

export function checkCompressObjective(name: string): CompressObjective {
  if (!(COMPRESS_OBJECTIVES as readonly string[]).includes(name)) throw new UsageError(`--objective must be one of ${COMPRESS_OBJECTIVES.join(', ')}, got '${name}'`);
  return name as CompressObjective;
}

/** Checks a whole config; throws a one-line UsageError naming the field. */
export function validateCompressConfig(c: CompressConfig): CompressConfig {
  validateChannelsConfig(channelsView(c));
  checkMode(c.mode);
  checkCompressObjective(c.objective);
  check((METHOD_NAMES as readonly string[]).includes(c.method), `--method must be one of ${METHOD_NAMES.join(', ')}`);
  if (c.flopsBudget !== null) check(c.flopsBudget > 0 && c.flopsBudget <= 1, `--flops-budget must be in (0, 1], got ${c.flopsBudget}`);
  if (c.targetCompression !== null) check(c.targetCompression >= 1, `--target-compression must be >= 1, got ${c.targetCompression}`);
  if (c.timeBudget !== null) check(c.timeBudget > 0, `--time-budget must be positive, got ${c.timeBudget}`);
  check(c.search.crateLower < c.search.crateUpper, `crate bounds must satisfy lower < upper, got ${c.search.crateLower}, ${c.search.crateUpper}`);
  check(c.search.crateStart >= c.search.crateLower && c.search.crateStart <= c.search.crateUpper, `the start crate must lie within the crate bounds, got ${c.search.crateStart}`);
  if (c.search.maxAccDrop !== null) check(c.search.maxAccDrop >= 0 && c.search.maxAccDrop <= 1, `--search-acc-drop must be in [0, 1], got ${c.search.maxAccDrop}`);
  const o = c.olmp;
  for (const [k, v] of Object.entries({ iterations: o.iterations, 'search-period': o.searchPeriod, 'olmp-search-budget': o.searchBudget, 'log-period': o.logPeriod, 'checkpoint-period': o.checkpointPeriod })) {
    check(Number.isInteger(v) && v >= 1, `--${k} must be an integer >= 1, got ${v}`);
  }
  check(Number.isInteger(o.pruneUntil) && o.pruneUntil >= 0 && o.pruneUntil <= o.iterations, `--prune-until must be an integer in [0, iterations], got ${o.pruneUntil}`);
  check(Number.isInteger(c.workers) && c.workers >= 0 && c.workers <= 64, `--workers must be an integer in [0, 64], got ${c.workers}`);
  check(c.mode === 'olmp' || c.workers === 0 || c.bnRecalibration === 0 || !hasBatchNorm(c.model), '--workers evaluates masked candidates with the baseline BatchNorm statistics; on BatchNorm models use it with --bn-recalibration 0');
  return c;
}
