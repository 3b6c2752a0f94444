/**
 * prunus command-line entry. Each command lives in src/commands/<name>.ts and exports
 * `run(argv: string[]): Promise<number>` plus a one-line `summary`.
 * Exit codes: 0 done; 2 the request cannot be done as asked (bad input, an unusable path, a run another process
 * holds) and nothing was half-written; 1 the machine failed (disk full, I/O error), a run stays resumable; 130 / 143
 * stopped by SIGINT / SIGTERM after checkpointing (resumable). Each is one line on stderr; a stack trace ("internal error", bin/prunus.js) means a bug.
 */
import { UsageError, EnvironmentError, StoppedError, ENVIRONMENT_CODES, PATH_CODES, isFsError } from '../foundation/errors.js';

interface CommandModule {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  train: () => import('./commands/train.js'),
  search: () => import('./commands/search.js'),
  resume: () => import('./commands/resume.js'),
  reproduce: () => import('./commands/reproduce.js'),
  sweep: () => import('./commands/sweep.js'),
  worker: () => import('./commands/worker.js'),
  report: () => import('./commands/report.js'),
  eval: () => import('./commands/eval.js'),
  import: () => import('./commands/import.js'),
  channels: () => import('./commands/channels.js'),
  compress: () => import('./commands/compress.js'),
  export: () => import('./commands/export.js'),
};

async function help(): Promise<string> {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length));
  const lines = await Promise.all(
    names.map(async (name) => {
      const summary = (await COMMANDS[name]!()).summary.replace(new RegExp(`^prunus ${name}: `), '');
      return `  ${name.padEnd(width)}  ${summary}`;
    }),
  );
  return [
    'usage: prunus <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    'Every command takes --backend auto|webgpu|tensorflow|wasm|cpu and --json (final report as one JSON object on stdout).',
    "Run 'prunus <command> --help' for a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      process.stdout.write((await help()) + '\n');
      return name ? 0 : 2;
    }
    const load = COMMANDS[name];
    if (!load) throw new UsageError(`unknown command '${name}' (known: ${Object.keys(COMMANDS).join(', ')})`);
    const mod = await load();
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(`${mod.summary}\n\n${mod.usage}\n`);
      return 0;
    }
    return await mod.run(rest);
  } catch (e) {
    const failure = describeFailure(e);
    if (!failure) throw e;
    process.stderr.write(`prunus: ${failure.line}\n`);
    return failure.code;
  }
}

/** The one line and exit code of a failure that is not a bug, or null for a bug. */
export function describeFailure(e: unknown): { line: string; code: number } | null {
  if (e instanceof UsageError) return { line: e.message, code: 2 };
  if (e instanceof EnvironmentError) return { line: e.message, code: 1 };
  if (e instanceof StoppedError) return { line: e.message, code: e.signal === 'SIGTERM' ? 143 : 130 };
  if (isFsError(e)) {
    const where = e.path ?? '';
    if (ENVIRONMENT_CODES.has(e.code!)) return { line: `${where}: ${e.message.replace(/^\w+: /, '').split(',')[0]}`, code: 1 };
    const reason = PATH_CODES[e.code!];
    if (reason) return { line: `${where}: ${reason}`, code: 2 };
  }
  return null;
}
