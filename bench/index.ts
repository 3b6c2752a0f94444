/**
 * Benchmark dispatcher: `node dist/bench/index.js <name> [args...]` runs bench/<name>.ts's run(args).
 * Minimal version; each benchmark module exports `run(args: string[]): Promise<void>`.
 */
const BENCHES: Record<string, () => Promise<{ run(args: string[]): Promise<void> }>> = {
  search: () => import('./search.js'),
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const load = name ? BENCHES[name] : undefined;
  if (!load) {
    console.error(`usage: bench <${Object.keys(BENCHES).join('|')}> [args...]`);
    process.exit(2);
  }
  await (await load()).run(rest);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e instanceof Error ? `error: ${e.message}` : e);
  process.exit(1);
});
