/**
 * The data-independent part of the OLMP loop (spec olmp.md §5): which layers are selected at each iteration, when a
 * search runs, the optimiser each search gets, and how a generation's candidates get their masks. The pipeline (src/pipeline/olmp.ts) and `searchSchedule` share
 * these, so the schedule a run will follow can be computed without data or training.
 */
import type { OlmpConfig } from './config.js';
import type { RandomStream } from '../../foundation/rng.js';
import { Rng } from '../../foundation/rng.js';
import { NumpyRandomState } from '../../foundation/mt19937.js';
import { createOptimizer, type EvalResult, type Optimizer, type OptimizerName } from '../../search/index.js';
import { masksForCrates, type MagnitudeStats } from '../../models/masks.js';
import type { LayerMasks, LayerParams } from '../../models/params.js';
import type { Candidate } from '../../evaluators/types.js';

/** The run's stream at its start: prunus's own, or numpy's MT19937 seeded as the released scripts do (`np.random.seed([seed])`). */
export function runStream(cfg: Pick<OlmpConfig, 'rng' | 'seed'>): RandomStream {
  return cfg.rng === 'numpy' ? new NumpyRandomState([cfg.seed]) : new Rng(cfg.seed);
}

/** Layer k is selected at iteration t iff 1/(1+γ_k·t) > U[0,1): one uniform per layer, in layer order. */
export function selectLayers(gamma: readonly number[], t: number, rng: RandomStream): boolean[] {
  return gamma.map((g) => 1 / (1 + g * t) > rng.uniform());
}

/**
 * A search runs at t when t is a multiple of the search period and at least two layers are selected (OLMP), or, with
 * searchAllLayers, at every multiple of the period (the caller then selects every layer).
 */
export function searchesAt(cfg: Pick<OlmpConfig, 'searchPeriod' | 'searchAllLayers'>, t: number, selected: readonly boolean[]): boolean {
  if (t % cfg.searchPeriod !== 0) return false;
  return cfg.searchAllLayers === true || selected.filter(Boolean).length >= 2;
}

/**
 * The layers whose masks are updated at t: the random selection (drawn whatever the mode, so the stream is the same),
 * or every layer at a search iteration with searchAllLayers.
 */
export function layersAt(cfg: Pick<OlmpConfig, 'gamma' | 'searchPeriod' | 'searchAllLayers'>, t: number, rng: RandomStream): boolean[] {
  const selected = selectLayers(cfg.gamma, t, rng);
  return cfg.searchAllLayers === true && t % cfg.searchPeriod === 0 ? selected.map(() => true) : selected;
}

/**
 * The optimiser of one search over the layers `sel` from `x0` (whose result is `f0`). With the numpy stream it
 * draws from the run's stream, as ncs.py draws from numpy's global one; with prunus's stream it gets its own,
 * seeded by one draw.
 */
export function searchOptimizer(cfg: OlmpConfig, sel: readonly number[], x0: number[], f0: EvalResult, sigma0: number, rng: RandomStream): Optimizer {
  return createOptimizer(cfg.optimizer as OptimizerName, {
    dimension: sel.length,
    bounds: { lower: sel.map(() => cfg.bounds[0]), upper: sel.map(() => cfg.bounds[1]) },
    x0,
    f0,
    ...(cfg.rng === 'numpy' ? { seed: cfg.seed, stream: rng } : { seed: rng.uint32() }),
    budget: cfg.searchBudget,
    popSize: cfg.popSize,
    sigma0,
  });
}

/**
 * The searches a run will make (iteration and selected layer indices), computed without data: the selection draws,
 * and each search's optimiser run to its budget on placeholder results. Exact when pruning is not stopped early
 * (target compression, max params, time budget) and the optimiser's number of draws does not depend on the fitness
 * values (true of olmp-released, random and ncs). For the numpy stream with olmp-released this is the released
 * scripts' schedule (spec §5 lists it for the published seeds).
 */
export function searchSchedule(cfg: OlmpConfig): { iteration: number; layers: number[] }[] {
  const rng = runStream(cfg);
  const out: { iteration: number; layers: number[] }[] = [];
  let sigma0 = cfg.sigma0;
  const placeholder: EvalResult = { fitness: 1, feasible: true, violation: 0 };
  for (let t = 0; t < cfg.pruneUntil; t++) {
    const selected = layersAt(cfg, t, rng);
    if (cfg.sigmaDivideAt.includes(t)) sigma0 /= 10;
    if (!searchesAt(cfg, t, selected)) continue;
    const sel = selected.flatMap((s, k) => (s ? [k] : []));
    const x0 = sel.map(() => Math.min(Math.max(cfg.initialCrate, cfg.bounds[0]), cfg.bounds[1]));
    const opt = searchOptimizer(cfg, sel, x0, placeholder, sigma0, rng);
    while (!opt.done()) {
      const cands = opt.ask();
      opt.tell(cands, cands.map(() => placeholder));
    }
    out.push({ iteration: t, layers: sel });
  }
  return out;
}

/**
 * The evaluator requests of one generation of a search, and the mask state after it. Stateless: every candidate is
 * its crates, built by the evaluator from the search's start state (which stays the state). Stateful (the released
 * code): each candidate's masks are updated from the previous candidate's (all layers, DNS hysteresis), in order, and
 * the state moves on with them.
 */
export function generationRequests(
  mode: OlmpConfig['evaluation'],
  layers: LayerParams[],
  state: LayerMasks[],
  stats: MagnitudeStats[],
  crates: readonly (number | null)[][],
): { requests: Candidate[]; state: LayerMasks[] } {
  if (mode !== 'stateful') return { requests: crates.map((c) => ({ kind: 'crates', crates: c.slice() })), state };
  const requests: Candidate[] = [];
  for (const c of crates) {
    state = masksForCrates(layers, state, stats, c);
    requests.push({ kind: 'masks', masks: state });
  }
  return { requests, state };
}
