import { parseFlags } from '../cli-args.js';
import { UsageError } from '../../foundation/errors.js';
import { report } from '../report/index.js';

export const summary = 'prunus report: a self-contained report.html (plots and tables) for a run directory, a compress run or a sweep directory';
export const usage = `usage: prunus report <run-dir | compress-run-dir | sweep-dir> [--out FILE] [--json]

  run-dir     a prunus search run: compression and accuracy over iterations (searches marked), per-layer density,
              the optimiser's convergence per search
  compress-run-dir
              a finished prunus compress run: final compression, MACs, accuracy and budgets; the joint search's
              candidates and Pareto front (non-zeros × MACs × accuracy, the chosen one marked); channels kept per
              group, per-layer density, exported sizes; the OLMP stage's progress
  sweep-dir   a prunus sweep: accuracy against compression with the Pareto front, the summary table, and every run
  --out FILE  where to write the page (default <dir>/report.html)
  --json      print {"out", "kind" (run | compress | sweep), "figures"} as one JSON object on stdout

The page has no scripts and fetches nothing: figures are inline SVG (Vega-Lite, rendered by Vega in Node).
Unfinished runs are reported as far as they got.`;

const FLAGS = {
  out: { type: 'string' },
  json: { type: 'boolean', default: false },
  backend: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, FLAGS, 'report');
  if (positionals.length !== 1) throw new UsageError('report: give exactly one run directory, compress run directory or sweep directory');
  if (v.out !== undefined && !/\.html?$/i.test(v.out)) throw new UsageError(`report: --out must name an .html file, got '${v.out}'`);
  const r = await report(positionals[0]!, v.out !== undefined ? { out: v.out } : {});
  if (v.json) process.stdout.write(JSON.stringify({ out: r.out, kind: r.kind, figures: r.figures }) + '\n');
  else process.stdout.write(`${r.out}\n`);
  return 0;
}
