import { parseFlags, parseChoiceList, COMMON_FLAGS } from '../cli-args.js';
import { parseBackendName } from '../../backends/backend.js';
import { parseNumber, UsageError } from '../../foundation/errors.js';
import { checkMethod, checkObjective, channelModelNames, METHOD_NAMES, type ChannelsConfig } from '../channels/config.js';
import { pruneChannels, type ChannelsReport } from '../channels/run.js';
import { isModelPath } from '../../models/source.js';
import { runComparison, formatComparison, COMPARE_BUDGETS } from '../channels/compare.js';

export const summary = 'prunus channels: channel pruning (DI, DCP, GFBS, L1, random) searched by NCS under a FLOPs budget';
export const usage = `usage: prunus channels --model lenet-5|vgg-bn|PATH/model.json --method di|dcp|gfbs|l1|random [options]
       prunus channels --compare [--quick] [--models a,b] [--methods a,b] [--budgets 0.5,0.25]

  --flops-budget X       pruned MACs must be <= X · dense MACs (hard constraint; default 0.5)
  --max-acc-drop X       allowed validation-accuracy loss before finetuning (search constraint; default 0.02)
  --objective O          macs | params: what the search minimises (default macs)
  --seed S               run seed (default 1)
  --quick                data subsets and few iterations (well under a minute once the baseline is cached)
  --search-budget N      NCS evaluations (default 101, quick 17)   --pop-size N (default 10, quick 4)
  --finetune-steps N     SGD steps of finetuning, the same for every method (default 1500, quick 100)
  --baseline-steps N     SGD steps of baseline training (default 1500, quick 200); cached under results/baselines/
  --di-steps T           DI rounds T (default 5; 1 = one-shot DI)
  --train-shards K       cut each training batch (baseline, finetuning) into K shards summed in a fixed order
                         (default 1); results depend on K, not on --train-threads N (default: one per core)
  --workers N            search evaluation: 0 = slimmed candidates in this thread (default), N = the shared
                         evaluator pool with N worker threads (masked candidates)
  --bn-recalibration N   BatchNorm models: re-estimate each pruned candidate's BN statistics on N batches of 64
                         scoring images before evaluating it (no weights change; default 8, 0 = off)
  --dataset D            for a model given as a file: mnist (default) | fashion-mnist | a folder of IDX or .npy files |
                         an .npz (the zoo models have theirs: lenet-5 mnist, vgg-bn fashion-mnist)
  --input-scale X --input-offset Y
                         pixels reach the model as raw × X + Y (default 1/256 and 0)
  --data-dir D           folder with the four IDX files (overrides the dataset's location)
  --out DIR              run directory (default results/channels-<model>-<method>-b<budget>-s<seed>-<time>)
  --compare              every method × MAC reduction 50 % and 75 % on both models: table.md, table.csv, table.json
  --backend B --json`;

const FLAGS = {
  ...COMMON_FLAGS,
  model: { type: 'string' },
  method: { type: 'string' },
  'flops-budget': { type: 'string' },
  'max-acc-drop': { type: 'string' },
  objective: { type: 'string' },
  seed: { type: 'string' },
  quick: { type: 'boolean', default: false },
  'search-budget': { type: 'string' },
  'pop-size': { type: 'string' },
  'finetune-steps': { type: 'string' },
  'baseline-steps': { type: 'string' },
  'di-steps': { type: 'string' },
  'data-dir': { type: 'string' },
  dataset: { type: 'string' },
  'input-scale': { type: 'string' },
  'input-offset': { type: 'string' },
  workers: { type: 'string' },
  'train-shards': { type: 'string' },
  'train-threads': { type: 'string' },
  'bn-recalibration': { type: 'string' },
  out: { type: 'string' },
  compare: { type: 'boolean', default: false },
  models: { type: 'string' },
  methods: { type: 'string' },
  budgets: { type: 'string' },
} as const;

function printReport(r: ChannelsReport): void {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const lines = [
    `${r.model} (${r.dataset}) ${r.method}, seed ${r.seed}, backend ${String(r.backend.name)}: MACs ${r.macs.before} → ${r.macs.after} (${pct(r.macs.reduction)} fewer, budget ${r.flopsBudget}), params ${r.params.before} → ${r.params.after}`,
    `test accuracy: baseline ${pct(r.accuracy.baseline)}, pruned (no finetuning) ${pct(r.accuracy.pruned)}, after pruning phase ${pct(r.accuracy.afterPruningPhase)}, finetuned ${pct(r.accuracy.finetuned)}`,
    `search: ${r.search.evaluations} evaluations, ${r.search.feasible ? 'feasible' : 'accuracy constraint not met'}; validation accuracy ${pct(r.accuracy.validation.pruned)} before finetuning (baseline ${pct(r.accuracy.validation.baseline)}, max drop ${r.maxAccDrop})`,
    ...r.groups.map((g) => `  ${g.name.padEnd(6)} ${String(g.kept).padStart(4)} / ${g.channels}`),
    `finetune ${r.budgets.finetuneSteps} steps × ${r.budgets.finetuneBatch}; wall time ${(r.wallTimeMs / 1000).toFixed(1)} s`,
    `run directory: ${r.runDir}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}


export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, FLAGS, 'channels');
  if (positionals.length) throw new UsageError(`channels: unexpected argument '${positionals[0]}'`);
  const backend = parseBackendName(v.backend);
  const int = (flag: string, raw: string | undefined, min: number) => (raw === undefined ? undefined : parseNumber(flag, raw, { min, integer: true }));
  const searchBudget = int('--search-budget', v['search-budget'], 2);
  const popSize = int('--pop-size', v['pop-size'], 1);
  const finetuneSteps = int('--finetune-steps', v['finetune-steps'], 0);
  const baselineSteps = int('--baseline-steps', v['baseline-steps'], 1);
  const diSteps = int('--di-steps', v['di-steps'], 1);
  const seed = int('--seed', v.seed, 0);
  const workers = int('--workers', v.workers, 0);
  const bnRecalibration = int('--bn-recalibration', v['bn-recalibration'], 0);
  const trainShards = int('--train-shards', v['train-shards'], 1);
  const trainThreads = int('--train-threads', v['train-threads'], 0);
  const maxAccDrop = v['max-acc-drop'] === undefined ? undefined : parseNumber('--max-acc-drop', v['max-acc-drop'], { min: 0, max: 1 });
  const objective = v.objective === undefined ? undefined : checkObjective(v.objective);
  const log = v.json ? undefined : (line: string) => process.stderr.write(line + '\n');
  const mkOverrides = (): Partial<ChannelsConfig> => {
    const o: Partial<ChannelsConfig> = {};
    if (searchBudget !== undefined || popSize !== undefined) o.search = { ...(searchBudget !== undefined ? { budget: searchBudget } : {}), ...(popSize !== undefined ? { popSize } : {}) } as ChannelsConfig['search'];
    if (finetuneSteps !== undefined) o.finetune = { steps: finetuneSteps } as ChannelsConfig['finetune'];
    if (baselineSteps !== undefined) o.baseline = { steps: baselineSteps } as ChannelsConfig['baseline'];
    if (diSteps !== undefined) o.di = { rounds: diSteps } as ChannelsConfig['di'];
    if (v['data-dir'] !== undefined) o.dataDir = v['data-dir'];
    if (v.dataset !== undefined) o.dataset = v.dataset;
    if (v['input-scale'] !== undefined) o.inputScale = parseNumber('--input-scale', v['input-scale'], { min: 0, exclusiveMin: true });
    if (v['input-offset'] !== undefined) o.inputOffset = parseNumber('--input-offset', v['input-offset']);
    if (bnRecalibration !== undefined) o.bnRecalibration = bnRecalibration;
    if (trainShards !== undefined) o.trainShards = trainShards;
    if (trainThreads !== undefined) o.trainThreads = trainThreads;
    return o;
  };

  if (v.compare) {
    if (v.model !== undefined || v.method !== undefined || v['flops-budget'] !== undefined) {
      throw new UsageError('channels --compare runs every model, method and budget; use --models, --methods, --budgets to narrow it');
    }
    const models = parseChoiceList(v.models, channelModelNames(), '--models');
    const methods = parseChoiceList(v.methods, METHOD_NAMES, '--methods') as (typeof METHOD_NAMES)[number][] | undefined;
    const budgets = v.budgets === undefined ? undefined : v.budgets.split(',').map((b) => parseNumber('--budgets', b, { min: 0, max: 1, exclusiveMin: true }));
    const r = await runComparison({
      quick: v.quick,
      backend,
      seed,
      maxAccDrop,
      objective,
      models,
      methods,
      budgets: budgets ?? COMPARE_BUDGETS,
      workers,
      out: v.out,
      overrides: () => mkOverrides(),
      log,
    });
    process.stdout.write(v.json ? JSON.stringify(r) + '\n' : formatComparison(r) + '\n');
    return 0;
  }

  if (v.model === undefined) throw new UsageError(`channels: --model is required (${channelModelNames().join('|')}, or a path to a TensorFlow.js model.json)`);
  if (!channelModelNames().includes(v.model) && !isModelPath(v.model)) throw new UsageError(`channels: --model must be one of ${channelModelNames().join(', ')} or a path to a TensorFlow.js model.json, got '${v.model}'`);
  const method = checkMethod(v.method);
  const flopsBudget = v['flops-budget'] === undefined ? undefined : parseNumber('--flops-budget', v['flops-budget'], { min: 0, max: 1, exclusiveMin: true });
  const report = await pruneChannels({
    model: v.model,
    method,
    quick: v.quick,
    flopsBudget,
    maxAccDrop,
    objective,
    seed,
    backend,
    workers,
    out: v.out,
    overrides: mkOverrides(),
    log,
    verbose: v.verbose,
  });
  if (v.json) process.stdout.write(JSON.stringify(report) + '\n');
  else printReport(report);
  return 0;
}
