/**
 * What a sweep knows about the commands its runs execute (`prunus search`, `prunus compress`): the value each flag
 * takes (checked before anything runs), the flags a sweep sets itself, how run ids are formed, and which training
 * two runs would share (so that it is done once, not side by side).
 *
 * The compress tables repeat the names of src/commands/compress.ts (its flags, modes, methods, objectives) rather
 * than importing them: those modules load the channel scorers (tfjs, mathjs), which checking a sweep file does not
 * need. test/sweep-compress.test.ts checks that both say the same.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OLMP_OPTIMIZERS, CONSTRAINTS, RNG_KINDS, EVALUATION_MODES, parseDuration } from '../pipeline/config.js';
import { TRAIN_ORDERS } from '../../foundation/data/datasets.js';
import { CHANNEL_MODELS } from '../../models/zoo-cnn.js';
import { resolveModel } from '../../models/source.js';

export const SWEEP_COMMANDS = ['search', 'compress'] as const;
export type SweepCommandName = (typeof SWEEP_COMMANDS)[number];

/** The value a flag takes. Flags without a rule take any string or number. */
export type Rule =
  | { kind: 'switch' }
  | { kind: 'integer'; min: number; max?: number }
  | { kind: 'number'; min?: number; max?: number; /** exclusive lower bound */ above?: number }
  | { kind: 'choice'; values: readonly string[] }
  /** A zoo name, or a path that exists. */
  | { kind: 'name-or-path'; values: readonly string[] }
  /** Seconds (a number), or a string like 90s, 15m, 2h. */
  | { kind: 'duration' }
  /** 'lo,hi' with lo < hi. */
  | { kind: 'range' }
  /** Any string or number (a path the command checks itself). */
  | { kind: 'text' };

export interface SweepCommand {
  name: SweepCommandName;
  rules: Readonly<Record<string, Rule>>;
  /** Flags of the command that a run of a sweep may not set, and why. */
  reserved: Readonly<Record<string, string>>;
  /** Short forms used in run ids, in this order; flags not listed follow alphabetically as `<flag><value>`. */
  idOrder: readonly [flag: string, prefix: string][];
  /** Flags shown in every id where set (the others only where they differ from the base). */
  alwaysInId: ReadonlySet<string>;
  /** Runs with the same key would train the same network first (search: the reference; compress: the baseline). */
  sharedTrainingKey(flags: Record<string, unknown>): string | null;
  /** Whether a run folder has got past that training (a run waiting for it can then start and find it cached). */
  pastSharedTraining(runDir: string): boolean;
  /** Whether the run may be given the sweep's share of the cores as --workers (when it sets none itself). */
  takesWorkers(flags: Record<string, unknown>): boolean;
}

const BACKENDS = ['auto', 'webgpu', 'tensorflow', 'wasm', 'cpu'];
const DATASETS = ['mnist', 'fashion-mnist'];

const COMMON_RESERVED: Record<string, string> = {
  out: 'is set by the sweep (each run goes to <sweep>/runs/<id>)',
  json: 'is set by the sweep',
  help: 'is not a run flag',
};

function keyOf(flags: Record<string, unknown>, names: string[]): string {
  return JSON.stringify(names.map((x) => flags[x] ?? null));
}

const int = (min: number, max?: number): Rule => ({ kind: 'integer', min, ...(max !== undefined ? { max } : {}) });
const nonNegative: Rule = { kind: 'number', min: 0 };

const SEARCH: SweepCommand = {
  name: 'search',
  rules: {
    optimizer: { kind: 'choice', values: OLMP_OPTIMIZERS },
    constraint: { kind: 'choice', values: CONSTRAINTS },
    backend: { kind: 'choice', values: BACKENDS },
    'train-order': { kind: 'choice', values: TRAIN_ORDERS },
    rng: { kind: 'choice', values: RNG_KINDS },
    evaluation: { kind: 'choice', values: EVALUATION_MODES },
    ...Object.fromEntries(
      ['seed', 'split-seed', 'max-params', 'reference-iterations', 'iterations', 'prune-until', 'search-period', 'log-period', 'checkpoint-period', 'pop-size', 'search-budget', 'batch-size', 'workers'].map((f) => [f, int(0)]),
    ),
    ...Object.fromEntries(['max-acc-drop', 'delta', 'target-compression', 'sigma0', 'initial-crate', 'input-scale'].map((f) => [f, nonNegative])),
    'input-offset': { kind: 'number' },
    model: { kind: 'name-or-path', values: ['lenet-300-100', 'lenet-5'] },
    dataset: { kind: 'name-or-path', values: DATASETS },
    quick: { kind: 'switch' },
  },
  reserved: { ...COMMON_RESERVED, config: 'is not supported in sweeps (put the options in base)' },
  idOrder: [
    ['model', ''],
    ['seed', 's'],
    ['optimizer', ''],
    ['constraint', ''],
    ['max-acc-drop', 'd'],
    ['delta', 'delta'],
  ],
  alwaysInId: new Set(['model', 'seed', 'optimizer']),
  sharedTrainingKey: (flags) =>
    flags.reference !== undefined ? null : keyOf(flags, ['model', 'seed', 'dataset', 'split-seed', 'train-order', 'reference-iterations', 'batch-size', 'quick', 'backend', 'data-dir']),
  // The first phase event is written once the reference is trained.
  pastSharedTraining: (runDir) => {
    try {
      return /"type"\s*:\s*"phase"/.test(readFileSync(join(runDir, 'events.jsonl'), 'utf8'));
    } catch {
      return false;
    }
  },
  takesWorkers: () => true,
};

/** `prunus compress --mode` values (COMPRESS_MODES of src/compress/config.ts). */
export const COMPRESS_MODE_NAMES = ['joint', 'chained', 'olmp', 'channels'] as const;
/** `prunus compress --method` values (METHOD_NAMES of src/channels/config.ts). */
export const COMPRESS_METHOD_NAMES = ['di', 'dcp', 'gfbs', 'l1', 'random'] as const;
/** `prunus compress --objective` values (COMPRESS_OBJECTIVES of src/compress/config.ts). */
export const COMPRESS_OBJECTIVE_NAMES = ['size', 'macs', 'mixed'] as const;

const COMPRESS: SweepCommand = {
  name: 'compress',
  // Bounds as src/commands/compress.ts and validateCompressConfig check them.
  rules: {
    model: { kind: 'name-or-path', values: Object.keys(CHANNEL_MODELS) },
    method: { kind: 'choice', values: COMPRESS_METHOD_NAMES },
    mode: { kind: 'choice', values: COMPRESS_MODE_NAMES },
    objective: { kind: 'choice', values: COMPRESS_OBJECTIVE_NAMES },
    backend: { kind: 'choice', values: BACKENDS },
    'max-acc-drop': { kind: 'number', min: 0, max: 1 },
    'flops-budget': { kind: 'number', above: 0, max: 1 },
    'target-compression': { kind: 'number', min: 1 },
    'time-budget': { kind: 'duration' },
    seed: int(0),
    quick: { kind: 'switch' },
    verbose: { kind: 'switch' },
    workers: int(0, 64),
    'search-budget': int(2),
    'pop-size': int(1),
    'crate-bounds': { kind: 'range' },
    'search-acc-drop': { kind: 'number', min: 0, max: 1 },
    'finetune-steps': int(0),
    'baseline-steps': int(1),
    'di-steps': int(1),
    'bn-recalibration': int(0),
    iterations: int(1),
    'prune-until': int(0),
    'olmp-search-budget': int(1),
    'train-shards': int(1),
    'train-threads': int(0, 256),
    dataset: { kind: 'name-or-path', values: DATASETS },
    'data-dir': { kind: 'text' },
    'input-scale': { kind: 'number', above: 0 },
    'input-offset': { kind: 'number' },
  },
  reserved: {
    ...COMMON_RESERVED,
    ...Object.fromEntries(['compare', 'models', 'methods', 'modes', 'seeds'].map((f) => [f, "is for 'prunus compress --compare' (a sweep's runs are single compress runs: put the values in grid)"])),
  },
  idOrder: [
    ['model', ''],
    ['mode', ''],
    ['method', ''],
    ['seed', 's'],
    ['objective', ''],
    ['flops-budget', 'f'],
    ['target-compression', 'c'],
    ['max-acc-drop', 'd'],
  ],
  alwaysInId: new Set(['model', 'mode', 'method', 'seed']),
  // The baseline cache key (src/channels/baseline.ts); a model given as a file is not trained.
  sharedTrainingKey: (flags) =>
    typeof flags.model === 'string' && flags.model in CHANNEL_MODELS ? keyOf(flags, ['model', 'seed', 'dataset', 'data-dir', 'quick', 'baseline-steps', 'train-shards']) : null,
  // stages.json (phases.json in run folders of earlier versions) is first written when the baseline stage ends.
  pastSharedTraining: (runDir) => existsSync(join(runDir, 'stages.json')) || existsSync(join(runDir, 'phases.json')),
  // Pool workers evaluate candidates with the baseline's BatchNorm statistics, so compress refuses --workers where
  // candidates are recalibrated (BatchNorm models, a channel stage, --bn-recalibration not 0): those runs evaluate
  // in their own thread.
  takesWorkers: (flags) => flags.mode === 'olmp' || flags['bn-recalibration'] === 0 || typeof flags.model !== 'string' || !hasBatchNorm(flags.model),
};

function hasBatchNorm(model: string): boolean {
  try {
    return resolveModel(model).arch.ops.some((o) => o.type === 'batchnorm');
  } catch {
    return false; // the run itself reports a model it cannot read
  }
}

const COMMANDS: Record<SweepCommandName, SweepCommand> = { search: SEARCH, compress: COMPRESS };

export function isSweepCommand(name: unknown): name is SweepCommandName {
  return typeof name === 'string' && (SWEEP_COMMANDS as readonly string[]).includes(name);
}

/** The description of a sweep command (unknown names are a programming error: specs are validated first). */
export function sweepCommand(name: string | undefined): SweepCommand {
  const c = COMMANDS[(name ?? 'search') as SweepCommandName];
  if (!c) throw new Error(`sweep: unknown command '${name}'`);
  return c;
}

/** Flag names `prunus <command>` accepts in a sweep (reserved ones included, so that they get their own message). */
export async function commandFlagNames(name: SweepCommandName): Promise<Set<string> | null> {
  if (name === 'compress') return new Set([...Object.keys(COMPRESS.rules), ...Object.keys(COMPRESS.reserved)]);
  try {
    const mod = (await import('../pipeline/flags.js')) as { SEARCH_FLAGS?: Record<string, unknown> };
    return mod.SEARCH_FLAGS ? new Set(Object.keys(mod.SEARCH_FLAGS)) : null;
  } catch {
    return null;
  }
}

function integerWhat(r: { min: number; max?: number }, many: boolean): string {
  if (r.max !== undefined) return many ? `integers from ${r.min} to ${r.max}` : `an integer from ${r.min} to ${r.max}`;
  if (r.min === 0) return many ? 'integers' : 'a non-negative integer';
  return many ? `integers >= ${r.min}` : `an integer >= ${r.min}`;
}

function numberWhat(r: { min?: number; max?: number; above?: number }, many: boolean): string {
  const lo = r.above !== undefined ? `(${r.above}` : r.min !== undefined ? `[${r.min}` : null;
  if (lo !== null && r.max !== undefined) return `${many ? 'numbers' : 'a number'} in ${lo}, ${r.max}]`;
  if (r.above === 0) return many ? 'positive numbers' : 'a positive number';
  if (r.min === 0) return many ? 'numbers' : 'a non-negative number';
  if (r.min !== undefined) return `${many ? 'numbers' : 'a number'} >= ${r.min}`;
  return many ? 'numbers' : 'a number';
}

const DURATION = 'a duration (seconds, or like 90s, 15m, 2h)';

/** What a value of the flag must be, or null when `v` is one. */
export function ruleProblem(cmd: SweepCommand, flag: string, v: string | number | boolean): string | null {
  const rule = cmd.rules[flag] ?? { kind: 'text' };
  switch (rule.kind) {
    case 'switch':
      return typeof v === 'boolean' ? null : 'true or false';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v) && v >= rule.min && (rule.max === undefined || v <= rule.max) ? null : integerWhat(rule, false);
    case 'number': {
      const ok = typeof v === 'number' && (rule.min === undefined || v >= rule.min) && (rule.above === undefined || v > rule.above) && (rule.max === undefined || v <= rule.max);
      return ok ? null : numberWhat(rule, false);
    }
    case 'choice':
      return typeof v === 'string' && rule.values.includes(v) ? null : `one of ${rule.values.join(', ')}`;
    case 'name-or-path':
      return typeof v === 'string' && (rule.values.includes(v) || existsSync(v)) ? null : `one of ${rule.values.join(', ')}, or an existing path`;
    case 'duration':
      if (typeof v === 'number') return v > 0 ? null : DURATION;
      if (typeof v !== 'string') return DURATION;
      try {
        parseDuration(flag, v);
        return null;
      } catch {
        return DURATION;
      }
    case 'range': {
      const parts = typeof v === 'string' ? v.split(',').map((s) => (s.trim() === '' ? NaN : Number(s))) : [];
      return parts.length === 2 && parts.every(Number.isFinite) && parts[0]! < parts[1]! ? null : "two numbers 'lo,hi' with lo < hi";
    }
    case 'text': {
      if (typeof v !== 'boolean') return null;
      const switches = Object.keys(cmd.rules).filter((k) => cmd.rules[k]!.kind === 'switch');
      return `a string or number (only ${switches.join(' and ')} ${switches.length === 1 ? 'is a switch' : 'are switches'})`;
    }
  }
}

/** The same, phrased for a whole grid list ("grid.seed must be an array of integers"). */
export function gridWhat(cmd: SweepCommand, flag: string): string {
  const rule = cmd.rules[flag];
  switch (rule?.kind) {
    case 'switch':
      return 'an array of true/false';
    case 'integer':
      return `an array of ${integerWhat(rule, true)}`;
    case 'number':
      return `an array of ${numberWhat(rule, true)}`;
    case 'choice':
    case 'name-or-path':
      return `an array of ${rule.values.join(' | ')}`;
    case 'duration':
      return 'an array of durations (seconds, or like 90s, 15m, 2h)';
    case 'range':
      return "an array of 'lo,hi' strings";
    default:
      return 'an array of strings or numbers';
  }
}
