import { UsageError } from '../foundation/errors.js';
import { checkResult, decodeResult, encodeResult } from './compare.js';
import type { EvalResult, OptimizerName, OptimizerOptions, ResolvedOptions, ResolvedOptionsJson } from './types.js';
import { OPTIMIZER_NAMES } from './types.js';
import { defaultLambda } from './cmaes-math.js';

/** Default population of NCS and of olmp-released (spec §4: N = 10). */
export const DEFAULT_POP_SIZE = 10;
/** Step size the released OLMP scripts pass to ncs.py at every search (ncs_stepsize 50, ÷10 at t = 0). */
export const OLMP_RELEASED_SIGMA0 = 5;
/** 1/5-rule factor (spec §4). */
export const DEFAULT_R = 0.99;
/** Fitness of an infeasible candidate in the released scripts. */
export const DEFAULT_PENALTY = 1.1;

export function checkOptimizerName(name: unknown): OptimizerName {
  if (typeof name !== 'string' || !(OPTIMIZER_NAMES as readonly string[]).includes(name)) {
    throw new UsageError(`unknown optimizer '${String(name)}' (expected one of: ${OPTIMIZER_NAMES.join(', ')})`);
  }
  return name as OptimizerName;
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function finiteArray(v: unknown, n: number, what: string, p: string): number[] {
  if (!Array.isArray(v) || v.length !== n) {
    throw new UsageError(`${p}: ${what} must be an array of ${n} numbers, got ${Array.isArray(v) ? `length ${v.length}` : typeof v}`);
  }
  v.forEach((e, d) => {
    if (typeof e !== 'number' || !Number.isFinite(e)) throw new UsageError(`${p}: ${what}[${d}] must be a finite number, got ${String(e)}`);
  });
  return (v as number[]).slice();
}

/** Validates `opts` for optimiser `name` and fills in defaults. Problems throw one-line UsageErrors. */
export function resolveOptions(name: OptimizerName, opts: OptimizerOptions): ResolvedOptions {
  const p = `${name}`;
  if (!opts || typeof opts !== 'object') throw new UsageError(`${p}: options must be an object`);
  const n = opts.dimension;
  if (!isInt(n) || n < 1) throw new UsageError(`${p}: dimension must be an integer >= 1, got ${String(n)}`);
  if (!opts.bounds || typeof opts.bounds !== 'object') throw new UsageError(`${p}: bounds {lower, upper} are required`);
  const lower = finiteArray(opts.bounds.lower, n, 'bounds.lower', p);
  const upper = finiteArray(opts.bounds.upper, n, 'bounds.upper', p);
  for (let d = 0; d < n; d++) {
    if (!(lower[d]! < upper[d]!)) throw new UsageError(`${p}: bounds.lower[${d}] (${lower[d]}) must be < bounds.upper[${d}] (${upper[d]})`);
  }
  let x0: number[] | null = null;
  if (opts.x0 !== undefined && opts.x0 !== null) {
    x0 = finiteArray(opts.x0, n, 'x0', p);
    for (let d = 0; d < n; d++) {
      if (x0[d]! < lower[d]! || x0[d]! > upper[d]!) {
        throw new UsageError(`${p}: x0[${d}] = ${x0[d]} is outside the bounds [${lower[d]}, ${upper[d]}]`);
      }
    }
  }
  let f0: EvalResult | null = null;
  if (opts.f0 !== undefined && opts.f0 !== null) {
    if (!x0) throw new UsageError(`${p}: f0 needs x0 (f0 is the result of evaluating x0)`);
    try {
      f0 = checkResult(opts.f0, 'f0');
    } catch (e) {
      throw new UsageError(`${p}: ${(e as Error).message}`);
    }
  }
  const seed = opts.seed;
  if (!(typeof seed === 'string' || (typeof seed === 'number' && Number.isFinite(seed)))) {
    throw new UsageError(`${p}: seed must be a finite number or a string, got ${String(seed)}`);
  }
  const budget = opts.budget;
  if (!isInt(budget) || budget < 1) throw new UsageError(`${p}: budget must be an integer >= 1, got ${String(budget)}`);

  const popDefault = name === 'one-plus-one' ? 1 : name === 'cmaes' ? defaultLambda(n) : DEFAULT_POP_SIZE;
  const popSize = opts.popSize ?? popDefault;
  if (!isInt(popSize) || popSize < 1) throw new UsageError(`${p}: popSize must be an integer >= 1, got ${String(popSize)}`);
  if (name === 'ncs' && popSize < 2) throw new UsageError(`${p}: popSize must be >= 2 (negative correlation needs two search processes), got ${popSize}`);
  if (name === 'one-plus-one' && popSize !== 1) throw new UsageError(`${p}: popSize must be 1 for a (1+1)-ES, got ${popSize}`);

  let sigma0: number[];
  if (opts.sigma0 === undefined || opts.sigma0 === null) {
    if (name === 'olmp-released') sigma0 = new Array<number>(n).fill(OLMP_RELEASED_SIGMA0);
    else if (name === 'ncs') sigma0 = upper.map((u, d) => (u - lower[d]!) / popSize);
    else sigma0 = upper.map((u, d) => (u - lower[d]!) / 10);
  } else if (typeof opts.sigma0 === 'number') {
    sigma0 = new Array<number>(n).fill(opts.sigma0);
  } else {
    sigma0 = finiteArray(opts.sigma0, n, 'sigma0', p);
  }
  sigma0.forEach((s, d) => {
    if (!(Number.isFinite(s) && s > 0)) throw new UsageError(`${p}: sigma0${opts.sigma0 !== undefined && typeof opts.sigma0 !== 'number' ? `[${d}]` : ''} must be a finite number > 0, got ${s}`);
  });

  const epoch = opts.epoch ?? popSize;
  if (!isInt(epoch) || epoch < 1) throw new UsageError(`${p}: epoch must be an integer >= 1, got ${String(epoch)}`);
  const r = opts.r ?? DEFAULT_R;
  if (typeof r !== 'number' || !(r > 0 && r < 1)) throw new UsageError(`${p}: r must be a number in (0, 1), got ${String(r)}`);
  const penalty = opts.penalty ?? DEFAULT_PENALTY;
  if (typeof penalty !== 'number' || !Number.isFinite(penalty)) throw new UsageError(`${p}: penalty must be a finite number, got ${String(penalty)}`);
  const damping = opts.damping ?? Math.sqrt(n + 1);
  if (typeof damping !== 'number' || !(Number.isFinite(damping) && damping > 0)) {
    throw new UsageError(`${p}: damping must be a finite number > 0, got ${String(damping)}`);
  }
  const stream = opts.stream ?? null;
  if (stream !== null && !(typeof stream.uniform === 'function' && typeof stream.normal === 'function' && typeof stream.state === 'function')) {
    throw new UsageError(`${p}: stream must have uniform(), normal() and state()`);
  }
  return { dimension: n, bounds: { lower, upper }, x0, f0, seed, stream, budget, popSize, sigma0, epoch, r, penalty, damping };
}

export function optionsToJson(o: ResolvedOptions): ResolvedOptionsJson {
  const { stream: _stream, ...rest } = o;
  return {
    ...rest,
    bounds: { lower: o.bounds.lower.slice(), upper: o.bounds.upper.slice() },
    x0: o.x0 ? o.x0.slice() : null,
    f0: o.f0 ? encodeResult(o.f0) : null,
    sigma0: o.sigma0.slice(),
  };
}

export function optionsFromJson(o: ResolvedOptionsJson): OptimizerOptions {
  return {
    dimension: o.dimension,
    bounds: o.bounds,
    ...(o.x0 ? { x0: o.x0 } : {}),
    ...(o.f0 ? { f0: decodeResult(o.f0) } : {}),
    seed: o.seed,
    budget: o.budget,
    popSize: o.popSize,
    sigma0: o.sigma0,
    epoch: o.epoch,
    r: o.r,
    penalty: o.penalty,
    damping: o.damping,
  };
}
