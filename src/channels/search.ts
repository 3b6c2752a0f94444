/**
 * NCS over per-group keep ratios r_g ∈ [lower, upper] (spec channel-pruning.md §0, §5). A candidate keeps the top
 * k_g = clamp(round(r_g·C_g), 1, C_g) channels of each group by the method's scores and is evaluated without
 * finetuning on the validation split.
 *
 *   fitness   : MACs / dense MACs (or params / dense params with objective 'params'), minimised
 *   feasible  : MACs ≤ flopsBudget · dense MACs and validation accuracy ≥ baseline − maxAccDrop
 *   violation : 1 + (MAC ratio − budget) when over the FLOPs budget (hard: always worse than any candidate within
 *               it), else the accuracy shortfall (≤ 1)
 *
 * The start point is the largest uniform ratio within the FLOPs budget, so the best point is always within it.
 * Evaluation goes through a small adapter (ChannelEvaluator) that runs in-process; the shared evaluator pool can
 * replace it (evaluator.ts). For BatchNorm models the in-process evaluator re-estimates the BN statistics of each
 * candidate on a few training-side batches first (no weights change), since pruning shifts the downstream statistics.
 */
import type { Architecture } from '../../models/graph.js';
import type { ModelParams } from '../../models/params.js';
import { type ChannelGroup, configCost, denseCost, keepCounts, masksFromScores } from '../../models/channels.js';
import { slimModel } from '../../models/slim.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { createOptimizer, runOptimizer, type EvalResult } from '../../search/index.js';
import type { Objective } from './config.js';
import { recalibrateBatchNorm, type RecalibrationOptions } from './recalibrate.js';
import { evaluateAccuracy } from '../train/evaluate.js';

/** Evaluates keep configurations (validation accuracy without finetuning). */
export interface ChannelEvaluator {
  accuracy(keeps: number[][]): Promise<number[]>;
  dispose?(): void | Promise<void>;
}

/**
 * In-process evaluator: top-k masks from the scores, physically slimmed (cheaper, same outputs), BatchNorm statistics
 * optionally re-estimated (`recalibration`; no weight changes), then a forward pass over `set`.
 */
export function inProcessEvaluator(
  arch: Architecture,
  groups: ChannelGroup[],
  params: ModelParams,
  scores: Float32Array[],
  set: ImageSet,
  batchSize = 500,
  recalibration?: RecalibrationOptions,
): ChannelEvaluator {
  return {
    async accuracy(keeps) {
      return keeps.map((keep) => {
        const slim = slimModel(arch, groups, params, masksFromScores(groups, scores, keep));
        const p = recalibration ? recalibrateBatchNorm(slim.arch, slim.params, recalibration) : slim.params;
        return evaluateAccuracy(slim.arch, p, null, set, batchSize).accuracy;
      });
    },
  };
}

/** The largest uniform keep ratio whose keep counts fit the FLOPs budget (bisection on the realised MACs). */
export function uniformRatioForBudget(arch: Architecture, groups: ChannelGroup[], flopsBudget: number, lower = 0.05): number {
  const dense = denseCost(arch, groups).macs;
  const fits = (r: number) => configCost(arch, groups, keepCounts(groups, groups.map(() => r))).macs <= flopsBudget * dense;
  if (fits(1)) return 1;
  let lo = lower;
  let hi = 1;
  if (!fits(lo)) return lo;
  for (let i = 0; i < 50; i++) {
    const mid = (lo + hi) / 2;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

export interface SearchSettings {
  objective: Objective;
  flopsBudget: number;
  maxAccDrop: number;
  /** Validation accuracy of the unpruned baseline. */
  baselineAccuracy: number;
  popSize: number;
  budget: number;
  sigma0?: number;
  lower: number;
  upper: number;
  seed: number;
}

export interface Evaluated {
  ratios: number[];
  keep: number[];
  macs: number;
  params: number;
  accuracy: number;
  result: EvalResult;
}

export interface SearchOutcome {
  best: Evaluated;
  start: Evaluated;
  evaluations: number;
  /** Distinct keep configurations evaluated (repeats are cached). */
  distinct: number;
  generations: number;
  history: { generation: number; evaluations: number; bestFitness: number; bestFeasible: boolean }[];
  wallMs: number;
}

/** Fitness and feasibility-first violation of one configuration (see the module comment). */
export function scoreConfig(cost: { macs: number; params: number }, dense: { macs: number; params: number }, acc: number, s: Pick<SearchSettings, 'objective' | 'flopsBudget' | 'maxAccDrop' | 'baselineAccuracy'>): EvalResult {
  const macRatio = cost.macs / dense.macs;
  const fitness = s.objective === 'params' ? cost.params / dense.params : macRatio;
  const overFlops = macRatio - s.flopsBudget;
  const shortfall = s.baselineAccuracy - s.maxAccDrop - acc;
  if (overFlops > 1e-12) return { fitness, feasible: false, violation: 1 + overFlops };
  if (shortfall > 1e-12) return { fitness, feasible: false, violation: Math.min(1, shortfall) };
  return { fitness, feasible: true, violation: 0 };
}

/** Runs NCS over keep ratios; returns the best configuration (always within the FLOPs budget). */
export async function searchKeepRatios(
  arch: Architecture,
  groups: ChannelGroup[],
  evaluator: ChannelEvaluator,
  s: SearchSettings,
  onGeneration?: (line: string) => void,
): Promise<SearchOutcome> {
  const t0 = Date.now();
  const dense = denseCost(arch, groups);
  const cache = new Map<string, Evaluated>();
  const evalMany = async (xs: number[][]): Promise<Evaluated[]> => {
    const keeps = xs.map((x) => keepCounts(groups, x.map((r) => Math.min(1, Math.max(r, 1e-9)))));
    const todo = keeps.filter((k, i) => !cache.has(k.join(',')) && keeps.findIndex((o) => o.join(',') === k.join(',')) === i);
    const accs = todo.length ? await evaluator.accuracy(todo) : [];
    todo.forEach((k, i) => {
      const cost = configCost(arch, groups, k);
      cache.set(k.join(','), { ratios: [], keep: k, macs: cost.macs, params: cost.params, accuracy: accs[i]!, result: scoreConfig(cost, dense, accs[i]!, s) });
    });
    return keeps.map((k, i) => ({ ...cache.get(k.join(','))!, ratios: xs[i]!.slice() }));
  };
  const r0 = uniformRatioForBudget(arch, groups, s.flopsBudget, s.lower);
  const x0 = groups.map(() => Math.min(s.upper, Math.max(s.lower, r0)));
  const [start] = await evalMany([x0]);
  const opt = createOptimizer('ncs', {
    dimension: groups.length,
    bounds: { lower: groups.map(() => s.lower), upper: groups.map(() => s.upper) },
    x0,
    f0: start!.result,
    seed: s.seed,
    budget: s.budget - 1,
    popSize: s.popSize,
    ...(s.sigma0 !== undefined ? { sigma0: s.sigma0 } : {}),
  });
  let best: Evaluated = start!;
  const history: SearchOutcome['history'] = [];
  const better = (a: EvalResult, b: EvalResult) =>
    a.feasible !== b.feasible ? a.feasible : !a.feasible ? a.violation < b.violation || (a.violation === b.violation && a.fitness < b.fitness) : a.fitness < b.fitness;
  await runOptimizer(
    opt,
    async (xs) => {
      const ev = await evalMany(xs);
      for (const e of ev) if (better(e.result, best.result)) best = e;
      return ev.map((e) => e.result);
    },
    {
      onGeneration: (info) => {
        history.push({ generation: info.generation, evaluations: info.evaluations + 1, bestFitness: best.result.fitness, bestFeasible: best.result.feasible });
        onGeneration?.(
          `  search gen ${info.generation}: ${info.evaluations + 1}/${s.budget} evaluations, best ${s.objective} ratio ${best.result.fitness.toFixed(4)} ${best.result.feasible ? 'feasible' : `infeasible (violation ${best.result.violation.toFixed(4)})`}, val acc ${(best.accuracy * 100).toFixed(2)}%`,
        );
      },
    },
  );
  return { best, start: start!, evaluations: opt.evaluations + 1, distinct: cache.size, generations: opt.generation, history, wallMs: Date.now() - t0 };
}
