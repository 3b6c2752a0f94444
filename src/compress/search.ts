/**
 * The joint search of `prunus compress`: NCS over one vector u ∈ [0, 1]^(G+L), per-group keep ratios
 * r_g = lower + u_g·(upper − lower) ⊕ per-layer crates c_k = crateLower + u_(G+k)·(crateUpper − crateLower)
 * (normalised so that one step size suits both). A point keeps the top k_g = clamp(round(r_g·C_g), 1, C_g) channels of each group by the method's
 * scores and magnitude-prunes the surviving weights at its crates (a 'joint' candidate, candidate.ts); it is
 * evaluated without finetuning on the validation images by the shared masked-model evaluators (in this thread or
 * the worker pool: the same results). Without crates (`searchCrates` false) the vector is the keep ratios alone.
 *
 *   fitness   size: non-zeros / parameters · macs: slimmed MACs / dense MACs (+ 10⁻³ · size, to order ties)
 *             mixed: √(MAC ratio · size ratio); minimised
 *   feasible  slimmed MACs ≤ flopsBudget · dense MACs, parameters / non-zeros ≥ targetCompression, and validation
 *             accuracy ≥ baseline − maxAccDrop
 *   violation 1 + (MAC ratio − budget) over the FLOPs budget (such a point is never evaluated: its MACs are known
 *             in closed form), else the larger of the accuracy shortfall and 1 − compression / target (both ≤ 1)
 *
 * The start point keeps the largest uniform ratio within the FLOPs budget and its crates are crateStart. Every distinct
 * candidate is recorded (the report's Pareto front is drawn from them).
 */
import type { Architecture } from '../../models/graph.js';
import { type ChannelGroup, configCost, denseCost, keepCounts, keptIndices, masksFromScores } from '../../models/channels.js';
import type { Evaluator } from '../../evaluators/index.js';
import { createOptimizer, isBetter, runOptimizer, type EvalResult } from '../../search/index.js';
import { uniformRatioForBudget } from '../channels/search.js';
import type { CompressObjective, JointSearchBudget } from './config.js';
import type { JointCandidate } from './candidate.js';

/** The search budget and bounds of the config (JointSearchBudget), the run's constraints, and what is searched. */
export interface JointSettings extends Omit<JointSearchBudget, 'maxAccDrop'> {
  objective: CompressObjective;
  flopsBudget: number | null;
  targetCompression: number | null;
  /** Allowed validation-accuracy loss of a candidate before finetuning. */
  maxAccDrop: number;
  /** Validation accuracy of the unpruned network on the evaluation images. */
  baselineAccuracy: number;
  /** false: crates stay 0 and only keep ratios are searched (channel pruning alone). */
  searchCrates: boolean;
  seed: number;
}

/** One evaluated configuration. */
export interface JointPoint {
  keep: number[];
  crates: number[];
  /** Non-zero weights and biases of the prunable layers. */
  nonZero: number;
  /** Prunable parameters of the unpruned network / nonZero. */
  compression: number;
  /** Dense MACs of the slimmed network (channels removed). */
  macs: number;
  /** MACs the sparse kernels execute (non-zero weights × output positions). */
  sparseMacs: number;
  /** Validation accuracy without finetuning; null when not evaluated (over the FLOPs budget) or stopped early. */
  accuracy: number | null;
  result: EvalResult;
}

export interface JointOutcome {
  best: JointPoint;
  start: JointPoint;
  /** Every distinct configuration evaluated or rejected, in order. */
  points: JointPoint[];
  evaluations: number;
  earlyExits: number;
  rejectedOverBudget: number;
  generations: number;
  history: { generation: number; evaluations: number; bestFitness: number; bestFeasible: boolean }[];
  wallMs: number;
}

/** The decoded point of a normalised vector. */
export function decodePoint(groups: ChannelGroup[], s: Pick<JointSettings, 'lower' | 'upper' | 'crateLower' | 'crateUpper' | 'searchCrates'>, u: readonly number[], layers: number): { ratios: number[]; crates: number[] } {
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  const ratios = groups.map((_, g) => s.lower + clamp(u[g]!) * (s.upper - s.lower));
  // Without crates every layer keeps its channel masks alone (a crate of 0 is no magnitude pruning, spec §2).
  const crates = Array.from({ length: layers }, (_, k) => (s.searchCrates ? s.crateLower + clamp(u[groups.length + k]!) * (s.crateUpper - s.crateLower) : 0));
  return { ratios, crates };
}

/** Fitness of a point under an objective (module comment). */
export function jointFitness(objective: CompressObjective, sizeRatio: number, macRatio: number): number {
  if (objective === 'size') return sizeRatio;
  if (objective === 'macs') return macRatio + 1e-3 * sizeRatio;
  return Math.sqrt(macRatio * sizeRatio);
}

/** Feasibility-first result of a point (module comment); `accShortfall` in accuracy units (≤ 0 when met). */
export function jointResult(s: Pick<JointSettings, 'flopsBudget' | 'targetCompression' | 'objective'>, p: { sizeRatio: number; macRatio: number; compression: number; accShortfall: number }): EvalResult {
  const fitness = jointFitness(s.objective, p.sizeRatio, p.macRatio);
  if (s.flopsBudget !== null && p.macRatio - s.flopsBudget > 1e-12) return { fitness, feasible: false, violation: 1 + p.macRatio - s.flopsBudget };
  const compShortfall = s.targetCompression !== null && p.compression < s.targetCompression ? 1 - p.compression / s.targetCompression : 0;
  const v = Math.max(p.accShortfall > 1e-12 ? Math.min(1, p.accShortfall) : 0, compShortfall);
  return v > 0 ? { fitness, feasible: false, violation: v } : { fitness, feasible: true, violation: 0 };
}

/**
 * Runs the joint search. `evaluator` must hold the context (reference weights, all-ones masks, the reference's
 * magnitude statistics, the validation images); `totalParams` is the prunable parameter count.
 */
export async function searchJoint(
  arch: Architecture,
  groups: ChannelGroup[],
  layers: number,
  scores: Float32Array[],
  evaluator: Pick<Evaluator, 'evaluate'>,
  evalCount: number,
  totalParams: number,
  s: JointSettings,
  onGeneration?: (line: string, best: JointOutcome['history'][number] & Pick<JointPoint, 'compression' | 'macs' | 'accuracy'>) => void,
): Promise<JointOutcome> {
  const t0 = Date.now();
  const dense = denseCost(arch, groups);
  const floorCorrect = Math.ceil((s.baselineAccuracy - s.maxAccDrop) * evalCount - 1e-9);
  const points: JointPoint[] = [];
  const seen = new Map<string, JointPoint>();
  let evaluations = 0;
  let earlyExits = 0;
  let rejected = 0;

  const evalMany = async (us: number[][]): Promise<JointPoint[]> => {
    const decoded = us.map((u) => {
      const { ratios, crates } = decodePoint(groups, s, u, layers);
      const keep = keepCounts(groups, ratios);
      const macs = configCost(arch, groups, keep).macs;
      const overBudget = s.flopsBudget !== null && macs / dense.macs - s.flopsBudget > 1e-12;
      return { keep, crates, macs, overBudget, key: `${keep.join(',')}|${crates.join(',')}` };
    });
    const keys = new Set<string>();
    const fresh = decoded.filter((d) => !seen.has(d.key) && !keys.has(d.key) && keys.add(d.key));
    const toEval = fresh.filter((d) => !d.overBudget);
    const cands: JointCandidate[] = toEval.map((d) => ({ kind: 'joint', kept: masksFromScores(groups, scores, d.keep).map(keptIndices), crates: d.crates }));
    const evals = cands.length ? await evaluator.evaluate(cands, { minCorrect: floorCorrect }) : [];
    evaluations += evals.length;
    for (const d of fresh) {
      const macRatio = d.macs / dense.macs;
      let point: JointPoint;
      if (d.overBudget) {
        // Over the FLOPs budget: rejected without running it (its size is not known either; counted as dense).
        rejected++;
        point = { keep: d.keep, crates: d.crates, nonZero: NaN, compression: NaN, macs: d.macs, sparseMacs: NaN, accuracy: null, result: jointResult(s, { sizeRatio: 1, macRatio, compression: 1, accShortfall: 0 }) };
      } else {
        const e = evals[toEval.indexOf(d)]!;
        if (e.earlyExit) earlyExits++;
        // Correct answers it could still reach (an early exit stops once that is below the floor).
        const upper = e.earlyExit ? e.correct + (e.count - e.evaluated) : e.correct;
        const compression = totalParams / e.nonZero;
        point = {
          keep: d.keep,
          crates: d.crates,
          nonZero: e.nonZero,
          compression,
          macs: d.macs,
          sparseMacs: e.macs,
          accuracy: e.earlyExit ? null : e.correct / e.count,
          result: jointResult(s, { sizeRatio: e.nonZero / totalParams, macRatio, compression, accShortfall: Math.max(0, floorCorrect - upper) / evalCount }),
        };
      }
      seen.set(d.key, point);
      points.push(point);
    }
    return decoded.map((d) => seen.get(d.key)!);
  };

  const G = groups.length;
  const D = G + (s.searchCrates ? layers : 0);
  const r0 = uniformRatioForBudget(arch, groups, s.flopsBudget ?? 1, s.lower);
  const u0 = [
    ...groups.map(() => Math.min(1, Math.max(0, (Math.min(s.upper, Math.max(s.lower, r0)) - s.lower) / (s.upper - s.lower)))),
    ...new Array<number>(D - G).fill((s.crateStart - s.crateLower) / (s.crateUpper - s.crateLower)),
  ];
  const [start] = await evalMany([u0]);
  let best = start!;
  const history: JointOutcome['history'] = [];
  const opt = createOptimizer('ncs', {
    dimension: D,
    bounds: { lower: new Array<number>(D).fill(0), upper: new Array<number>(D).fill(1) },
    x0: u0,
    f0: start!.result,
    seed: s.seed,
    budget: Math.max(1, s.budget - 1),
    popSize: s.popSize,
  });
  await runOptimizer(
    opt,
    async (us) => {
      const ps = await evalMany(us);
      for (const p of ps) if (isBetter(p.result, best.result)) best = p;
      return ps.map((p) => p.result);
    },
    {
      onGeneration: (info) => {
        const h = { generation: info.generation, evaluations: info.evaluations + 1, bestFitness: best.result.fitness, bestFeasible: best.result.feasible };
        history.push(h);
        onGeneration?.(
          `  joint search gen ${info.generation}: ${info.evaluations + 1}/${s.budget} points, best ${s.objective} ${best.result.fitness.toFixed(4)} ${best.result.feasible ? 'feasible' : `infeasible (violation ${best.result.violation.toFixed(4)})`}, ${best.compression.toFixed(1)}x, MACs ${((best.macs / dense.macs) * 100).toFixed(1)}%`,
          { ...h, compression: best.compression, macs: best.macs, accuracy: best.accuracy },
        );
      },
    },
  );
  return { best, start: start!, points, evaluations, earlyExits, rejectedOverBudget: rejected, generations: opt.generation, history, wallMs: Date.now() - t0 };
}

/**
 * Indices of the Pareto front of fully evaluated points: no other point has non-zeros ≤, MACs ≤ and accuracy ≥
 * with one of them strictly better. Points stopped early or not evaluated are left out.
 */
export function paretoFront(points: readonly Pick<JointPoint, 'nonZero' | 'macs' | 'accuracy'>[]): number[] {
  const ok = points.map((p, i) => ({ p, i })).filter(({ p }) => p.accuracy !== null && Number.isFinite(p.nonZero));
  const dominates = (a: (typeof ok)[number]['p'], b: (typeof ok)[number]['p']) =>
    a.nonZero <= b.nonZero && a.macs <= b.macs && a.accuracy! >= b.accuracy! && (a.nonZero < b.nonZero || a.macs < b.macs || a.accuracy! > b.accuracy!);
  return ok.filter(({ p }) => !ok.some(({ p: q }) => dominates(q, p))).map(({ i }) => i);
}
