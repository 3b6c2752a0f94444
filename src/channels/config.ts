/**
 * Configuration of a channel-pruning run: the model's dataset, data sizes, baseline training, search, scorer and
 * finetune budgets. `--quick` uses data subsets and few iterations (well under a minute on 2 cores once the
 * baseline is cached). Every budget is recorded in the run's config.json and report.json.
 */
import { CHANNEL_MODELS } from '../../models/zoo-cnn.js';
import { isModelPath, resolveModel } from '../../models/source.js';
import { UsageError, check } from '../../foundation/errors.js';
import type { DataSizes } from './data.js';
import type { SgdConfig } from '../train/solver.js';
import { DI_DEFAULTS, GFBS_DEFAULTS, type DiOptions, type GfbsOptions } from './scorers.js';
import { DCP_DEFAULTS, type DcpOptions } from './dcp.js';

export const METHOD_NAMES = ['di', 'dcp', 'gfbs', 'l1', 'random'] as const;
export type MethodName = (typeof METHOD_NAMES)[number];
export const OBJECTIVES = ['macs', 'params'] as const;
export type Objective = (typeof OBJECTIVES)[number];

export interface SearchBudget {
  /** NCS population N. */
  popSize: number;
  /** Evaluations (the start point counts one). */
  budget: number;
  /** Initial step size on the keep ratios (default (ub−lb)/N, the NCS-C default). */
  sigma0?: number;
  /** Bounds of the per-group keep ratio r_g. */
  lower: number;
  upper: number;
}

export interface FinetuneBudget {
  /** SGD steps of finetuning, the same for every method (DI splits them between its rounds and the final finetune). */
  steps: number;
  batchSize: number;
}

export interface ChannelsConfig {
  /** A zoo name (its baseline is trained and cached) or the path of a TensorFlow.js model.json (the baseline itself). */
  model: string;
  /** sha256 of the model file (null for a zoo model). */
  modelSha256: string | null;
  dataset: string;
  /** Pixels reach the model as raw × inputScale + inputOffset. */
  inputScale: number;
  inputOffset: number;
  method: MethodName;
  objective: Objective;
  /** MACs of the pruned net must be ≤ flopsBudget · dense MACs (hard constraint). */
  flopsBudget: number;
  /** Allowed validation-accuracy loss before finetuning (search constraint). */
  maxAccDrop: number;
  seed: number;
  quick: boolean;
  dataDir?: string;
  splitSeed: number;
  data: DataSizes;
  baseline: SgdConfig;
  search: SearchBudget;
  di: DiOptions & { rounds: number };
  gfbs: GfbsOptions;
  dcp: DcpOptions;
  finetune: FinetuneBudget;
  /** Images per forward batch when evaluating. */
  evalBatch: number;
  /**
   * BatchNorm models: mini-batches (of 64, from the scoring split) whose statistics replace the BN moving averages of
   * each pruned candidate before it is evaluated without finetuning (0 = off). No effect on models without BN.
   */
  bnRecalibration: number;
  /** Shards of each training batch (baseline, finetuning; DCP's heads train unsharded); absent: 1. */
  trainShards?: number;
  /** Threads computing the shards (0 = one per core); results do not depend on it. */
  trainThreads?: number;
}

function baselineSgd(model: string, steps: number): SgdConfig {
  return model === 'lenet-5'
    ? // Caffe's LeNet solver: lr 0.01, momentum 0.9, wd 5e-4, "inv" policy.
      { steps, batchSize: 64, lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 5e-4, schedule: { kind: 'inv', gamma: 1e-4, power: 0.75 }, bnMomentum: 0.9 }
    : { steps, batchSize: 64, lr: 0.05, momentum: 0.9, nesterov: false, weightDecay: 5e-4, schedule: { kind: 'cosine' }, bnMomentum: 0.9 };
}

export function channelModelNames(): string[] {
  return Object.keys(CHANNEL_MODELS);
}

/** Defaults for a model (full run), then the quick preset on top when `quick`. */
export function defaultChannelsConfig(model: string, method: MethodName, quick: boolean): ChannelsConfig {
  let dataset: string;
  let modelSha256: string | null = null;
  if (isModelPath(model)) {
    const r = resolveModel(model);
    if (r.source.kind === 'file') {
      model = r.source.path;
      modelSha256 = r.source.sha256;
    }
    dataset = 'mnist';
  } else {
    const m = CHANNEL_MODELS[model];
    if (!m) throw new UsageError(`channel pruning supports --model ${channelModelNames().join('|')} or a path to a TensorFlow.js model.json, got '${model}'`);
    dataset = m.dataset;
  }
  const full: ChannelsConfig = {
    model,
    modelSha256,
    dataset,
    inputScale: 1 / 256,
    inputOffset: 0,
    method,
    objective: 'macs',
    flopsBudget: 0.5,
    maxAccDrop: 0.02,
    seed: 1,
    quick,
    splitSeed: 0,
    data: { train: 49000, score: 5000, validation: 6000, test: 10000 },
    baseline: baselineSgd(model, 1500),
    search: { popSize: 10, budget: 101, lower: 0.05, upper: 1 },
    di: { ...DI_DEFAULTS, rounds: 5 },
    gfbs: { ...GFBS_DEFAULTS },
    dcp: { ...DCP_DEFAULTS },
    finetune: { steps: 1500, batchSize: 64 },
    evalBatch: 500,
    bnRecalibration: 8,
  };
  if (!quick) return full;
  return {
    ...full,
    data: { train: 6000, score: 1000, validation: 500, test: 2000 },
    baseline: baselineSgd(model, 200),
    search: { ...full.search, popSize: 4, budget: 17 },
    di: { ...full.di, batches: 3 },
    dcp: { ...full.dcp, selectionImages: 128, maxSteps: 4, itersPerStep: 4, headImages: 1024, headSteps: 100 },
    finetune: { steps: 100, batchSize: 64 },
  };
}

export function checkMethod(name: string | undefined): MethodName {
  if (!name || !(METHOD_NAMES as readonly string[]).includes(name)) throw new UsageError(`--method must be one of ${METHOD_NAMES.join(', ')}, got '${name ?? ''}'`);
  return name as MethodName;
}

export function checkObjective(name: string | undefined): Objective {
  if (!name || !(OBJECTIVES as readonly string[]).includes(name)) throw new UsageError(`--objective must be one of ${OBJECTIVES.join(', ')}, got '${name ?? ''}'`);
  return name as Objective;
}

export function validateChannelsConfig(c: ChannelsConfig): ChannelsConfig {
  check(c.flopsBudget > 0 && c.flopsBudget <= 1, `--flops-budget must be in (0, 1], got ${c.flopsBudget}`);
  check(c.maxAccDrop >= 0 && c.maxAccDrop <= 1, `--max-acc-drop must be in [0, 1], got ${c.maxAccDrop}`);
  check(Number.isFinite(c.inputScale) && c.inputScale > 0, `--input-scale must be > 0, got ${c.inputScale}`);
  check(Number.isFinite(c.inputOffset), `--input-offset must be a finite number, got ${c.inputOffset}`);
  check(Number.isInteger(c.seed) && c.seed >= 0, `--seed must be an integer >= 0, got ${c.seed}`);
  check(c.search.lower > 0 && c.search.lower < c.search.upper && c.search.upper <= 1, `keep-ratio bounds must satisfy 0 < lower < upper <= 1`);
  check(Number.isInteger(c.search.popSize) && c.search.popSize >= 1, `--pop-size must be an integer >= 1`);
  check(Number.isInteger(c.search.budget) && c.search.budget >= 1 + c.search.popSize, `--search-budget must be an integer >= 1 + pop size (${1 + c.search.popSize}), got ${c.search.budget}`);
  check(Number.isInteger(c.finetune.steps) && c.finetune.steps >= 0, `--finetune-steps must be an integer >= 0`);
  check(Number.isInteger(c.baseline.steps) && c.baseline.steps >= 1, `--baseline-steps must be an integer >= 1`);
  check(Number.isInteger(c.di.rounds) && c.di.rounds >= 1, `--di-steps must be an integer >= 1`);
  check(Number.isInteger(c.di.batches) && c.di.batches >= 1, 'DI batches must be >= 1');
  check(c.di.rho > 0, 'DI rho must be > 0');
  for (const [k, v] of Object.entries(c.data)) check(Number.isInteger(v) && v >= 1, `data size '${k}' must be an integer >= 1, got ${v}`);
  check(c.data.score >= 2, 'the scoring split needs at least 2 images');
  check(Number.isInteger(c.bnRecalibration) && c.bnRecalibration >= 0, `--bn-recalibration must be an integer >= 0, got ${c.bnRecalibration}`);
  check(Number.isInteger(c.trainShards ?? 1) && (c.trainShards ?? 1) >= 1 && (c.trainShards ?? 1) <= 256, `--train-shards must be an integer in [1, 256], got ${c.trainShards}`);
  check(Number.isInteger(c.trainThreads ?? 0) && (c.trainThreads ?? 0) >= 0 && (c.trainThreads ?? 0) <= 256, `--train-threads must be an integer in [0, 256], got ${c.trainThreads}`);
  check(c.dcp.maxSteps >= 1 && c.dcp.itersPerStep >= 0 && c.dcp.selectionImages >= 2, 'DCP budgets must be positive');
  return c;
}
