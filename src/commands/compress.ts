import { parseFlags, parseChoiceList, COMMON_FLAGS } from '../cli-args.js';
import { parseBackendName } from '../../backends/backend.js';
import { parseNumber, UsageError } from '../../foundation/errors.js';
import { isModelPath } from '../../models/source.js';
import { channelModelNames, checkMethod, METHOD_NAMES } from '../channels/config.js';
import { parseDuration } from '../pipeline/config.js';
import { compress } from '../compress/run.js';
import { checkCompressObjective, checkMode, COMPRESS_MODES, type CompressConfig, type CompressMode } from '../compress/config.js';
import { printCompressReport, runCompressSession } from '../compress/cli-output.js';
import { runCompressComparison, formatCompressComparison } from '../compress/compare.js';
import type { MethodName } from '../channels/config.js';

export const summary = 'prunus compress: one search over channel keep-ratios and crates, channels removed by DI/DCP/GFBS, then OLMP (resumable)';
export const usage = `usage: prunus compress --model lenet-5|vgg-bn|resnet-bn|PATH/model.json [--method di|dcp|gfbs|l1|random] [options]
       prunus compress --compare [--quick] [--models a,b] [--methods a,b] [--modes a,b] [--seeds 1,2,3]

  --method M             channel scorer and finetuner: di (default) | dcp | gfbs | l1 | random
  --mode X               joint (default): NCS over keep ratios and crates together, then the finetuner, then OLMP from
                         the winner's crates | chained: keep ratios alone, finetuner, then OLMP (channels, then search) |
                         olmp: OLMP alone | channels: keep ratios and the finetuner alone
  --max-acc-drop X       allowed loss of validation accuracy vs the baseline (default 0.01)
  --flops-budget F       dense MACs of the slimmed network <= F · the dense MACs (hard; default none)
  --target-compression C parameters / non-zeros must reach C (default none)
  --time-budget T        wall-clock budget (90, 15m, 2h): the OLMP stage gets what is left and keeps its best model
  --objective O          size (default): fewest non-zeros | macs: fewest dense MACs | mixed: both (geometric mean)
  --seed S               run seed (default 1)
  --quick                data subsets, short search and schedule (a few minutes on 2 cores)
  --workers N            search evaluation in N pool worker threads (0 = this thread, default; same results)
  --search-budget N      joint-search evaluations (default 201, quick 41)   --pop-size N (default 10, quick 4)
  --crate-bounds lo,hi   the joint search's crates (threshold μ + c·σ on |w|; default -1.5,3: nothing to most)
  --search-acc-drop X    allowed validation loss of a search candidate before finetuning (default 2 × max drop)
  --finetune-steps N     SGD steps of the channel finetuner (default 1500, quick 100)
  --baseline-steps N     SGD steps of a zoo baseline (default 1500, quick 200); cached under results/baselines/
  --di-steps T           DI rounds (default 5)
  --iterations N --prune-until N --olmp-search-budget N
                         the OLMP stage's schedule (default 30001 / 15000 / 1600; quick 401 / 200 / 40)
  --bn-recalibration N   BatchNorm models: re-estimate each search candidate's BN statistics on N batches of 64
                         scoring images before evaluating it (default 8, 0 = off; in this thread, so not with --workers)
  --train-shards K --train-threads N   sharded training, as in search
  --dataset D --data-dir D --input-scale X --input-offset Y   a model given as a file: its data (as channels)
  --out DIR              run directory (default results/compress-<model>-<mode>-<method>-s<seed>-<time>)
  --compare              modes × methods × models × seeds: one table (table.md, table.csv, table.json)
  --backend B --json

A killed run continues with: prunus resume <run-dir>`;

const FLAGS = {
  ...COMMON_FLAGS,
  model: { type: 'string' },
  method: { type: 'string' },
  mode: { type: 'string' },
  'max-acc-drop': { type: 'string' },
  'flops-budget': { type: 'string' },
  'target-compression': { type: 'string' },
  'time-budget': { type: 'string' },
  objective: { type: 'string' },
  seed: { type: 'string' },
  quick: { type: 'boolean', default: false },
  workers: { type: 'string' },
  'search-budget': { type: 'string' },
  'pop-size': { type: 'string' },
  'crate-bounds': { type: 'string' },
  'search-acc-drop': { type: 'string' },
  'finetune-steps': { type: 'string' },
  'baseline-steps': { type: 'string' },
  'di-steps': { type: 'string' },
  iterations: { type: 'string' },
  'prune-until': { type: 'string' },
  'olmp-search-budget': { type: 'string' },
  'train-shards': { type: 'string' },
  'bn-recalibration': { type: 'string' },
  'train-threads': { type: 'string' },
  dataset: { type: 'string' },
  'data-dir': { type: 'string' },
  'input-scale': { type: 'string' },
  'input-offset': { type: 'string' },
  out: { type: 'string' },
  compare: { type: 'boolean', default: false },
  models: { type: 'string' },
  methods: { type: 'string' },
  modes: { type: 'string' },
  seeds: { type: 'string' },
} as const;


export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, FLAGS, 'compress');
  if (positionals.length) throw new UsageError(`compress: unexpected argument '${positionals[0]}'`);
  const backend = parseBackendName(v.backend);
  const int = (flag: string, raw: string | undefined, min: number) => (raw === undefined ? undefined : parseNumber(flag, raw, { min, integer: true }));
  const num = (flag: string, raw: string | undefined, o: Parameters<typeof parseNumber>[2]) => (raw === undefined ? undefined : parseNumber(flag, raw, o));
  const seed = int('--seed', v.seed, 0);
  const workers = int('--workers', v.workers, 0);
  const maxAccDrop = num('--max-acc-drop', v['max-acc-drop'], { min: 0, max: 1 });
  const flopsBudget = num('--flops-budget', v['flops-budget'], { min: 0, max: 1, exclusiveMin: true });
  const targetCompression = num('--target-compression', v['target-compression'], { min: 1 });
  const timeBudget = v['time-budget'] === undefined ? undefined : parseDuration('--time-budget', v['time-budget']);
  const objective = v.objective === undefined ? undefined : checkCompressObjective(v.objective);
  const overrides = (): Partial<CompressConfig> => {
    const o: Record<string, unknown> = {};
    const searchBudget = int('--search-budget', v['search-budget'], 2);
    const popSize = int('--pop-size', v['pop-size'], 1);
    const search: Record<string, number> = {};
    if (searchBudget !== undefined) search.budget = searchBudget;
    if (popSize !== undefined) search.popSize = popSize;
    if (v['crate-bounds'] !== undefined) {
      const b = v['crate-bounds'].split(',').map((x) => parseNumber('--crate-bounds', x));
      if (b.length !== 2 || !(b[0]! < b[1]!)) throw new UsageError(`--crate-bounds must be two numbers lo,hi with lo < hi, got '${v['crate-bounds']}'`);
      search.crateLower = b[0]!;
      search.crateUpper = b[1]!;
      search.crateStart = Math.min(b[1]!, Math.max(b[0]!, -1));
    }
    const searchDrop = num('--search-acc-drop', v['search-acc-drop'], { min: 0, max: 1 });
    if (searchDrop !== undefined) search.maxAccDrop = searchDrop;
    if (Object.keys(search).length) o.search = search;
    const finetuneSteps = int('--finetune-steps', v['finetune-steps'], 0);
    if (finetuneSteps !== undefined) o.finetune = { steps: finetuneSteps };
    const baselineSteps = int('--baseline-steps', v['baseline-steps'], 1);
    if (baselineSteps !== undefined) o.baseline = { steps: baselineSteps };
    const diSteps = int('--di-steps', v['di-steps'], 1);
    if (diSteps !== undefined) o.di = { rounds: diSteps };
    const iterations = int('--iterations', v.iterations, 1);
    const pruneUntil = int('--prune-until', v['prune-until'], 0);
    const olmpBudget = int('--olmp-search-budget', v['olmp-search-budget'], 1);
    if (iterations !== undefined || pruneUntil !== undefined || olmpBudget !== undefined) o.olmp = { ...(iterations !== undefined ? { iterations } : {}), ...(pruneUntil !== undefined ? { pruneUntil } : {}), ...(olmpBudget !== undefined ? { searchBudget: olmpBudget } : {}) };
    const bnRecalibration = int('--bn-recalibration', v['bn-recalibration'], 0);
    if (bnRecalibration !== undefined) o.bnRecalibration = bnRecalibration;
    const trainShards = int('--train-shards', v['train-shards'], 1);
    if (trainShards !== undefined) o.trainShards = trainShards;
    const trainThreads = int('--train-threads', v['train-threads'], 0);
    if (trainThreads !== undefined) o.trainThreads = trainThreads;
    if (v.dataset !== undefined) o.dataset = v.dataset;
    if (v['data-dir'] !== undefined) o.dataDir = v['data-dir'];
    if (v['input-scale'] !== undefined) o.inputScale = parseNumber('--input-scale', v['input-scale'], { min: 0, exclusiveMin: true });
    if (v['input-offset'] !== undefined) o.inputOffset = parseNumber('--input-offset', v['input-offset']);
    return o as Partial<CompressConfig>;
  };

  if (v.compare) {
    if (v.model !== undefined || v.method !== undefined || v.mode !== undefined) throw new UsageError('compress --compare runs every model, mode and method; narrow it with --models, --modes, --methods');
    const seeds = v.seeds === undefined ? undefined : v.seeds.split(',').map((s) => parseNumber('--seeds', s, { min: 0, integer: true }));
    const r = await runCompressComparison({
      quick: v.quick,
      backend,
      seeds: seeds ?? (seed !== undefined ? [seed] : undefined),
      maxAccDrop,
      flopsBudget,
      models: parseChoiceList(v.models, channelModelNames(), '--models'),
      methods: parseChoiceList<MethodName>(v.methods, METHOD_NAMES, '--methods'),
      modes: parseChoiceList<CompressMode>(v.modes, COMPRESS_MODES, '--modes'),
      workers,
      out: v.out,
      overrides: overrides(),
      log: v.json ? undefined : (line: string) => process.stderr.write(line + '\n'),
    });
    process.stdout.write(v.json ? JSON.stringify(r) + '\n' : formatCompressComparison(r) + '\n');
    return 0;
  }

  if (v.model === undefined) throw new UsageError(`compress: --model is required (${channelModelNames().join('|')}, or a path to a TensorFlow.js model.json)`);
  if (!channelModelNames().includes(v.model) && !isModelPath(v.model)) throw new UsageError(`compress: --model must be one of ${channelModelNames().join(', ')} or a path to a TensorFlow.js model.json, got '${v.model}'`);
  const model = v.model;
  const method = v.method === undefined ? 'di' : checkMethod(v.method);
  const mode = v.mode === undefined ? undefined : checkMode(v.mode);
  const report = await runCompressSession(Boolean(v.json), (session) =>
    compress({
      model,
      method,
      mode,
      quick: v.quick,
      objective,
      maxAccDrop,
      flopsBudget,
      targetCompression,
      timeBudget,
      seed,
      workers,
      backend,
      overrides: overrides(),
      out: v.out,
      verbose: v.verbose,
      ...session,
    }),
  );
  printCompressReport(report, Boolean(v.json));
  return 0;
}
