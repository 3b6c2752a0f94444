/**
 * Caffe's SGD solver as OLMP's LeNet solvers configure it (spec olmp.md §1):
 *   lr(t) = base_lr · (1 + γ·t)^−power  ("inv": base_lr 0.01, γ 1e-4, power 0.75), t = iterations done so far;
 *   per parameter blob: local_lr = lr · lr_mult, local_decay = weight_decay · decay_mult;
 *   v ← μ·v + local_lr·(g + local_decay·w);  w ← w − v      (μ = 0.9, weight_decay = 5e-4);
 *   weights lr_mult 1, decay_mult 1; biases lr_mult 2, decay_mult 1; batch 64; softmax loss averaged over the batch.
 * BatchNorm (not in the LeNets): γ/β use bnLrMult / bnDecayMult, moving statistics are exponential averages
 * (moving ← bnMomentum·moving + (1−bnMomentum)·batch, biased batch variance, as Keras does).
 *
 * The channel-pruning recipes train with momentum SGD instead (SgdConfig: PyTorch's form, optionally Nesterov,
 * decay on conv/fc kernels only, a learning-rate schedule over a fixed number of steps).
 */
import { UsageError } from '../../foundation/errors.js';

export interface SolverOptions {
  baseLr: number;
  lrPolicy: 'inv' | 'fixed';
  /** "inv" γ. */
  gamma: number;
  /** "inv" power. */
  power: number;
  momentum: number;
  weightDecay: number;
  weightLrMult: number;
  weightDecayMult: number;
  biasLrMult: number;
  biasDecayMult: number;
  /** BatchNorm scale/offset multipliers and moving-average momentum (only used by architectures with batchnorm ops). */
  bnLrMult: number;
  bnDecayMult: number;
  bnMomentum: number;
  batchSize: number;
}

export const DEFAULT_SOLVER: Readonly<SolverOptions> = Object.freeze({
  baseLr: 0.01,
  lrPolicy: 'inv',
  gamma: 1e-4,
  power: 0.75,
  momentum: 0.9,
  weightDecay: 5e-4,
  weightLrMult: 1,
  weightDecayMult: 1,
  biasLrMult: 2,
  biasDecayMult: 1,
  bnLrMult: 1,
  bnDecayMult: 0,
  bnMomentum: 0.99,
  batchSize: 64,
});

/** Fills defaults and checks every value (UsageError naming the bad option). */
export function resolveSolver(partial: Partial<SolverOptions> = {}): SolverOptions {
  const s: SolverOptions = { ...DEFAULT_SOLVER };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
  const finiteNonNeg: (keyof SolverOptions)[] = ['baseLr', 'gamma', 'power', 'momentum', 'weightDecay', 'weightLrMult', 'weightDecayMult', 'biasLrMult', 'biasDecayMult', 'bnLrMult', 'bnDecayMult', 'bnMomentum'];
  for (const k of finiteNonNeg) {
    const v = s[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new UsageError(`solver ${k} must be a finite number >= 0, got ${String(v)}`);
  }
  if (!(s.baseLr > 0)) throw new UsageError(`solver baseLr must be > 0, got ${s.baseLr}`);
  if (s.momentum >= 1) throw new UsageError(`solver momentum must be < 1, got ${s.momentum}`);
  if (s.bnMomentum > 1) throw new UsageError(`solver bnMomentum must be <= 1, got ${s.bnMomentum}`);
  if (!Number.isInteger(s.batchSize) || s.batchSize < 1) throw new UsageError(`solver batchSize must be an integer >= 1, got ${s.batchSize}`);
  if (s.lrPolicy !== 'inv' && s.lrPolicy !== 'fixed') throw new UsageError(`solver lrPolicy must be 'inv' or 'fixed', got '${String(s.lrPolicy)}'`);
  return s;
}

/** Learning rate at iteration t (0 for the first step). */
export function learningRate(s: SolverOptions, t: number): number {
  return s.lrPolicy === 'fixed' ? s.baseLr : s.baseLr * Math.pow(1 + s.gamma * t, -s.power);
}

/** Learning-rate schedules of the momentum-SGD recipes. */
export type LrSchedule =
  | { kind: 'constant' }
  /** lr × factor at each fraction of the steps in `at` (e.g. [0.375, 0.75]). */
  | { kind: 'step'; at: number[]; factor: number }
  | { kind: 'cosine' }
  /** Caffe "inv": lr·(1+γ·t)^(−power). */
  | { kind: 'inv'; gamma: number; power: number };

export interface SgdConfig {
  steps: number;
  batchSize: number;
  lr: number;
  momentum: number;
  nesterov: boolean;
  /** L2 decay on conv/fc kernels (not biases, not BatchNorm). */
  weightDecay: number;
  schedule: LrSchedule;
  /** Moving-average momentum of BatchNorm statistics. */
  bnMomentum: number;
}

/** Learning rate of step `step` (0-based) of a momentum-SGD recipe. */
export function lrAt(cfg: Pick<SgdConfig, 'lr' | 'schedule' | 'steps'>, step: number): number {
  const s = cfg.schedule;
  switch (s.kind) {
    case 'constant':
      return cfg.lr;
    case 'step':
      return cfg.lr * Math.pow(s.factor, s.at.filter((f) => step >= Math.round(f * cfg.steps)).length);
    case 'cosine':
      return 0.5 * cfg.lr * (1 + Math.cos((Math.PI * step) / Math.max(1, cfg.steps)));
    case 'inv':
      return cfg.lr * Math.pow(1 + s.gamma * step, -s.power);
  }
}

/** Refuses impossible step counts, batch sizes and learning rates. */
export function checkSgdConfig(cfg: SgdConfig): void {
  if (!Number.isInteger(cfg.steps) || cfg.steps < 0) throw new UsageError(`training steps must be an integer >= 0, got ${cfg.steps}`);
  if (!Number.isInteger(cfg.batchSize) || cfg.batchSize < 1) throw new UsageError(`batch size must be an integer >= 1, got ${cfg.batchSize}`);
  if (!(cfg.lr >= 0)) throw new UsageError(`learning rate must be >= 0, got ${cfg.lr}`);
}
