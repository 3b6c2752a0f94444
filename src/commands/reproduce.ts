import { resolve, dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseFlags } from '../cli-args.js';
import { UsageError } from '../../foundation/errors.js';
import { parseBackendName } from '../../backends/backend.js';
import { PUBLISHED_SEEDS } from '../pipeline/config.js';
import { PUBLISHED } from '../pipeline/published.js';
import { RECIPES, applyRecipe } from '../pipeline/recipe.js';
import { search } from '../pipeline/run.js';
import { runWithProgress } from '../pipeline/cli-output.js';
import { SEARCH_FLAGS, searchOptionsFromFlags } from '../pipeline/flags.js';
import { importCaffeManifest } from '../../models/caffe/manifest.js';
import { saveModel } from '../../models/io.js';
import { recoverDir } from '../../foundation/atomic.js';
import { resultsRoot } from '../run-dir.js';
import type { SearchOptions } from '../pipeline/run.js';

export const summary = "prunus reproduce: run OLMP's whole LeNet recipe with the published seed and print it against the published figures";
export const usage = `usage: prunus reproduce lenet-300-100|lenet-5 [search options] [--recipe olmp|prunus] [--as-released] [--authors-reference]
                        [--fixtures DIR] [--quick] [--json]

Trains the reference (10,000 iterations, cached), runs the pruning pipeline with the published seed
(961449 / 981118) and prints a table: Han et al., DNS, OLMP as published; the OLMP authors' released model
measured by prunus (with --fixtures, default ../shared/fixtures/olmp-released when present); and this run.
Any 'prunus search' option applies (e.g. --optimizer, --constraint, --max-acc-drop).

--as-released  the authors' run as closely as prunus can: their reference model (imported from the fixtures'
               <model>-reference, cached under results/references/), all 60k training images in file order
               (--train-order file), numpy's MT19937 stream (--rng numpy), their sampler (--optimizer
               olmp-released), constraint (--constraint batch) and stateful candidate evaluation
               (--evaluation stateful). Flags given explicitly still win.
--recipe       olmp (default): OLMP's schedule and retraining as the spec gives them. prunus: prunus's own recipe,
               OLMP's schedule on the batch constraint with a cosine decay of the learning rate to 0 while
               retraining (--retrain-lr cosine); docs/recipe.md has what else was tried.
--authors-reference
               start from the OLMP authors' reference (the fixtures' <model>-reference) rather than prunus's.`;

function defaultFixtures(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const c of [resolve('../shared/fixtures/olmp-released'), resolve(here, '../../../../shared/fixtures/olmp-released')]) {
    if (existsSync(join(c, 'README.md'))) return c;
  }
  return null;
}

export interface ReproRow {
  method: string;
  compression: number;
  testError: number;
  source: string;
  wallTimeS?: number;
}

async function releasedRows(model: string, fixtures: string | null, backend: string): Promise<ReproRow[]> {
  if (!fixtures) return [];
  try {
    const mod = (await import('../olmp-released/figures.js')) as unknown as {
      measureReleased?: (dir: string, backend: string) => Promise<{ model: string; variant: string; accuracy: number; compression: number }[]>;
    };
    if (!mod.measureReleased) return [];
    const rows = await mod.measureReleased(fixtures, backend);
    return rows
      .filter((r) => r.model === model && r.variant === 'compressed')
      .map((r) => ({ method: 'OLMP released model', compression: r.compression, testError: 1 - r.accuracy, source: 'measured by prunus' }));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    return [];
  }
}

const FIXTURE_REFERENCE: Record<string, string> = { 'lenet-300-100': 'lenet300100-reference', 'lenet-5': 'lenet5-reference' };

/** The released scripts' regime (see usage); explicit flags keep their values. */
function applyAsReleased(opts: SearchOptions, v: Record<string, unknown>, model: string, fixtures: string | null): void {
  if (v.optimizer === undefined) opts.optimizer = 'olmp-released';
  if (v.rng === undefined) opts.rng = 'numpy';
  if (v.evaluation === undefined) opts.evaluation = 'stateful';
  if (v['train-order'] === undefined) opts.trainOrder = 'file';
  if (v.constraint === undefined) opts.constraint = 'batch';
  if (v.reference !== undefined) return;
  opts.reference = authorsReference(model, fixtures, '--as-released');
}

/** The OLMP authors' reference, imported from the fixtures once and cached under results/references/. */
function authorsReference(model: string, fixtures: string | null, flag: string): string {
  if (!fixtures) throw new UsageError(`reproduce ${flag}: the OLMP fixtures were not found; pass --fixtures DIR or --reference DIR`);
  const manifest = join(fixtures, FIXTURE_REFERENCE[model]!);
  if (!existsSync(join(manifest, 'manifest.json'))) throw new UsageError(`reproduce ${flag}: no ${FIXTURE_REFERENCE[model]} in ${fixtures}`);
  const dir = join(resultsRoot(), 'references', `olmp-authors-${model}`);
  recoverDir(dir);
  if (!existsSync(join(dir, 'model.json'))) {
    const imported = importCaffeManifest(manifest, model);
    saveModel(dir, imported.model, { magnitudeStats: imported.magnitudeStats, meta: imported.meta });
  }
  return dir;
}

export function formatTable(model: string, rows: ReproRow[]): string {
  const head = `| ${model} | compression | test error | source | wall time |\n|---|---|---|---|---|`;
  const body = rows.map((r) => `| ${r.method} | ${r.compression.toFixed(1)}x | ${(r.testError * 100).toFixed(2)}% | ${r.source} | ${r.wallTimeS !== undefined ? `${r.wallTimeS.toFixed(0)} s` : ''} |`);
  return [head, ...body].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(
    argv,
    { ...SEARCH_FLAGS, fixtures: { type: 'string' }, 'as-released': { type: 'boolean', default: false }, recipe: { type: 'string' }, 'authors-reference': { type: 'boolean', default: false } },
    'reproduce',
  );
  const model = positionals[0];
  if (positionals.length !== 1 || !model || !(model in PUBLISHED)) throw new UsageError(`reproduce: give one model, lenet-300-100 or lenet-5${model ? ` (got '${model}')` : ''}`);
  if (v.model !== undefined && v.model !== model) throw new UsageError(`reproduce: --model ${v.model} contradicts '${model}'`);
  const opts = searchOptionsFromFlags(v as Record<string, string | boolean | undefined>, model);
  if (opts.seed === undefined) opts.seed = PUBLISHED_SEEDS[model]!;
  opts.backend = parseBackendName(v.backend as string);
  if (typeof v.out === 'string') opts.out = v.out;
  const json = Boolean(v.json);
  opts.log = (line) => process.stderr.write(`prunus: ${line}\n`);
  const fixtures = typeof v.fixtures === 'string' ? resolve(v.fixtures) : defaultFixtures();
  if (typeof v.fixtures === 'string' && !existsSync(fixtures!)) throw new UsageError(`--fixtures ${v.fixtures} does not exist`);
  const recipe = (v.recipe as string | undefined) ?? 'olmp';
  if (!(RECIPES as readonly string[]).includes(recipe)) throw new UsageError(`unknown --recipe '${recipe}' (known: ${RECIPES.join(', ')})`);
  if (recipe === 'prunus' && v['as-released']) throw new UsageError('--recipe prunus and --as-released contradict each other (--as-released is the olmp recipe in the authors\' regime)');
  if (recipe === 'prunus') applyRecipe(opts, v as Record<string, unknown>);
  if (v['as-released']) applyAsReleased(opts, v as Record<string, unknown>, model, fixtures);
  if (v['authors-reference']) {
    if (v.reference !== undefined) throw new UsageError('--authors-reference and --reference contradict each other');
    if (!v['as-released']) opts.reference = authorsReference(model, fixtures, '--authors-reference');
  }
  const report = await runWithProgress(json, (hooks) => search(opts, hooks));
  const backend = String((report.backend as { name: string }).name);
  const rows: ReproRow[] = [
    ...PUBLISHED[model]!.map((p) => ({ ...p, source: p.source })),
    ...(await releasedRows(model, fixtures, backend)),
    {
      method: `prunus ${recipe === 'prunus' ? 'recipe' : 'OLMP'} (${[
        report.optimizer,
        report.constraint,
        ...(opts.rng === 'numpy' ? ['numpy stream'] : []),
        ...(opts.trainOrder === 'file' ? ['file order'] : []),
        ...(opts.evaluation === 'stateful' ? ['stateful'] : []),
        ...((v['as-released'] || v['authors-reference']) && v.reference === undefined ? ["authors' reference"] : []),
        ...(opts.quick ? ['quick'] : []),
      ].join(', ')})`,
      compression: report.compression,
      testError: report.testError,
      source: `seed ${report.seed}, ${backend}`,
      wallTimeS: report.wallTimeMs / 1000,
    },
  ];
  if (json) {
    process.stdout.write(JSON.stringify({ ...report, reproduction: rows }) + '\n');
  } else {
    process.stdout.write(formatTable(model, rows) + '\n');
  }
  return 0;
}
