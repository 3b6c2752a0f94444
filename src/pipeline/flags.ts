/**
 * The flags of an OLMP search (shared by `prunus search`, `prunus reproduce` and the sweep's checks) and their
 * translation into SearchOptions, with an optional --config JSON file underneath.
 */
import { readFileSync, existsSync } from 'node:fs';
import { COMMON_FLAGS } from '../cli-args.js';
import { parseNumber, UsageError } from '../../foundation/errors.js';
import { parseDuration, parseNumberList, type OlmpConfig } from './config.js';
import type { SearchOptions } from './run.js';

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
  'train-shards': { type: 'string' },
  'train-threads': { type: 'string' },
  dataset: { type: 'string' },
  'data-dir': { type: 'string' },
  'split-seed': { type: 'string' },
  'input-scale': { type: 'string' },
  'input-offset': { type: 'string' },
  'train-order': { type: 'string' },
  rng: { type: 'string' },
  evaluation: { type: 'string' },
  'final-search': { type: 'boolean' },
  'search-all-layers': { type: 'boolean' },
  'retrain-lr': { type: 'string' },
  distill: { type: 'string' },
  'distill-temperature': { type: 'string' },
  config: { type: 'string' },
  quick: { type: 'boolean', default: false },
  'keep-checkpoints': { type: 'boolean', default: false },
  out: { type: 'string' },
} as const;

export type FlagValues = Record<string, string | boolean | undefined>;

/** Turns parsed flags (and an optional --config file) into SearchOptions. */
export function searchOptionsFromFlags(v: FlagValues, model: string): SearchOptions {
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
  set('trainShards', num('train-shards', { integer: true }));
  set('trainThreads', num('train-threads', { integer: true }));
  set('dataset', v.dataset as string | undefined);
  set('dataDir', v['data-dir'] as string | undefined);
  set('splitSeed', num('split-seed', { integer: true }));
  set('inputScale', num('input-scale'));
  set('inputOffset', num('input-offset'));
  set('trainOrder', v['train-order'] as OlmpConfig['trainOrder'] | undefined);
  set('rng', v.rng as OlmpConfig['rng'] | undefined);
  set('evaluation', v.evaluation as OlmpConfig['evaluation'] | undefined);
  if (v['search-all-layers'] !== undefined) set('searchAllLayers', v['search-all-layers'] === true);
  if (v['final-search'] !== undefined) set('finalSearch', v['final-search'] === true);
  set('retrainLr', v['retrain-lr'] as OlmpConfig['retrainLr'] | undefined);
  set('distillAlpha', num('distill'));
  set('distillTemperature', num('distill-temperature'));
  if (v.quick) opts.quick = true;
  if (v['keep-checkpoints']) opts.keepCheckpoints = true;
  return opts;
}
