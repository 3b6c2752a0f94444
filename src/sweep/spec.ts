/**
 * Sweep files: parsing, validation (one-line errors naming the field), and expansion into runs with stable ids.
 *
 *   { "name": "lenets", "out": "results/sweeps/lenets", "parallel": 2,
 *     "base": { "quick": true, "constraint": "validation" },
 *     "grid": { "model": ["lenet-300-100", "lenet-5"], "seed": [1, 2, 3], "max-acc-drop": [0.01, 0.02] },
 *     "runs": [ { "model": "lenet-5", "seed": 981118, "optimizer": "olmp-released" } ] }
 *
 * Keys of base/grid/runs are the command's flags without the dashes (kebab-case, as on the command line).
 * A grid is the cartesian product of its lists (first key outermost); explicit runs are added after it.
 * Every run gets the base flags, overridden by its own.
 */
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { UsageError } from '../../foundation/errors.js';
import { OLMP_OPTIMIZERS, CONSTRAINTS, RNG_KINDS, EVALUATION_MODES } from '../pipeline/config.js';
import { TRAIN_ORDERS } from '../../foundation/data/datasets.js';

export type FlagValue = string | number | boolean;
export type Flags = Record<string, FlagValue>;

export interface SweepSpec {
  name: string;
  /** Sweep directory; relative to the sweep file's folder (default results/sweeps/<name> under the working directory). */
  out?: string;
  /** Runs at once (default max(1, floor(cores / workers per run))). */
  parallel?: number;
  /** The prunus command each run executes (only 'search' for now). */
  command?: string;
  base?: Flags;
  grid?: Record<string, FlagValue[]>;
  runs?: Flags[];
}

export interface SweepRun {
  /** Stable id derived from the run's flags, e.g. `lenet-5_s961449_ncs_d0.02`; also its folder name under runs/. */
  id: string;
  /** Every flag of the run (base merged with its own), as in the sweep file. */
  flags: Flags;
  /** Where it came from: `grid[3]` or `runs[0]`. */
  origin: string;
}

const TOP_KEYS = ['name', 'out', 'parallel', 'command', 'base', 'grid', 'runs', 'description'] as const;
export const SWEEP_COMMANDS = ['search'] as const;
/** Flags the sweep sets itself for every run. */
const RESERVED: Record<string, string> = {
  out: 'is set by the sweep (each run goes to <sweep>/runs/<id>)',
  json: 'is set by the sweep',
  help: 'is not a run flag',
  config: 'is not supported in sweeps (put the options in base)',
};

/** What `prunus search` accepts (the run-directory contract); used to check values before anything runs. */
const CHOICES: Record<string, readonly string[]> = {
  optimizer: OLMP_OPTIMIZERS,
  constraint: CONSTRAINTS,
  backend: ['auto', 'webgpu', 'tensorflow', 'wasm', 'cpu'],
  'train-order': TRAIN_ORDERS,
  rng: RNG_KINDS,
  evaluation: EVALUATION_MODES,
};
const INTEGER_FLAGS = new Set([
  'seed',
  'split-seed',
  'max-params',
  'reference-iterations',
  'iterations',
  'prune-until',
  'search-period',
  'log-period',
  'checkpoint-period',
  'pop-size',
  'search-budget',
  'batch-size',
  'workers',
]);
const NUMBER_FLAGS = new Set(['max-acc-drop', 'delta', 'target-compression', 'sigma0', 'initial-crate', 'input-scale']);
/** Flags naming a zoo entry or a path that must exist: model (a zoo model or a model.json), dataset. */
const NAMED_OR_PATH: Record<string, readonly string[]> = {
  model: ['lenet-300-100', 'lenet-5'],
  dataset: ['mnist', 'fashion-mnist'],
};
const BOOLEAN_FLAGS = new Set(['quick']);
/** Short forms used in run ids, in this order; flags not listed follow alphabetically as `<flag><value>`. */
const ID_ORDER: [flag: string, prefix: string][] = [
  ['model', ''],
  ['seed', 's'],
  ['optimizer', ''],
  ['constraint', ''],
  ['max-acc-drop', 'd'],
  ['delta', 'delta'],
];
const ALWAYS_IN_ID = new Set(['model', 'seed', 'optimizer']);

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks one flag value; `where` is the field path for the message (e.g. `grid.seed[2]`). */
function checkValue(label: string, where: string, flag: string, v: unknown, command: string): void {
  const fail = (what: string) => {
    throw new UsageError(`${label}: ${where} must be ${what}, got ${describe(v)}`);
  };
  if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') fail('a string, number or boolean');
  if (typeof v === 'number' && !Number.isFinite(v)) fail('a finite number');
  if (command !== 'search') return;
  if (BOOLEAN_FLAGS.has(flag)) {
    if (typeof v !== 'boolean') fail('true or false');
    return;
  }
  if (INTEGER_FLAGS.has(flag)) {
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= 0)) fail('a non-negative integer');
    return;
  }
  if (NUMBER_FLAGS.has(flag)) {
    if (!(typeof v === 'number' && v >= 0)) fail('a non-negative number');
    return;
  }
  if (flag === 'input-offset') {
    if (typeof v !== 'number') fail('a number');
    return;
  }
  const named = NAMED_OR_PATH[flag];
  if (named) {
    if (!(typeof v === 'string' && (named.includes(v) || existsSync(v)))) fail(`one of ${named.join(', ')}, or an existing path`);
    return;
  }
  const choices = CHOICES[flag];
  if (choices && !(typeof v === 'string' && choices.includes(v))) fail(`one of ${choices.join(', ')}`);
  if (typeof v === 'boolean') fail('a string or number (only quick is a switch)');
}

/** The same message as checkValue, phrased for a whole grid list ("grid.seed must be an array of integers"). */
function gridWhat(flag: string): string {
  if (INTEGER_FLAGS.has(flag)) return 'an array of integers';
  if (NUMBER_FLAGS.has(flag)) return 'an array of numbers';
  if (BOOLEAN_FLAGS.has(flag)) return 'an array of true/false';
  const c = CHOICES[flag] ?? NAMED_OR_PATH[flag];
  if (c) return `an array of ${c.join(' | ')}`;
  return 'an array of strings or numbers';
}

function checkFlagName(label: string, where: string, flag: string, known: ReadonlySet<string> | null, command: string): void {
  if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(flag)) {
    const kebab = flag.replace(/^-+/, '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    throw new UsageError(`${label}: ${where} is not a flag name (write flags without dashes in kebab-case, e.g. '${kebab}')`);
  }
  if (RESERVED[flag]) throw new UsageError(`${label}: ${where} ${RESERVED[flag]}`);
  if (known && !known.has(flag)) throw new UsageError(`${label}: ${where} is not a flag of 'prunus ${command}'`);
}

function checkFlags(label: string, where: string, v: unknown, command: string, known: ReadonlySet<string> | null): Flags {
  if (!isPlainObject(v)) throw new UsageError(`${label}: ${where} must be an object of flags, got ${describe(v)}`);
  for (const [k, x] of Object.entries(v)) {
    checkFlagName(label, `${where}.${k}`, k, known, command);
    checkValue(label, `${where}.${k}`, k, x, command);
  }
  return v as Flags;
}

export interface ValidateOptions {
  /** Name used in messages (default 'sweep.json'). */
  label?: string;
  /** Flag names the run command accepts; null = don't check names. */
  knownFlags?: ReadonlySet<string> | null;
}

/** Validates a parsed sweep file. Throws a one-line UsageError naming the field. */
export function validateSweepSpec(raw: unknown, opts: ValidateOptions = {}): SweepSpec {
  const label = opts.label ?? 'sweep.json';
  const known = opts.knownFlags ?? null;
  if (!isPlainObject(raw)) throw new UsageError(`${label}: must hold a JSON object, got ${describe(raw)}`);
  for (const k of Object.keys(raw)) {
    if (!(TOP_KEYS as readonly string[]).includes(k)) throw new UsageError(`${label}: unknown field '${k}' (known: ${TOP_KEYS.join(', ')})`);
  }
  const { name, out, parallel, command, base, grid, runs } = raw;
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new UsageError(`${label}: name must be a non-empty string of letters, digits, '.', '_' or '-', got ${describe(name)}`);
  }
  if (out !== undefined && (typeof out !== 'string' || out.trim() === '')) throw new UsageError(`${label}: out must be a non-empty path string, got ${describe(out)}`);
  if (parallel !== undefined && !(typeof parallel === 'number' && Number.isInteger(parallel) && parallel >= 1 && parallel <= 256)) {
    throw new UsageError(`${label}: parallel must be an integer from 1 to 256, got ${describe(parallel)}`);
  }
  const cmd = command === undefined ? 'search' : command;
  if (typeof cmd !== 'string' || !(SWEEP_COMMANDS as readonly string[]).includes(cmd)) {
    throw new UsageError(`${label}: command must be one of ${SWEEP_COMMANDS.join(', ')}, got ${describe(command)}`);
  }
  const spec: SweepSpec = { name, command: cmd };
  if (typeof out === 'string') spec.out = out;
  if (typeof parallel === 'number') spec.parallel = parallel;
  if (typeof raw.description === 'string') (spec as SweepSpec & { description?: string }).description = raw.description;
  if (base !== undefined) spec.base = checkFlags(label, 'base', base, cmd, known);
  if (grid !== undefined) {
    if (!isPlainObject(grid)) throw new UsageError(`${label}: grid must be an object of flag: [values], got ${describe(grid)}`);
    const g: Record<string, FlagValue[]> = {};
    for (const [k, list] of Object.entries(grid)) {
      checkFlagName(label, `grid.${k}`, k, known, cmd);
      if (!Array.isArray(list) || list.length === 0) throw new UsageError(`${label}: grid.${k} must be ${gridWhat(k)} (non-empty), got ${describe(list)}`);
      list.forEach((x, i) => {
        try {
          checkValue(label, `grid.${k}[${i}]`, k, x, cmd);
        } catch {
          throw new UsageError(`${label}: grid.${k} must be ${gridWhat(k)}, but item ${i} is ${describe(x)}`);
        }
      });
      const seen = new Set<string>();
      for (const x of list) {
        const key = JSON.stringify(x);
        if (seen.has(key)) throw new UsageError(`${label}: grid.${k} repeats the value ${describe(x)}`);
        seen.add(key);
      }
      g[k] = list as FlagValue[];
    }
    spec.grid = g;
  }
  if (runs !== undefined) {
    if (!Array.isArray(runs)) throw new UsageError(`${label}: runs must be an array of flag objects, got ${describe(runs)}`);
    spec.runs = runs.map((r, i) => checkFlags(label, `runs[${i}]`, r, cmd, known));
  }
  const gridSize = spec.grid ? Object.values(spec.grid).reduce((n, l) => n * l.length, 1) : 0;
  if (gridSize + (spec.runs?.length ?? 0) === 0) throw new UsageError(`${label}: no runs (give a non-empty grid or runs)`);
  if (gridSize > 10_000) throw new UsageError(`${label}: grid expands to ${gridSize} runs (at most 10000)`);
  if (cmd === 'search') {
    // Every run needs a model.
    const hasModel = (f: Flags) => typeof f.model === 'string';
    if (!spec.grid?.model && !hasModel(spec.base ?? {})) {
      spec.runs?.forEach((r, i) => {
        if (!hasModel(r)) throw new UsageError(`${label}: runs[${i}].model is required (or give base.model / grid.model)`);
      });
      if (spec.grid) throw new UsageError(`${label}: grid.model or base.model is required`);
    }
  }
  return spec;
}

function idPart(flag: string, v: FlagValue, prefix: string | undefined): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9.+-]+/g, '-').replace(/^-+|-+$/g, '');
  if (typeof v === 'boolean') return v ? clean(flag) : `no-${clean(flag)}`;
  return `${prefix ?? clean(flag)}${clean(String(v))}`;
}

function canonical(flags: Flags): string {
  return JSON.stringify(Object.keys(flags).sort().map((k) => [k, flags[k]]));
}

/**
 * The run id: model, `s<seed>` and optimizer when set, then every flag whose value differs from the base
 * (so that each run's id depends only on its own flags and the base, never on the other runs).
 */
export function runId(flags: Flags, base: Flags = {}): string {
  const parts: string[] = [];
  const used = new Set<string>();
  const include = (k: string) => k in flags && (ALWAYS_IN_ID.has(k) || !(k in base) || base[k] !== flags[k]);
  for (const [k, prefix] of ID_ORDER) {
    if (include(k)) parts.push(idPart(k, flags[k]!, prefix));
    used.add(k);
  }
  for (const k of Object.keys(flags).sort()) if (!used.has(k) && include(k)) parts.push(idPart(k, flags[k]!, undefined));
  let id = parts.filter((p) => p.length > 0).join('_') || 'run';
  if (id.length > 96) id = `${id.slice(0, 80).replace(/[_.-]+$/, '')}_${createHash('sha1').update(canonical(flags)).digest('hex').slice(0, 10)}`;
  return id;
}

/** Expands a validated spec into its runs (grid first, then explicit runs). Duplicate runs are an error. */
export function expandRuns(spec: SweepSpec, label = 'sweep.json'): SweepRun[] {
  const base = spec.base ?? {};
  const out: SweepRun[] = [];
  if (spec.grid) {
    const keys = Object.keys(spec.grid);
    let combos: Flags[] = [{}];
    for (const k of keys) combos = combos.flatMap((c) => spec.grid![k]!.map((v) => ({ ...c, [k]: v })));
    combos.forEach((c, i) => out.push({ id: '', flags: { ...base, ...c }, origin: `grid[${i}]` }));
  }
  spec.runs?.forEach((r, i) => out.push({ id: '', flags: { ...base, ...r }, origin: `runs[${i}]` }));
  const byId = new Map<string, SweepRun>();
  for (const r of out) {
    r.id = runId(r.flags, base);
    const prev = byId.get(r.id);
    if (prev) {
      const same = canonical(prev.flags) === canonical(r.flags);
      throw new UsageError(
        same
          ? `${label}: ${r.origin} repeats ${prev.origin} (same flags, run '${r.id}')`
          : `${label}: ${r.origin} and ${prev.origin} get the same run id '${r.id}'; make their flags differ in a visible way`,
      );
    }
    byId.set(r.id, r);
  }
  return out;
}

/** Command-line arguments for a run's flags (booleans as switches; false is left out). */
export function flagsToArgv(flags: Flags): string[] {
  const argv: string[] = [];
  for (const [k, v] of Object.entries(flags)) {
    if (typeof v === 'boolean') {
      if (v) argv.push(`--${k}`);
    } else {
      argv.push(`--${k}`, String(v));
    }
  }
  return argv;
}

/** Parses sweep-file text; `label` names the file in messages. */
export function parseSweepText(text: string, opts: ValidateOptions = {}): SweepSpec {
  const label = opts.label ?? 'sweep.json';
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${label}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  return validateSweepSpec(raw, opts);
}
