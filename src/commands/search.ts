import { readFileSync, existsSync } from 'node:fs';
import { parseFlags, COMMON_FLAGS } from '../cli-args.js';
import { parseBackendName } from '../../backends/backend.js';
import { parseNumber, UsageError } from '../../foundation/errors.js';
import { parseDuration, parseNumberList, type OlmpConfig } from '../pipeline/config.js';
import { search, type SearchOptions } from '../pipeline/run.js';
import { pipelineProgress, printReport } from '../pipeline/cli-output.js';

export const summary = 'prunus search: OLMP layer-wise magnitude pruning of a LeNet by NCS over per-layer crates (resumable)';
export const usage = `usage: prunus search --model lenet-300-100|lenet-5 [options]

  --seed S                 run seed (default: the published seed, 961449 / 981118)
  --optimizer O            ncs | olmp-released | random            (default ncs)
  --evaluation E           stateless (default): every candidate's masks from the search's start state (parallel,
                           order-free) | stateful: each from the previous candidate's, as the released code
  --rng R                  prunus (default) | numpy: numpy's MT19937 seeded [seed], as the released scripts; with
                           olmp-released it replays their layer selections and search samples draw for draw
  --constraint C           validation | batch                      (default validation)
  --max-acc-drop X         validation mode: allowed loss vs the reference's validation accuracy (default 0.01)
  --delta X                batch mode: allowed loss on the 64-image batch (default 0.08 / 0.05)
  --target-compression X   stop pruning once compression reaches X, then retrain
  --max-params N           stop pruning once non-zeros fall to N, then retrain
  --time-budget T          stop in time (90, 90s, 15m, 2h) and keep the best feasible model so far
  --reference DIR          a trained reference model (default: train one, cached under results/references/)
  --reference-iterations N (default 10000)
  --iterations N --prune-until N --search-period N --log-period N --checkpoint-period N
  --gamma a,b,c            per-layer mask-update gamma --sigma0 X --sigma-divide-at 0,10000 --bounds lo,hi
  --pop-size N --search-budget N --initial-crate X --batch-size N
  --workers N              evaluator worker threads (0 = in-process, default)
  --dataset mnist|fashion-mnist --data-dir D --split-seed N
  --train-order O          split: train on the seeded 54k, validate on the held-out 6k (default);
                           file: train on all 60k in file order, as the authors' scripts (needs --constraint batch)
  --config FILE            JSON with any of these options (camelCase); flags override it
  --quick                  a few hundred iterations on a data subset (tests, smoke runs)
  --out DIR                run directory (default results/search-<model>-s<seed>-<time>)
  --backend B --json`;

export const SEARCH_FLAGS = {
  ...COMMON_FLAGS,
  model: { type: 'string' },
  seed: { type: 'string' },
  optimizer: { type: 'string' },
  constraint: { type: 'string' },
  'max-acc-drop': { type: 'string' },
  delta: { type: 'string' },
  'target-compression': { type: 'string' },
  'max-params': { type: 'string' },
  'time-budget': { type: 'string' },
  reference: { type: 'string' },
  'reference-iterations': { type: 'string' },
  iterations: { type: 'string' },
  'prune-until': { type: 'string' },
  'search-period': { type: 'string' },
  'log-period': { type: 'string' },
  'checkpoint-period': { type: 'string' },
  gamma: { type: 'string' },
  sigma0: { type: 'string' },
  'sigma-divide-at': { type: 'string' },
  bounds: { type: 'string' },
  'pop-size': { type: 'string' },
  'search-budget': { type: 'string' },
  'initial-crate': { type: 'string' },
  'batch-size': { type: 'string' },
  workers: { type: 'string' },
  dataset: { type: 'string' },
  'data-dir': { type: 'string' },
  'split-seed': { type: 'string' },
  'train-order': { type: 'string' },
  rng: { type: 'string' },
  evaluation: { type: 'string' },
  config: { type: 'string' },
  quick: { type: 'boolean', default: false },
  out: { type: 'string' },
} as const;

type Values = Record<string, string | boolean | undefined>;

/** Turns parsed flags (and an optional --config file) into SearchOptions. */
export function searchOptionsFromFlags(v: Values, model: string): SearchOptions {
  const opts: SearchOptions = { model };
  if (typeof v.config === 'string') {
    if (!existsSync(v.config)) throw new UsageError(`--config ${v.config} does not exist`);
    let file: Record<string, unknown>;
    try {
      file = JSON.parse(readFileSync(v.config, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new UsageError(`--config ${v.config}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
    }
    for (const [k, x] of Object.entries(file)) (opts as unknown as Record<string, unknown>)[k] = x;
    opts.model = model;
  }
  const num = (flag: string, o: { min?: number; integer?: boolean } = {}) => (typeof v[flag] === 'string' ? parseNumber(`--${flag}`, v[flag] as string, o) : undefined);
  const set = <K extends keyof OlmpConfig>(k: K, val: OlmpConfig[K] | undefined) => {
    if (val !== undefined) (opts as Partial<OlmpConfig>)[k] = val;
  };
  set('seed', num('seed', { min: 0, integer: true }));
  set('optimizer', v.optimizer as OlmpConfig['optimizer'] | undefined);
  set('constraint', v.constraint as OlmpConfig['constraint'] | undefined);
  set('maxAccDrop', num('max-acc-drop'));
  set('delta', num('delta'));
  set('targetCompression', num('target-compression'));
  set('maxParams', num('max-params', { integer: true }));
  if (typeof v['time-budget'] === 'string') set('timeBudget', parseDuration('--time-budget', v['time-budget']));
  set('reference', v.reference as string | undefined);
  set('referenceIterations', num('reference-iterations', { integer: true }));
  set('iterations', num('iterations', { integer: true }));
  set('pruneUntil', num('prune-until', { integer: true }));
  set('searchPeriod', num('search-period', { integer: true }));
  set('logPeriod', num('log-period', { integer: true }));
  set('checkpointPeriod', num('checkpoint-period', { integer: true }));
  if (typeof v.gamma === 'string') set('gamma', parseNumberList('--gamma', v.gamma));
  set('sigma0', num('sigma0'));
  if (typeof v['sigma-divide-at'] === 'string') set('sigmaDivideAt', parseNumberList('--sigma-divide-at', v['sigma-divide-at']));
  if (typeof v.bounds === 'string') {
    const b = parseNumberList('--bounds', v.bounds);
    if (b.length !== 2) throw new UsageError(`--bounds must be two numbers lo,hi, got '${v.bounds}'`);
    set('bounds', [b[0]!, b[1]!]);
  }
  set('popSize', num('pop-size', { integer: true }));
  set('searchBudget', num('search-budget', { integer: true }));
  set('initialCrate', num('initial-crate'));
  set('batchSize', num('batch-size', { integer: true }));
  set('workers', num('workers', { integer: true }));
  set('dataset', v.dataset as string | undefined);
  set('dataDir', v['data-dir'] as string | undefined);
  set('splitSeed', num('split-seed', { integer: true }));
  set('trainOrder', v['train-order'] as OlmpConfig['trainOrder'] | undefined);
  set('rng', v.rng as OlmpConfig['rng'] | undefined);
  set('evaluation', v.evaluation as OlmpConfig['evaluation'] | undefined);
  if (v.quick) opts.quick = true;
  return opts;
}

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, SEARCH_FLAGS, 'search');
  if (positionals.length) throw new UsageError(`search: unexpected argument '${positionals[0]}'`);
  if (typeof v.model !== 'string') throw new UsageError('search: --model is required (lenet-300-100 or lenet-5)');
  const opts = searchOptionsFromFlags(v as Values, v.model);
  opts.backend = parseBackendName(v.backend as string);
  if (typeof v.out === 'string') opts.out = v.out;
  const json = Boolean(v.json);
  opts.log = (line) => process.stderr.write(`prunus: ${line}\n`);
  const progress = pipelineProgress(json);
  const report = await search(opts, progress.hooks);
  progress.stop();
  printReport(report, json);
  return 0;
}
