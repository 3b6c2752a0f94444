/**
 * The OLMP pipeline's configuration (spec olmp.md §3–§5): every schedule constant, with the spec's values as
 * defaults, per-model constants, the --quick preset, and validation of user values.
 */
import { prunableOps, type Architecture } from '../../models/graph.js';
import { resolveModel } from '../../models/source.js';
import { UsageError, check, parseNumber } from '../../foundation/errors.js';
import { TRAIN_ORDERS, type TrainOrder } from '../../foundation/data/datasets.js';

export const OLMP_OPTIMIZERS = ['ncs', 'olmp-released', 'random', 'cmaes'] as const;
export type OlmpOptimizer = (typeof OLMP_OPTIMIZERS)[number];
export const CONSTRAINTS = ['batch', 'validation'] as const;
export const RNG_KINDS = ['prunus', 'numpy'] as const;
export const EVALUATION_MODES = ['stateless', 'stateful'] as const;
export type EvaluationMode = (typeof EVALUATION_MODES)[number];
export type RngKind = (typeof RNG_KINDS)[number];
export type ConstraintMode = (typeof CONSTRAINTS)[number];
export const RETRAIN_LR = ['inv', 'cosine'] as const;
export type RetrainLr = (typeof RETRAIN_LR)[number];

export interface OlmpConfig {
  /** A zoo name, or the path of a TensorFlow.js model.json (the user's trained network, its own reference). */
  model: string;
  /** sha256 of the model file (null for a zoo model): a resumed run checks it finds the same model. */
  modelSha256: string | null;
  /** Pixels are fed to the model as raw × inputScale + inputOffset (the zoo's LeNets: 1/256 and 0). */
  inputScale: number;
  inputOffset: number;
  dataset: string;
  dataDir: string | null;
  splitSeed: number;
  /** 'split' (the paper's held-out 6k) or 'file' (all 60k in file order, as the authors' scripts; batch mode only). */
  trainOrder: TrainOrder;
  seed: number;
  /**
   * The run's random stream: 'prunus' (seedrandom ARC4) or 'numpy' (numpy's legacy MT19937 seeded with [seed], as
   * the released scripts; with --optimizer olmp-released it replays their layer selections and search samples).
   */
  rng: RngKind;
  /**
   * How a search's candidates get their masks (DNS hysteresis makes masks depend on the state they are updated from):
   * 'stateless' (default): each from the masks at the start of the search; the chosen crates are applied to that
   * state. 'stateful' (the released code, spec §3 and §7.6): each from the previous candidate's masks, in the order
   * asked; the current net is scored on its masks as they are; the chosen crates are applied to the state the last
   * candidate left.
   */
  evaluation: EvaluationMode;
  /** Model folder of a trained reference; null = train one (cached under results/references/). */
  reference: string | null;
  referenceIterations: number;
  /** Total pruning+adjusting iterations (spec: 30,001). */
  iterations: number;
  /** Masks are updated and searched while t < pruneUntil (spec: 15,000). */
  pruneUntil: number;
  searchPeriod: number;
  logPeriod: number;
  checkpointPeriod: number;
  /** Mask-update gamma per prunable layer: p_k(t) = 1/(1+gamma_k t). */
  gamma: number[];
  /** Initial crate of every layer (the released code sets 0.001 before the first step). */
  initialCrate: number;
  /**
   * Initial crates per prunable layer instead of initialCrate (`prunus compress` starts from its joint search's
   * winner); null or absent: initialCrate everywhere.
   */
  initialCrates?: number[] | null;
  /** NCS step size before the first division (50 in the code; ÷10 at t=0 gives 5). */
  sigma0: number;
  /** Iterations at which sigma0 is divided by 10 (t=0; LeNet-5 also t=10000). */
  sigmaDivideAt: number[];
  /** Crate box bounds. */
  bounds: [number, number];
  popSize: number;
  /** Evaluations per search (spec: 1,600 = 160 generations of 10). */
  searchBudget: number;
  optimizer: OlmpOptimizer;
  constraint: ConstraintMode;
  /** 'batch' mode: allowed accuracy loss on the 64-image batch, relative to the current accuracy. */
  delta: number;
  /** 'validation' mode: allowed loss of validation accuracy relative to the reference's. */
  maxAccDrop: number;
  /** Stop pruning once compression reaches this (then retrain). */
  targetCompression: number | null;
  /** Stop pruning once non-zeros fall to this (then retrain). */
  maxParams: number | null;
  /**
   * Every search period's search covers all layers (their masks updated at their crates first) instead of the
   * randomly selected ones, and no search is skipped for too few selected layers (absent in older run folders: false).
   */
  searchAllLayers?: boolean;
  /**
   * Ends pruning with one more search over all layers at once, at t = pruneUntil, on the masks the schedule's
   * updates left; its masks are then frozen (absent in older run folders: false).
   */
  finalSearch?: boolean;
  /**
   * Learning rate while adjusting (masks frozen): 'inv' continues Caffe's schedule; 'cosine' decays from the
   * schedule's value at the first adjusting iteration to 0 at the last (absent in older run folders: 'inv').
   */
  retrainLr?: RetrainLr;
  /** Distillation weight α from the dense reference's logits while adjusting (0 = off; absent: 0). */
  distillAlpha?: number;
  /** Distillation temperature T (absent: 4). */
  distillTemperature?: number;
  /** Wall-clock budget in seconds; the run stops in time and keeps the best feasible model so far. */
  timeBudget: number | null;
  batchSize: number;
  /** Evaluator pool size (0 = in-process). */
  workers: number;
  /**
   * Shards each training batch is cut into (absent in older run folders: 1, the whole batch at once). Results depend
   * on it, not on the number of training threads.
   */
  trainShards?: number;
  /** Threads computing a sharded training step (0 = one per core); at most trainShards. Does not change results. */
  trainThreads?: number;
  limit: { train?: number; validation?: number; test?: number };
  quick: boolean;
  /** Keep the checkpoints of a finished run (by default they are removed: the run folder holds the final model). */
  keepCheckpoints: boolean;
}

/** Per-model constants of the released scripts (spec §3–§5); other models take LeNet-300-100's. */
export function modelDefaults(model: string, arch: Architecture): Partial<OlmpConfig> {
  const base: Partial<OlmpConfig> = { gamma: arch.maskGamma.slice() };
  if (model === 'lenet-5') return { ...base, bounds: [0, 20], delta: 0.05, sigmaDivideAt: [0, 10000] };
  return { ...base, bounds: [0, 10], delta: 0.08, sigmaDivideAt: [0] };
}

export const PUBLISHED_SEEDS: Record<string, number> = { 'lenet-300-100': 961449, 'lenet-5': 981118 };

export function defaultConfig(model: string, arch: Architecture = resolveModel(model).arch): OlmpConfig {
  return {
    model,
    modelSha256: null,
    inputScale: 1 / 256,
    inputOffset: 0,
    dataset: 'mnist',
    dataDir: null,
    splitSeed: 0,
    trainOrder: 'split',
    rng: 'prunus',
    evaluation: 'stateless',
    seed: PUBLISHED_SEEDS[model] ?? 1,
    reference: null,
    referenceIterations: 10000,
    iterations: 30001,
    pruneUntil: 15000,
    searchPeriod: 1000,
    logPeriod: 500,
    checkpointPeriod: 500,
    gamma: [],
    initialCrate: 0.001,
    initialCrates: null,
    sigma0: 50,
    sigmaDivideAt: [0],
    bounds: [0, 10],
    popSize: 10,
    searchBudget: 1600,
    optimizer: 'ncs',
    constraint: 'validation',
    delta: 0.08,
    maxAccDrop: 0.01,
    targetCompression: null,
    maxParams: null,
    timeBudget: null,
    batchSize: 64,
    workers: 0,
    trainShards: 1,
    trainThreads: 0,
    limit: {},
    quick: false,
    keepCheckpoints: false,
    finalSearch: false,
    searchAllLayers: false,
    retrainLr: 'inv',
    distillAlpha: 0,
    distillTemperature: 4,
    ...modelDefaults(model, arch),
  };
}

/** The --quick preset: the whole pipeline end to end on a data subset in about a minute. */
export function quickPreset(model: string, arch: Architecture = resolveModel(model).arch): Partial<OlmpConfig> {
  return {
    quick: true,
    referenceIterations: 300,
    iterations: 401,
    pruneUntil: 200,
    searchPeriod: 100,
    logPeriod: 50,
    checkpointPeriod: 50,
    searchBudget: 60,
    // A 300-iteration reference is weak and fragile: allow a larger loss so the quick run visibly prunes.
    maxAccDrop: 0.05,
    // Scale the schedule so that mask-update probabilities decay over the short run as they do over 30k iterations.
    gamma: arch.maskGamma.map((g) => g * 75),
    sigmaDivideAt: model === 'lenet-5' ? [0, 133] : [0],
    limit: { train: 6000, validation: 1000, test: 2000 },
  };
}

/** Throws "unknown <what> '<value>' (known: ...)" unless value is one of choices. */
function oneOf(what: string, value: unknown, choices: readonly string[]): void {
  if (!choices.includes(value as string)) throw new UsageError(`unknown ${what} '${String(value)}' (known: ${choices.join(', ')})`);
}

/** Checks a whole config; throws a one-line UsageError naming the field. */
export function validateConfig(c: OlmpConfig, arch: Architecture = resolveModel(c.model).arch): OlmpConfig {
  const L = prunableOps(arch).length;
  const posInt = (name: string, v: number) => parseNumber(`--${name}`, v, { min: 1, integer: true });
  posInt('iterations', c.iterations);
  posInt('reference-iterations', c.referenceIterations);
  posInt('search-period', c.searchPeriod);
  posInt('log-period', c.logPeriod);
  posInt('checkpoint-period', c.checkpointPeriod);
  posInt('pop-size', c.popSize);
  posInt('search-budget', c.searchBudget);
  posInt('batch-size', c.batchSize);
  parseNumber('--prune-until', c.pruneUntil, { min: 0, integer: true });
  parseNumber('--seed', c.seed, { min: 0, integer: true });
  parseNumber('--split-seed', c.splitSeed, { min: 0, integer: true });
  parseNumber('--workers', c.workers, { min: 0, integer: true, max: 64 });
  parseNumber('--train-shards', c.trainShards ?? 1, { min: 1, integer: true, max: 256 });
  parseNumber('--train-threads', c.trainThreads ?? 0, { min: 0, integer: true, max: 256 });
  parseNumber('--sigma0', c.sigma0, { min: 0, exclusiveMin: true });
  parseNumber('--initial-crate', c.initialCrate, { min: 0 });
  if (c.initialCrates !== null && c.initialCrates !== undefined) {
    check(Array.isArray(c.initialCrates) && c.initialCrates.length === L, `initial crates need ${L} values for ${c.model} (one per prunable layer), got ${Array.isArray(c.initialCrates) ? c.initialCrates.length : 'none'}`);
    c.initialCrates.forEach((v) => parseNumber('initial crate', v, { min: 0 }));
  }
  parseNumber('--delta', c.delta, { min: 0, max: 1 });
  parseNumber('--max-acc-drop', c.maxAccDrop, { min: 0, max: 1 });
  parseNumber('--input-scale', c.inputScale, { min: 0, exclusiveMin: true });
  parseNumber('--input-offset', c.inputOffset, {});
  check(c.gamma.length === L, `--gamma needs ${L} values for ${c.model} (one per prunable layer), got ${c.gamma.length}`);
  c.gamma.forEach((g) => parseNumber('--gamma', g, { min: 0 }));
  check(c.bounds.length === 2 && c.bounds[0] >= 0 && c.bounds[1] > c.bounds[0], `--bounds must be two numbers 0 <= lower < upper, got ${c.bounds.join(',')}`);
  if (c.targetCompression !== null) parseNumber('--target-compression', c.targetCompression, { min: 1 });
  if (c.maxParams !== null) parseNumber('--max-params', c.maxParams, { min: 1, integer: true });
  if (c.timeBudget !== null) parseNumber('--time-budget', c.timeBudget, { min: 0, exclusiveMin: true });
  oneOf('optimizer', c.optimizer, OLMP_OPTIMIZERS);
  oneOf('constraint', c.constraint, CONSTRAINTS);
  oneOf('--evaluation', c.evaluation, EVALUATION_MODES);
  oneOf('--rng', c.rng, RNG_KINDS);
  if (c.rng === 'numpy') parseNumber('--seed', c.seed, { min: 0, max: 2 ** 32 - 1, integer: true });
  oneOf('--train-order', c.trainOrder, TRAIN_ORDERS);
  oneOf('--retrain-lr', c.retrainLr ?? 'inv', RETRAIN_LR);
  parseNumber('--distill', c.distillAlpha ?? 0, { min: 0, max: 1 });
  parseNumber('--distill-temperature', c.distillTemperature ?? 4, { min: 0, exclusiveMin: true });
  check(
    c.trainOrder !== 'file' || c.constraint === 'batch',
    '--train-order file trains on the validation images too, so it needs --constraint batch (the validation constraint would judge on trained images)',
  );
  for (const [k, v] of Object.entries(c.limit)) if (v !== undefined) parseNumber(`limit.${k}`, v, { min: 1, integer: true });
  return c;
}

/** Parses "--time-budget" values like 90, 90s, 15m, 2h. */
export function parseDuration(flag: string, raw: string): number {
  const m = /^([0-9]*\.?[0-9]+)\s*(s|m|h)?$/.exec(raw.trim());
  if (!m) throw new UsageError(`${flag} must be a duration like 90, 90s, 15m or 2h, got '${raw}'`);
  const v = Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  if (!(v > 0)) throw new UsageError(`${flag} must be positive, got '${raw}'`);
  return v;
}

export function parseNumberList(flag: string, raw: string): number[] {
  return raw.split(',').map((s) => parseNumber(flag, s));
}
