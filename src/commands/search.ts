import { parseFlags } from '../cli-args.js';
import { parseBackendName } from '../../backends/backend.js';
import { UsageError } from '../../foundation/errors.js';
import { search, type SearchOptions } from '../pipeline/run.js';
import { SEARCH_FLAGS, searchOptionsFromFlags, type FlagValues } from '../pipeline/flags.js';
import { printReport, runWithProgress } from '../pipeline/cli-output.js';

export const summary = 'prunus search: OLMP layer-wise magnitude pruning of a model by NCS over per-layer crates (resumable)';
export const usage = `usage: prunus search --model lenet-300-100|lenet-5|PATH/model.json [options]

  --model M                a zoo model (trained first, cached) or a TensorFlow.js LayersModel (model.json, as
                           written by model.save() or tensorflowjs_converter): the network to prune, its own reference
  --seed S                 run seed (default: the published seed, 961449 / 981118; 1 for other models)
  --optimizer O            ncs | olmp-released | random | cmaes    (default ncs)
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
  --search-all-layers      every --search-period, search all layers' crates (not only the randomly selected ones)
  --final-search           end pruning with one more search over all layers at --prune-until; its masks are frozen
  --retrain-lr L           inv (default): Caffe's schedule throughout | cosine: decay to 0 while retraining
  --distill A              while retraining, distil from the reference's logits with weight A in [0, 1] (default 0)
  --distill-temperature T  (default 4)
  --reference DIR          a trained reference model (default: train one, cached under results/references/)
  --reference-iterations N (default 10000)
  --iterations N --prune-until N --search-period N --log-period N --checkpoint-period N
  --gamma a,b,c            per-layer mask-update gamma --sigma0 X --sigma-divide-at 0,10000 --bounds lo,hi
  --pop-size N --search-budget N --initial-crate X --batch-size N
  --workers N              evaluator worker threads (0 = in-process, default)
  --train-shards K         cut each training batch into K shards whose gradients are summed in a fixed order
                           (default 1: the whole batch at once); results depend on K, not on the threads
  --train-threads N        threads computing the shards (default: one per core, at most K; results do not change)
  --dataset D              mnist | fashion-mnist | a folder of IDX files | a folder of x_train.npy, y_train.npy,
                           x_test.npy, y_test.npy | an .npz with those arrays (default mnist)
  --data-dir D --split-seed N
  --input-scale X --input-offset Y
                           pixels reach the model as raw × X + Y (default 1/256 and 0, the LeNets' Caffe scaling;
                           0.00392156862745098 for a Keras model trained on pixels / 255)
  --train-order O          split: train on the seeded 54k, validate on the held-out 6k (default);
                           file: train on all 60k in file order, as the authors' scripts (needs --constraint batch)
  --config FILE            JSON with any of these options (camelCase); flags override it
  --quick                  a few hundred iterations on a data subset (tests, smoke runs)
  --out DIR                run directory (default results/search-<model>-s<seed>-<time>)
  --keep-checkpoints       keep the checkpoints of the finished run (default: removed; model/ holds the result)
  --backend B --json`;

/** `prunus search` arguments as library options (also how a queue worker reads a job's flags). */
export function searchOptionsFromArgv(argv: string[]): { opts: SearchOptions; json: boolean } {
  const { values: v, positionals } = parseFlags(argv, SEARCH_FLAGS, 'search');
  if (positionals.length) throw new UsageError(`search: unexpected argument '${positionals[0]}'`);
  if (typeof v.model !== 'string') throw new UsageError('search: --model is required (lenet-300-100, lenet-5, or a path to a TensorFlow.js model.json)');
  const opts = searchOptionsFromFlags(v as FlagValues, v.model);
  opts.backend = parseBackendName(v.backend as string);
  if (typeof v.out === 'string') opts.out = v.out;
  opts.verbose = Boolean(v.verbose);
  return { opts, json: Boolean(v.json) };
}

export async function run(argv: string[]): Promise<number> {
  const { opts, json } = searchOptionsFromArgv(argv);
  opts.log = (line) => process.stderr.write(`prunus: ${line}\n`);
  const report = await runWithProgress(json, (hooks) => search(opts, hooks));
  printReport(report, json);
  return 0;
}
