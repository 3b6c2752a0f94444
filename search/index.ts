/**
 * Derivative-free optimisers behind one ask/tell interface: NCS-C, the released OLMP search, random search,
 * a (1+1)-ES and CMA-ES. See search/README.md.
 */
import { UsageError } from '../foundation/errors.js';
import { CmaesOptimizer } from './cmaes.js';
import { NcsOptimizer } from './ncs.js';
import { OlmpReleasedOptimizer } from './olmp-released.js';
import { OnePlusOne } from './one-plus-one.js';
import { checkOptimizerName, optionsFromJson, resolveOptions } from './options.js';
import { RandomSearch } from './random.js';
import type {
  BestPoint,
  EvalResult,
  GenerationInfo,
  Optimizer,
  OptimizerName,
  OptimizerOptions,
  OptimizerState,
} from './types.js';
import { STATE_FORMAT, STATE_VERSION } from './types.js';

export type * from './types.js';
export { OPTIMIZER_NAMES, STATE_FORMAT, STATE_VERSION } from './types.js';
export { compareResults, compareNumbers, isBetter } from './compare.js';
export {
  CLAMP_MARGIN,
  LAMBDA_RANGE,
  bhattacharyya,
  clampToBounds,
  correlations,
  lambdaSigmaAfter,
  normalisedCorrelation,
  normalisedFitness,
  shouldReplace,
  successRuleUpdate,
} from './ncs-math.js';
export { scalariseFeasibilityFirst, NcsOptimizer } from './ncs.js';
export { OlmpReleasedOptimizer } from './olmp-released.js';
export { RandomSearch } from './random.js';
export { OnePlusOne } from './one-plus-one.js';
export { CmaesOptimizer } from './cmaes.js';
export { cmaConstants, cmaUpdate, decompose, defaultLambda, sampleDirection, whiten, type CmaConstants, type CmaMoments } from './cmaes-math.js';
export { DEFAULT_PENALTY, DEFAULT_POP_SIZE, DEFAULT_R, OLMP_RELEASED_SIGMA0, resolveOptions } from './options.js';

/** Creates optimiser `name`; invalid options throw a one-line UsageError. */
export function createOptimizer(name: OptimizerName, opts: OptimizerOptions): Optimizer {
  const n = checkOptimizerName(name);
  const o = resolveOptions(n, opts);
  switch (n) {
    case 'ncs':
      return new NcsOptimizer(o);
    case 'olmp-released':
      return new OlmpReleasedOptimizer(o);
    case 'random':
      return new RandomSearch(o);
    case 'one-plus-one':
      return new OnePlusOne(o);
    case 'cmaes':
      return new CmaesOptimizer(o);
  }
}

/** Rebuilds an optimiser from state() (e.g. after a JSON round trip); it continues bit-identically. */
export function restoreOptimizer(state: OptimizerState): Optimizer {
  if (!state || typeof state !== 'object' || state.format !== STATE_FORMAT) {
    throw new UsageError(`not an optimizer state (expected format '${STATE_FORMAT}')`);
  }
  if (state.version !== STATE_VERSION) {
    throw new UsageError(`optimizer state version ${String(state.version)} is not supported (expected ${STATE_VERSION})`);
  }
  const name = checkOptimizerName(state.name);
  if (!state.options || !state.rng || !state.algo || !Number.isInteger(state.nextId) || !Number.isInteger(state.evaluations)) {
    throw new UsageError(`corrupt ${name} optimizer state: missing options, rng, algo or counters`);
  }
  const o = resolveOptions(name, optionsFromJson(state.options));
  switch (state.name) {
    case 'ncs':
      return new NcsOptimizer(o, state);
    case 'olmp-released':
      return new OlmpReleasedOptimizer(o, state);
    case 'random':
      return new RandomSearch(o, state);
    case 'one-plus-one':
      return new OnePlusOne(o, state);
    case 'cmaes':
      return new CmaesOptimizer(o, state);
  }
}

export interface RunOptions {
  /** Called after every tell() with progress. */
  onGeneration?(info: GenerationInfo): void | Promise<void>;
  /** Stops after the current generation once aborted (the optimiser stays resumable). */
  signal?: AbortSignal;
}

/**
 * Loops ask → evaluate → tell until the optimiser is done (or `signal` aborts). `evaluate` gets copies of the
 * candidate points, in order, and returns one result per point. Returns the best point.
 */
export async function runOptimizer(
  opt: Optimizer,
  evaluate: (xs: number[][]) => Promise<EvalResult[]> | EvalResult[],
  opts: RunOptions = {},
): Promise<BestPoint | null> {
  while (!opt.done() && !opts.signal?.aborted) {
    const candidates = opt.ask();
    if (candidates.length === 0) break;
    const results = await evaluate(candidates.map((c) => c.x.slice()));
    if (!Array.isArray(results) || results.length !== candidates.length) {
      throw new Error(`${opt.name}: evaluate returned ${Array.isArray(results) ? results.length : typeof results} results for ${candidates.length} candidates`);
    }
    opt.tell(candidates, results);
    if (opts.onGeneration) {
      await opts.onGeneration({
        generation: opt.generation,
        evaluations: opt.evaluations,
        budget: opt.budget,
        best: opt.best(),
        candidates,
        results,
      });
    }
  }
  return opt.best();
}

/** runOptimizer for a synchronous evaluator, without promises (benchmarks, tests). */
export function runOptimizerSync(opt: Optimizer, evaluate: (xs: number[][]) => EvalResult[]): BestPoint | null {
  while (!opt.done()) {
    const candidates = opt.ask();
    if (candidates.length === 0) break;
    opt.tell(candidates, evaluate(candidates.map((c) => c.x.slice())));
  }
  return opt.best();
}
