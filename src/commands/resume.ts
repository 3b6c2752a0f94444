import { parseFlags, COMMON_FLAGS } from '../cli-args.js';
import { UsageError, parseNumber } from '../../foundation/errors.js';
import { resume } from '../pipeline/run.js';
import { printReport, runWithProgress } from '../pipeline/cli-output.js';
import { isCompressRun, resumeCompress } from '../compress/run.js';
import { printCompressReport, runCompressSession } from '../compress/cli-output.js';

export const summary = 'prunus resume: continue an interrupted search or compress run (kill -9 included) from its last checkpoint';
export const usage =
  'usage: prunus resume <run-dir> [--train-threads N] [--json]\n\nThe run continues on the backend it was started on; the final report equals that of an uninterrupted run.\n--train-threads N sets the threads of sharded training steps for this session (results do not change).';

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, { ...COMMON_FLAGS, 'train-threads': { type: 'string' } } as const, 'resume');
  if (positionals.length !== 1) throw new UsageError('resume: give exactly one run directory');
  const json = Boolean(v.json);
  const threads = v['train-threads'] === undefined ? undefined : parseNumber('--train-threads', v['train-threads'], { min: 0, max: 256, integer: true });
  if (isCompressRun(positionals[0]!)) {
    const r = await runCompressSession(json, (session) => resumeCompress(positionals[0]!, threads === undefined ? session : { ...session, hooks: { ...session.hooks, trainThreads: threads } }));
    printCompressReport(r, json);
    return 0;
  }
  const report = await runWithProgress(json, (hooks) => resume(positionals[0]!, threads === undefined ? hooks : { ...hooks, trainThreads: threads }));
  printReport(report, json);
  return 0;
}
