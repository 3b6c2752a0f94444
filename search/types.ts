import type { RandomStream, StreamState } from '../foundation/rng.js';

/** Outcome of evaluating one candidate. Minimisation; `violation` is 0 when feasible and > 0 otherwise. */
export interface EvalResult {
  fitness: number;
  feasible: boolean;
  violation: number;
}

/** One point to evaluate. `id` increases monotonically over the whole run (across generations and resumes). */
export interface Candidate {
  id: number;
  x: number[];
}

export interface Bounds {
  lower: number[];
  upper: number[];
}

export interface BestPoint {
  x: number[];
  result: EvalResult;
}

export type OptimizerName = 'ncs' | 'olmp-released' | 'random' | 'one-plus-one' | 'cmaes';

export const OPTIMIZER_NAMES: readonly OptimizerName[] = ['ncs', 'olmp-released', 'random', 'one-plus-one', 'cmaes'];

/** A derivative-free minimiser behind an ask/tell interface (in the manner of nevergrad's Optimizer). */
export interface Optimizer {
  readonly name: OptimizerName;
  readonly dimension: number;
  /**
   * The next generation to evaluate. Call tell() with its results before asking again; a repeated ask()
   * without tell() returns the same pending candidates. Returns [] once done().
   */
  ask(): Candidate[];
  /** Results for the candidates of the last ask(), matched by id (any order, all of them). */
  tell(candidates: Candidate[], results: EvalResult[]): void;
  /** Best point so far (feasibility-first; for olmp-released, by the released code's penalised fitness). */
  best(): BestPoint | null;
  /** True when the evaluation budget is spent (no further full generation fits). */
  done(): boolean;
  /** Results told so far (f0 passed in the options does not count). */
  readonly evaluations: number;
  /** The evaluation budget from the options. */
  readonly budget: number;
  /** Completed ask/tell rounds, including the evaluation of the starting point(s) when that takes a round. */
  readonly generation: number;
  /** Everything needed to continue bit-identically, as plain JSON (Rng state included). */
  state(): OptimizerState;
}

export interface OptimizerOptions {
  /** Number of variables, >= 1. */
  dimension: number;
  /** Box constraints; lower[d] < upper[d], all finite. */
  bounds: Bounds;
  /** Starting point (inside the bounds). NCS/olmp-released start from N copies of it. */
  x0?: number[];
  /** Result of x0, when already known (requires x0); otherwise x0 is evaluated as the first ask(). */
  f0?: EvalResult;
  /** Seed of the optimiser's one Rng; every draw comes from it. */
  seed: number | string;
  /**
   * Draw from this stream instead (shared with the caller, e.g. the OLMP pipeline replaying the released scripts,
   * where one numpy stream feeds both the layer selection and the searches); `seed` is then only recorded.
   */
  stream?: RandomStream;
  /** Evaluation budget (results told; f0 not counted), integer >= 1. */
  budget: number;
  /** Population / batch size. ncs, olmp-released, random: default 10. one-plus-one: must be 1. cmaes: λ, default 4 + ⌊3 ln n⌋. */
  popSize?: number;
  /**
   * Initial Gaussian step size(s), scalar or per dimension. Defaults: ncs (ub-lb)/popSize (NCS-C);
   * olmp-released 5 (the stepsize the released scripts pass); one-plus-one and cmaes (ub-lb)/10.
   */
  sigma0?: number | number[];
  /** Generations between 1/5-rule updates (ncs, olmp-released). Default popSize. */
  epoch?: number;
  /** 1/5-rule factor in (0,1) (ncs, olmp-released). Default 0.99. */
  r?: number;
  /** olmp-released: penalised fitness of an infeasible candidate. Default 1.1 (as in the released scripts). */
  penalty?: number;
  /** one-plus-one: damping d of the success rule sigma *= exp((success - 1/5)/d). Default sqrt(dimension+1). */
  damping?: number;
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  dimension: number;
  bounds: Bounds;
  x0: number[] | null;
  f0: EvalResult | null;
  seed: number | string;
  stream: RandomStream | null;
  budget: number;
  popSize: number;
  sigma0: number[];
  epoch: number;
  r: number;
  penalty: number;
  damping: number;
}

/** JSON cannot hold NaN or ±Infinity; results are stored with those spelled as strings. */
export type JsonNumber = number | 'NaN' | 'Infinity' | '-Infinity';

export interface JsonEvalResult {
  fitness: JsonNumber;
  feasible: boolean;
  violation: JsonNumber;
}

export interface ResolvedOptionsJson extends Omit<ResolvedOptions, 'f0' | 'stream'> {
  f0: JsonEvalResult | null;
}

export const STATE_FORMAT = 'prunus.search.optimizer';
export const STATE_VERSION = 1;

export interface StateCommon<N extends OptimizerName, A> {
  format: typeof STATE_FORMAT;
  version: typeof STATE_VERSION;
  name: N;
  options: ResolvedOptionsJson;
  rng: StreamState;
  nextId: number;
  evaluations: number;
  generation: number;
  /** Candidates asked but not yet told (null when none). */
  pending: Candidate[] | null;
  best: { x: number[]; result: JsonEvalResult } | null;
  algo: A;
}

/** How the starting point(s) come about: given with f0, x0 to evaluate, or drawn uniformly and evaluated. */
export type InitKind = 'given' | 'x0' | 'uniform';

export interface NcsAlgoState {
  phase: 'init' | 'search';
  init: InitKind;
  /** Current search processes x_i, their results, their per-dimension step sizes. */
  pop: number[][];
  popResults: JsonEvalResult[];
  sigma: number[][];
  /** Replacements per process since the last 1/5-rule update. */
  flags: number[];
  /** s, the standard deviation of lambda, for the next generation. */
  lambdaSigma: number;
  /** NCS generations done, and planned. */
  g: number;
  gmax: number;
}

export interface OlmpReleasedAlgoState {
  phase: 'init' | 'search';
  init: InitKind;
  /** The point all samples are drawn around (x0; never replaced, as in ncs.py). */
  center: number[] | null;
  sigma: number[];
  lambdaSigma: number;
  g: number;
  gmax: number;
}

export interface RandomAlgoState {
  phase: 'init' | 'search';
  init: InitKind;
}

export interface OnePlusOneAlgoState {
  phase: 'init' | 'search';
  init: InitKind;
  parent: number[] | null;
  parentResult: JsonEvalResult | null;
  sigma: number[];
}

export interface CmaesAlgoState {
  phase: 'init' | 'search';
  init: InitKind;
  /** The distribution N(mean, sigma² C) and its evolution paths; null mean until a uniform start is drawn. */
  mean: number[] | null;
  sigma: number;
  C: number[][];
  pSigma: number[];
  pc: number[];
  /** CMA generations done, and planned. */
  g: number;
  gmax: number;
}

export type NcsState = StateCommon<'ncs', NcsAlgoState>;
export type OlmpReleasedState = StateCommon<'olmp-released', OlmpReleasedAlgoState>;
export type RandomState = StateCommon<'random', RandomAlgoState>;
export type OnePlusOneState = StateCommon<'one-plus-one', OnePlusOneAlgoState>;
export type CmaesState = StateCommon<'cmaes', CmaesAlgoState>;
export type OptimizerState = NcsState | OlmpReleasedState | RandomState | OnePlusOneState | CmaesState;

/** What runOptimizer reports after each generation. */
export interface GenerationInfo {
  generation: number;
  evaluations: number;
  budget: number;
  best: BestPoint | null;
  candidates: Candidate[];
  results: EvalResult[];
}
