/**
 * Benchmark dispatcher: `npm run bench -- <name> [args...]` (→ `node dist/bench/index.js <name> ...`) runs
 * `(await import('./<name>.js')).run(args)`, where bench/<name>.ts exports `run(args: string[]): Promise<void>`.
 * An unknown name prints one line (with the available names) and exits with code 2.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface BenchModule {
  run(args: string[]): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));

/** Benchmarks next to this file (compiled .js under dist/bench, or .ts when run from sources). */
export function benchNames(): string[] {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return readdirSync(here)
    .filter((f) => f.endsWith(ext) && !f.endsWith(`.d${ext}`) && f !== `index${ext}`)
    .map((f) => f.slice(0, -ext.length))
    .sort();
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const names = benchNames();
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  if (!name || !/^[a-z0-9][a-z0-9-]*$/.test(name) || !existsSync(join(here, `${name}${ext}`))) {
    process.stderr.write(`bench: ${name ? `unknown benchmark '${name}'` : 'no benchmark named'} (available: ${names.join(', ')}); usage: npm run bench -- <name> [--json] [args...]\n`);
    return 2;
  }
  const mod = (await import(pathToFileURL(join(here, `${name}${ext}`)).href)) as Partial<BenchModule>;
  if (typeof mod.run !== 'function') {
    process.stderr.write(`bench: ${name} exports no run(args)\n`);
    return 2;
  }
  await mod.run(rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const usage = e instanceof Error && e.name === 'UsageError';
    process.stderr.write(`bench: ${e instanceof Error ? (usage ? e.message : (e.stack ?? e.message)) : String(e)}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);
