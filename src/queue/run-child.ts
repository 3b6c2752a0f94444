/**
 * One queued run, in a child process of its own (forked by the worker with an IPC channel): a long synchronous
 * training step here cannot delay the worker's lock renewals, and a run that crashes takes only itself down.
 *
 * argv[2] is a JSON RunChildTask. The child starts the run (`search`) or continues it (`resume`) in `runDir`, and tells
 * the worker through IPC about progress and each checkpoint; the worker copies the state to Redis. SIGTERM (the worker
 * shutting down) makes the run checkpoint at the next iteration and exit 143. If the worker dies, the IPC channel
 * closes and the child exits: a run never goes on without the process that holds its lease.
 *
 * Exit codes: 0 finished (report.json written); 2 the job cannot be done as asked (not retried); 75 this worker
 * cannot continue the run (it started on another backend; the job goes back for another worker); 143/130 stopped and
 * checkpointed; anything else a failure worth another attempt.
 */
import { BackendMismatchError } from '../../foundation/errors.js';
import { describeFailure } from '../cli.js';
import { searchOptionsFromArgv } from '../commands/search.js';
import { resume, search } from '../pipeline/run.js';
import type { PipelineHooks } from '../pipeline/olmp.js';
import { EXIT_OTHER_WORKER, type ChildMessage, type RunChildTask } from './job.js';

async function main(): Promise<number> {
  const task = JSON.parse(process.argv[2] ?? '{}') as RunChildTask;
  process.on('disconnect', () => process.exit(1));
  const stop = new AbortController();
  const onSignal = (s: NodeJS.Signals) => (stop.signal.aborted ? process.exit(s === 'SIGTERM' ? 143 : 130) : stop.abort(s));
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const send = (m: ChildMessage) => {
    if (process.connected) process.send?.(m);
  };
  const hooks: PipelineHooks = {
    stop: stop.signal,
    onProgress: (p) => send({ type: 'progress', phase: p.phase, iteration: p.iteration, total: p.total, compression: p.compression }),
    onCheckpoint: (iteration, phase) => send({ type: 'checkpoint', iteration, phase }),
    onNotice: (line) => process.stderr.write(`prunus: ${line}\n`),
    onEvent: (e) => {
      if (e.type === 'phase') send({ type: 'event', line: `phase ${e.phase} at t=${e.iteration}${e.reason ? ` (${e.reason})` : ''}` });
      else if (e.type === 'search') send({ type: 'event', line: `search at t=${e.iteration}: ${e.compression.toFixed(1)}x, accuracy ${(e.accuracy * 100).toFixed(2)}%` });
    },
  };
  try {
    if (task.action === 'search') {
      const { opts } = searchOptionsFromArgv(task.argv);
      opts.out = task.runDir;
      opts.resultsRoot = task.resultsRoot;
      opts.log = (line) => process.stderr.write(`prunus: ${line}\n`);
      await search(opts, hooks);
    } else {
      await resume(task.runDir, hooks);
    }
    return 0;
  } catch (e) {
    const failure = describeFailure(e);
    if (!failure) throw e;
    process.stderr.write(`prunus: ${failure.line}\n`);
    return e instanceof BackendMismatchError ? EXIT_OTHER_WORKER : failure.code;
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`prunus: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(70);
  },
);
