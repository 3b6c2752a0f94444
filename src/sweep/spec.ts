/**
 * Sweep files: parsing, validation (one-line errors naming the field), and expansion into runs with stable ids.
 *
 *   { "name": "lenets", "out": "results/sweeps/lenets", "parallel": 2,
 *     "base": { "quick": true, "constraint": "validation" },
 *     "grid": { "model": ["lenet-300-100", "lenet-5"], "seed": [1, 2, 3], "max-acc-drop": [0.01, 0.02] },
 *     "runs": [ { "model": "lenet-5", "seed": 981118, "optimizer": "olmp-released" } ] }
 *
 *   { "name": "c", "command": "compress", "base": { "quick": true, "model": "lenet-5", "flops-budget": 0.5 },
 *     "grid": { "method": ["di", "gfbs"], "mode": ["joint", "chained"] } }
 *
 * `command` is what every run executes: `prunus search` (the default) or `prunus compress`. Keys of base/grid/runs
 * are that command's flags without the dashes (kebab-case, as on the command line); commands.ts says which values
 * each takes.
 * A grid is the cartesian product of its lists (first key outermost); explicit runs are added after it.
 * Every run gets the base flags, overridden by its own.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../../foundation/errors.js';
import { SWEEP_COMMANDS, gridWhat, isSweepCommand, ruleProblem, sweepCommand, type SweepCommand } from './commands.js';

export { SWEEP_COMMANDS } from './commands.js';

export type FlagValue = string | number | boolean;
export type Flags = Record<string, FlagValue>;

export interface SweepSpec {
  name: string;
  /** Sweep directory; relative to the sweep file's folder (default results/sweeps/<name> under the working directory). */
  out?: string;
  /** Runs at once (default max(1, floor(cores / workers per run))). */
  parallel?: number;
  /** The prunus command each run executes: 'search' (the default) or 'compress'. */
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
function checkValue(label: string, where: string, flag: string, v: unknown, cmd: SweepCommand): void {
  const fail = (what: string) => {
    throw new UsageError(`${label}: ${where} must be ${what}, got ${describe(v)}`);
  };
  if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') return fail('a string, number or boolean');
  if (typeof v === 'number' && !Number.isFinite(v)) fail('a finite number');
  const problem = ruleProblem(cmd, flag, v);
  if (problem !== null) fail(problem);
}

function checkFlagName(label: string, where: string, flag: string, known: ReadonlySet<string> | null, cmd: SweepCommand): void {
  if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(flag)) {
    const kebab = flag.replace(/^-+/, '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    throw new UsageError(`${label}: ${where} is not a flag name (write flags without dashes in kebab-case, e.g. '${kebab}')`);
  }
  const reserved = cmd.reserved[flag];
  if (reserved) throw new UsageError(`${label}: ${where} ${reserved}`);
  if (known && !known.has(flag)) throw new UsageError(`${label}: ${where} is not a flag of 'prunus ${cmd.name}'`);
}

function checkFlags(label: string, where: string, v: unknown, cmd: SweepCommand, known: ReadonlySet<string> | null): Flags {
  if (!isPlainObject(v)) throw new UsageError(`${label}: ${where} must be an object of flags, got ${describe(v)}`);
  for (const [k, x] of Object.entries(v)) {
    checkFlagName(label, `${where}.${k}`, k, known, cmd);
    checkValue(label, `${where}.${k}`, k, x, cmd);
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
  const cmdName = command === undefined ? 'search' : command;
  if (!isSweepCommand(cmdName)) throw new UsageError(`${label}: command must be one of ${SWEEP_COMMANDS.join(', ')}, got ${describe(command)}`);
  const cmd = sweepCommand(cmdName);
  const spec: SweepSpec = { name, command: cmdName };
  if (typeof out === 'string') spec.out = out;
  if (typeof parallel === 'number') spec.parallel = parallel;
  if (typeof raw.description === 'string') (spec as SweepSpec & { description?: string }).description = raw.description;
  if (base !== undefined) spec.base = checkFlags(label, 'base', base, cmd, known);
  if (grid !== undefined) {
    if (!isPlainObject(grid)) throw new UsageError(`${label}: grid must be an object of flag: [values], got ${describe(grid)}`);
    const g: Record<string, FlagValue[]> = {};
    for (const [k, list] of Object.entries(grid)) {
      checkFlagName(label, `grid.${k}`, k, known, cmd);
      if (!Array.isArray(list) || list.length === 0) throw new UsageError(`${label}: grid.${k} must be ${gridWhat(cmd, k)} (non-empty), got ${describe(list)}`);
      list.forEach((x, i) => {
        try {
          checkValue(label, `grid.${k}[${i}]`, k, x, cmd);
        } catch {
          throw new UsageError(`${label}: grid.${k} must be ${gridWhat(cmd, k)}, but item ${i} is ${describe(x)}`);
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
  // Every run needs a model (search and compress both require --model).
  const hasModel = (f: Flags) => typeof f.model === 'string';
  if (!spec.grid?.model && !hasModel(spec.base ?? {})) {
    spec.runs?.forEach((r, i) => {
      if (!hasModel(r)) throw new UsageError(`${label}: runs[${i}].model is required (or give base.model / grid.model)`);
    });
    if (spec.grid) throw new UsageError(`${label}: grid.model or base.model is required`);
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
 * The run id: the command's leading flags when set (search: model, `s<seed>`, optimizer; compress: model, mode,
 * method, `s<seed>`), then every flag whose value differs from the base (so that each run's id depends only on its
 * own flags and the base, never on the other runs).
 */
export function runId(flags: Flags, base: Flags = {}, command = 'search'): string {
  const cmd = sweepCommand(command);
  const parts: string[] = [];
  const used = new Set<string>();
  const include = (k: string) => k in flags && (cmd.alwaysInId.has(k) || !(k in base) || base[k] !== flags[k]);
  for (const [k, prefix] of cmd.idOrder) {
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
    r.id = runId(r.flags, base, spec.command);
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
