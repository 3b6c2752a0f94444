import { parseFlags, COMMON_FLAGS } from '../cli-args.js';
import { UsageError } from '../../foundation/errors.js';
import { resume } from '../pipeline/run.js';
import { printReport, runWithProgress } from '../pipeline/cli-output.js';

export const summary = 'prunus resume: continue an interrupted search run (kill -9 included) from its last checkpoint';
export const usage = 'usage: prunus resume <run-dir> [--json]\n\nThe run continues on the backend it was started on; the final report equals that of an uninterrupted run.';

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, COMMON_FLAGS, 'resume');
  if (positionals.length !== 1) throw new UsageError('resume: give exactly one run directory');
  const json = Boolean(v.json);
  const report = await runWithProgress(json, (hooks) => resume(positionals[0]!, hooks));
  printReport(report, json);
  return 0;
}
