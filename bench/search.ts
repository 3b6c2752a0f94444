/**
 * Benchmark of the search/ optimisers on shifted sphere, Rastrigin and Ackley.
 *
 *   node dist/bench/search.js [--json] [--seeds 11] [--budget 1600,16000] [--dims 2,10,30]
 *        [--functions sphere,rastrigin,ackley] [--optimizers ncs,olmp-released,one-plus-one,random,cmaes]
 *        [--sigma-frac 0.1]
 *
 * For every optimiser × function × dimension × budget, runs seeds 1..S from a uniform start (no x0) and reports
 * the median (and quartiles) of the best objective reached. All but random get
 * sigma0 = sigma-frac × box width (0.1 is the NCS-C default (ub−lb)/N with N = 10).
 */
import { pathToFileURL } from 'node:url';
import { UsageError, parseNumber } from '../foundation/errors.js';
import { BENCHMARK_NAMES, makeProblem, type BenchmarkName } from '../search/benchmarks.js';
import { OPTIMIZER_NAMES, createOptimizer, runOptimizerSync, type OptimizerName } from '../search/index.js';
import { median, quantile } from '../search/stats.js';

export interface SearchBenchRow {
  optimizer: OptimizerName;
  function: BenchmarkName;
  dimension: number;
  budget: number;
  evaluations: number;
  seeds: number;
  median: number;
  q25: number;
  q75: number;
  min: number;
  max: number;
  ms: number;
}

interface Args {
  json: boolean;
  seeds: number;
  budgets: number[];
  dims: number[];
  functions: BenchmarkName[];
  optimizers: OptimizerName[];
  sigmaFrac: number;
}

function list<T extends string>(flag: string, raw: string, allowed: readonly T[]): T[] {
  const out = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of out) if (!(allowed as readonly string[]).includes(s)) throw new UsageError(`${flag}: unknown '${s}' (expected ${allowed.join(', ')})`);
  return out as T[];
}

function ints(flag: string, raw: string): number[] {
  return raw.split(',').map((s) => parseNumber(flag, s, { integer: true, min: 1 }));
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    json: false,
    seeds: 11,
    budgets: [1600, 16000],
    dims: [2, 10, 30],
    functions: [...BENCHMARK_NAMES],
    optimizers: ['ncs', 'olmp-released', 'one-plus-one', 'random', 'cmaes'],
    sigmaFrac: 0.1,
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${f} needs a value`);
      return v;
    };
    if (f === '--json') a.json = true;
    else if (f === '--seeds') a.seeds = parseNumber(f, value(), { integer: true, min: 1 });
    else if (f === '--budget') a.budgets = ints(f, value());
    else if (f === '--dims') a.dims = ints(f, value());
    else if (f === '--functions') a.functions = list(f, value(), BENCHMARK_NAMES);
    else if (f === '--optimizers') a.optimizers = list(f, value(), OPTIMIZER_NAMES);
    else if (f === '--sigma-frac') a.sigmaFrac = parseNumber(f, value(), { min: 0, exclusiveMin: true });
    else throw new UsageError(`bench search: unknown argument '${f}'`);
  }
  return a;
}

/** One cell of the benchmark: optimiser × function × dimension × budget over seeds 1..seeds. */
export function benchCell(
  optimizer: OptimizerName,
  fn: BenchmarkName,
  dimension: number,
  budget: number,
  seeds: number,
  sigmaFrac = 0.1,
): SearchBenchRow {
  const p = makeProblem(fn, dimension);
  const width = p.bounds.upper.map((u, d) => u - p.bounds.lower[d]!);
  const bests: number[] = [];
  const evals: number[] = [];
  const t0 = performance.now();
  for (let s = 1; s <= seeds; s++) {
    const opt = createOptimizer(optimizer, {
      dimension,
      bounds: p.bounds,
      seed: s,
      budget,
      ...(optimizer === 'random' ? {} : { sigma0: width.map((w) => sigmaFrac * w) }),
    });
    const best = runOptimizerSync(opt, (xs) => xs.map((x) => p.evaluate(x)));
    bests.push(best!.result.fitness);
    evals.push(opt.evaluations);
  }
  return {
    optimizer,
    function: fn,
    dimension,
    budget,
    evaluations: median(evals),
    seeds,
    median: median(bests),
    q25: quantile(bests, 0.25),
    q75: quantile(bests, 0.75),
    min: Math.min(...bests),
    max: Math.max(...bests),
    ms: Math.round(performance.now() - t0),
  };
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e-3 && Math.abs(v) < 1e5 ? v.toFixed(4) : v.toExponential(3);
}

export async function run(args: string[]): Promise<void> {
  const a = parseArgs(args);
  const cols = ['optimizer', 'function', 'dim', 'budget', 'evals', 'median', 'q25', 'q75', 'ms'];
  const widths = [14, 10, 4, 7, 6, 11, 11, 11, 6];
  const line = (cells: string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' ');
  if (!a.json) {
    console.log(`search benchmark: seeds 1..${a.seeds}, uniform start, sigma0 = ${a.sigmaFrac} × box width; median best objective (optimum 0)`);
    console.log(line(cols));
  }
  for (const budget of a.budgets) {
    for (const fn of a.functions) {
      for (const dim of a.dims) {
        for (const opt of a.optimizers) {
          const row = benchCell(opt, fn, dim, budget, a.seeds, a.sigmaFrac);
          if (a.json) console.log(JSON.stringify(row));
          else {
            console.log(
              line([opt, fn, String(dim), String(budget), String(row.evaluations), fmt(row.median), fmt(row.q25), fmt(row.q75), String(row.ms)]),
            );
          }
        }
      }
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run(process.argv.slice(2)).catch((e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}`);
      process.exit(2);
    }
    throw e;
  });
}
