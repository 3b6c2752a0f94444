/**
 * prunus command-line entry. Each command lives in src/commands/<name>.ts and exports
 * `run(argv: string[]): Promise<number>` plus a one-line `summary`.
 * Bad input → one line on stderr, exit code 2, no stack trace.
 */
import { UsageError } from './errors.js';

interface CommandModule {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  train: () => import('./commands/train.js'),
};

/** Adds a command (used by modules that are built separately). */
export function commandNames(): string[] {
  return Object.keys(COMMANDS);
}

async function optionalCommands(): Promise<void> {
  // Commands whose modules may not exist in every build are registered if present.
  const extra = ['search', 'resume', 'reproduce', 'import', 'eval', 'channels', 'sweep', 'report'];
  for (const name of extra) {
    if (!COMMANDS[name]) COMMANDS[name] = () => import(`./commands/${name}.js`);
  }
}

function help(): string {
  return [
    'usage: prunus <command> [options]',
    '',
    'commands:',
    ...Object.keys(COMMANDS).map((c) => `  ${c}`),
    '',
    'Every command takes --backend auto|webgpu|tensorflow|wasm|cpu and --json (final report as one JSON object on stdout).',
    "Run 'prunus <command> --help' for a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  await optionalCommands();
  const [name, ...rest] = argv;
  try {
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      process.stdout.write(help() + '\n');
      return name ? 0 : 2;
    }
    const load = COMMANDS[name];
    if (!load) throw new UsageError(`unknown command '${name}' (known: ${Object.keys(COMMANDS).join(', ')})`);
    let mod: CommandModule;
    try {
      mod = await load();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(`commands/${name}.js`)) {
        throw new UsageError(`command '${name}' is not available in this build`);
      }
      throw e;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(`${mod.summary}\n\n${mod.usage}\n`);
      return 0;
    }
    return await mod.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`prunus: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
