/**
 * Reading a `prunus compress` run folder (written by src/compress/run.ts and finish.ts): config.json, report.json,
 * search.json (absent in mode olmp) and olmp/ (an ordinary search run folder, absent in mode channels). The files are
 * checked field by field, so a damaged folder gives one line naming the file and the field instead of a stack trace.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { UsageError } from '../../foundation/errors.js';
import type { CompressReport } from '../compress/finish.js';
import type { JointPoint } from '../compress/search.js';
import { isCompressRunDir, loadRun, type RunConfigFile, type RunData } from './load.js';

/**
 * A search candidate as read back from search.json: points rejected over the FLOPs budget have NaN sizes, which
 * JSON writes as null.
 */
export type CandidateAsRead = Omit<JointPoint, 'nonZero' | 'compression' | 'sparseMacs'> & {
  nonZero: number | null;
  compression: number | null;
  sparseMacs: number | null;
};

export interface CompressSearchData {
  settings: { maxAccDrop?: number; baselineAccuracy?: number; flopsBudget?: number | null; objective?: string } & Record<string, unknown>;
  baselineValidationAccuracy: number;
  points: CandidateAsRead[];
  best: CandidateAsRead;
  /** Index of the chosen point in `points` (-1 when it is not among them). */
  chosen: number;
  /** Indices into `points` of the Pareto front (non-zeros × MACs × validation accuracy). */
  pareto: number[];
  evaluations: number;
  earlyExits: number;
  rejectedOverBudget: number;
}

export interface CompressRunData {
  dir: string;
  /** Folder name. */
  name: string;
  config: RunConfigFile;
  report: CompressReport;
  /** search.json; null in mode olmp (no joint search) or when the file is absent. */
  search: CompressSearchData | null;
  /** The OLMP stage's run folder, when there is one and it could be read. */
  olmp: RunData | null;
  /** Why olmp/ could not be read (null when it was read, or when the mode has no OLMP stage). */
  olmpProblem: string | null;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`report: cannot read ${path} (${(e as Error).message.split('\n')[0]})`);
  }
}

type Kind = 'number' | 'string' | 'boolean' | 'object' | 'array' | 'number|null';

function kindOk(v: unknown, kind: Kind): boolean {
  switch (kind) {
    case 'number':
      return typeof v === 'number';
    case 'number|null':
      return v === null || typeof v === 'number';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    default:
      return typeof v === kind;
  }
}

/** Throws a one-line UsageError naming `file` and the first field of `fields` that is missing or of the wrong kind. */
function requireFields(file: string, obj: unknown, fields: [string, Kind][], prefix = ''): void {
  for (const [path, kind] of fields) {
    let v: unknown = obj;
    for (const key of path.split('.')) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[key] : undefined;
    if (!kindOk(v, kind)) throw new UsageError(`report: ${file}: '${prefix}${path}' is missing or not ${kind === 'array' || kind === 'object' ? 'an' : 'a'} ${kind}`);
  }
}

const REPORT_FIELDS: [string, Kind][] = [
  ['mode', 'string'],
  ['model', 'string'],
  ['method', 'string'],
  ['seed', 'number'],
  ['backend', 'object'],
  ['compression', 'number'],
  ['nonZero', 'number'],
  ['params', 'number'],
  ['macs.dense', 'number'],
  ['macs.slimmed', 'number'],
  ['macs.sparse', 'number'],
  ['macs.withinBudget', 'boolean'],
  ['accuracy.baseline.validation', 'number'],
  ['accuracy.baseline.test', 'number'],
  ['accuracy.final.validation', 'number'],
  ['accuracy.final.test', 'number'],
  ['accuracy.withinDrop', 'boolean'],
  ['budgets.maxAccDrop', 'number'],
  ['budgets.flopsBudget', 'number|null'],
  ['budgets.targetCompression', 'number|null'],
  ['layers', 'array'],
  ['groups', 'array'],
  ['exported.tfjs.bytes', 'number'],
  ['exported.tfjs.gzipBytes', 'number'],
  ['exported.sparse.bytes', 'number'],
  ['exported.sparse.gzipBytes', 'number'],
  ['exported.denseFloat32Bytes', 'number'],
];
const LAYER_FIELDS: [string, Kind][] = [
  ['name', 'string'],
  ['params', 'number'],
  ['slimmedParams', 'number'],
  ['nonZero', 'number'],
  ['density', 'number'],
];
const GROUP_FIELDS: [string, Kind][] = [
  ['name', 'string'],
  ['channels', 'number'],
  ['kept', 'number'],
  ['keepRatio', 'number'],
];
const POINT_FIELDS: [string, Kind][] = [
  ['keep', 'array'],
  ['crates', 'array'],
  ['nonZero', 'number|null'],
  ['compression', 'number|null'],
  ['macs', 'number'],
  ['accuracy', 'number|null'],
  ['result.fitness', 'number'],
  ['result.feasible', 'boolean'],
  ['result.violation', 'number'],
];

function checkReport(file: string, r: unknown): CompressReport {
  requireFields(file, r, REPORT_FIELDS);
  const rep = r as CompressReport;
  rep.layers.forEach((l, i) => requireFields(file, l, LAYER_FIELDS, `layers[${i}].`));
  rep.groups.forEach((g, i) => requireFields(file, g, GROUP_FIELDS, `groups[${i}].`));
  return rep;
}

const sameConfig = (a: Pick<JointPoint, 'keep' | 'crates'>, b: Pick<JointPoint, 'keep' | 'crates'>) =>
  JSON.stringify(a.keep) === JSON.stringify(b.keep) && JSON.stringify(a.crates) === JSON.stringify(b.crates);

function checkSearch(file: string, s: unknown): CompressSearchData {
  requireFields(file, s, [
    ['settings', 'object'],
    ['baselineValidationAccuracy', 'number'],
    ['outcome.points', 'array'],
    ['outcome.best', 'object'],
    ['pareto', 'array'],
  ]);
  const x = s as { settings: CompressSearchData['settings']; baselineValidationAccuracy: number; pareto: unknown[]; outcome: Record<string, unknown> & { points: unknown[]; best: unknown } };
  x.outcome.points.forEach((p, i) => requireFields(file, p, POINT_FIELDS, `outcome.points[${i}].`));
  requireFields(file, x.outcome.best, POINT_FIELDS, 'outcome.best.');
  const points = x.outcome.points as CandidateAsRead[];
  const bad = x.pareto.findIndex((i) => !Number.isInteger(i) || (i as number) < 0 || (i as number) >= points.length);
  if (bad >= 0) throw new UsageError(`report: ${file}: 'pareto[${bad}]' is not an index into outcome.points (${points.length} points)`);
  const best = x.outcome.best as CandidateAsRead;
  const count = (k: string) => (typeof x.outcome[k] === 'number' ? (x.outcome[k] as number) : 0);
  return {
    settings: x.settings,
    baselineValidationAccuracy: x.baselineValidationAccuracy,
    points,
    best,
    chosen: points.findIndex((p) => sameConfig(p, best)),
    pareto: x.pareto as number[],
    evaluations: count('evaluations'),
    earlyExits: count('earlyExits'),
    rejectedOverBudget: count('rejectedOverBudget'),
  };
}

/** Reads and checks a compress run folder; throws a one-line UsageError when it is not a finished, readable one. */
export function loadCompressRun(dirIn: string): CompressRunData {
  const dir = resolve(dirIn);
  if (!isCompressRunDir(dir)) throw new UsageError(`${dirIn} is not a prunus compress run folder (config.json with command 'compress')`);
  const configPath = join(dir, 'config.json');
  const config = readJson(configPath) as RunConfigFile;
  requireFields(configPath, config, [
    ['model', 'string'],
    ['seed', 'number'],
  ]);
  if (typeof config.backend !== 'object' || config.backend === null) config.backend = { name: String(config.backend ?? 'unknown') };
  const reportPath = join(dir, 'report.json');
  if (!existsSync(reportPath)) throw new UsageError(`report: ${dirIn} is a compress run that has not finished (no report.json); continue it with 'prunus resume ${dirIn}'`);
  const report = checkReport(reportPath, readJson(reportPath));
  const searchPath = join(dir, 'search.json');
  const search = existsSync(searchPath) ? checkSearch(searchPath, readJson(searchPath)) : null;
  let olmp: RunData | null = null;
  let olmpProblem: string | null = null;
  const olmpDir = join(dir, 'olmp');
  if (report.mode !== 'channels') {
    if (!existsSync(join(olmpDir, 'config.json'))) olmpProblem = 'olmp/ holds no run (config.json missing)';
    else {
      try {
        olmp = loadRun(olmpDir);
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        olmpProblem = e.message;
      }
    }
  }
  return { dir, name: basename(dir), config, report, search, olmp, olmpProblem };
}
