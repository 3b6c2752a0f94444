import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../foundation/errors.js';
import { expandRuns, flagsToArgv, formatDuration, resolveSweep, runId, summaryCsv, summaryMarkdown, sweep, validateSweepSpec, type SweepEvent } from '../src/sweep/index.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'prunus-sweep-test-'));
const fake = join(work, 'fake-prunus.mjs');

/**
 * A stand-in for `prunus search|resume` that honours the run-directory contract (config.json, events.jsonl,
 * checkpoint, report.json written atomically, final report on stdout with --json), slow enough to be killed
 * mid-way. Every invocation is appended to <run>/invocations.log, every report write to <run>/writes.log.
 */
const FAKE = String.raw`
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const argv = process.argv.slice(2);
const cmd = argv.shift();
const flags = {};
let positional = null;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (!a.startsWith('--')) { positional = a; continue; }
  const k = a.slice(2);
  if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) flags[k] = argv[++i]; else flags[k] = true;
}
const atomic = (p, s) => { const t = p + '.' + process.pid + '.tmp'; writeFileSync(t, s); renameSync(t, p); };
const usage = (m) => { process.stderr.write('prunus: ' + m + '\n'); process.exit(2); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let dir;
if (cmd === 'search') {
  dir = flags.out;
  if (!flags.model) usage('search: --model is required');
  if (!flags.json) usage('search: the sweep must pass --json');
  if (!flags.workers) usage('search: the sweep must pass --workers');
  if (existsSync(join(dir, 'config.json'))) usage(dir + ' already holds a run');
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, 'invocations.log'), 'search ' + process.pid + ' ' + Date.now() + '\n');
  if (flags['fake-fail'] && !existsSync(join(dir, 'failed-once'))) { writeFileSync(join(dir, 'failed-once'), ''); usage('search: fake failure for ' + flags.model); }
  const steps = Number(flags.steps ?? 6);
  atomic(join(dir, 'config.json'), JSON.stringify({ command: 'search', model: flags.model, dataset: 'mnist', seed: Number(flags.seed ?? 1),
    backend: { name: 'cpu', requested: 'auto', detail: 'fake' }, versions: { prunus: '0.0.0', node: process.version, tfjs: 'none' },
    options: { optimizer: flags.optimizer ?? 'ncs', constraint: flags.constraint ?? 'validation', maxAccDrop: Number(flags['max-acc-drop'] ?? 0.01), iterations: steps * 50, workers: Number(flags.workers), trainThreads: Number(flags['train-threads']), steps, stepMs: Number(flags['step-ms'] ?? 100) } }));
} else if (cmd === 'resume') {
  dir = positional;
  if (!existsSync(join(dir, 'config.json'))) usage(dir + ' is not a run directory');
  if (existsSync(join(dir, 'report.json'))) { process.stdout.write(readFileSync(join(dir, 'report.json'), 'utf8')); process.exit(0); }
  appendFileSync(join(dir, 'invocations.log'), 'resume ' + process.pid + ' ' + Date.now() + '\n');
} else usage('unknown command ' + cmd);
const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const ck = existsSync(join(dir, 'checkpoint.json')) ? JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')) : { step: 0, lines: 0 };
const ev = join(dir, 'events.jsonl');
if (existsSync(ev)) atomic(ev, readFileSync(ev, 'utf8').split('\n').slice(0, ck.lines).map((l) => l + '\n').join(''));
let lines = ck.lines;
const event = (e) => { appendFileSync(ev, JSON.stringify(e) + '\n'); lines++; };
for (let s = ck.step; s < cfg.options.steps; s++) {
  await sleep(cfg.options.stepMs);
  const it = (s + 1) * 50;
  if (s === 1) event({ type: 'phase', iteration: it, phase: 'pruning' });
  event({ type: 'log', iteration: it, compression: 1 + s, accuracy: 0.99 - s / 1000, loss: 0.1, lr: 0.01, elapsedMs: 0 });
  if (s === 2) event({ type: 'search', iteration: it, layers: ['ip1', 'ip2'], crates: [1, 2, 0], compression: 3, accuracy: 0.98, evaluations: 20, feasible: true, generations: [{ generation: 1, evaluations: 10, bestFitness: 0.5 }, { generation: 2, evaluations: 20, bestFitness: 0.4 }] });
  atomic(join(dir, 'checkpoint.json'), JSON.stringify({ step: s + 1, lines }));
}
const seed = cfg.seed;
const report = { status: 'finished', command: 'search', model: cfg.model, dataset: 'mnist', seed, backend: cfg.backend, optimizer: cfg.options.optimizer,
  constraint: cfg.options.constraint, compression: 10 + (seed % 7), nonZero: 100, params: 1000, layers: [{ name: 'ip1', nonZero: 60, params: 600, density: 0.1 }],
  validationAccuracy: 0.98, testAccuracy: (970 + seed) / 1000, testError: (30 - seed) / 1000, wallTimeMs: 1234, evaluations: 20, iterations: cfg.options.iterations };
atomic(join(dir, 'report.json'), JSON.stringify(report));
appendFileSync(join(dir, 'writes.log'), 'report ' + process.pid + '\n');
if (flags.json) process.stdout.write(JSON.stringify(report) + '\n');
`;

function distFresh(): boolean {
  const out = join(repoRoot, 'dist/src/commands/sweep.js');
  if (!existsSync(out)) return false;
  const built = statSync(out).mtimeMs;
  const sources = [join(repoRoot, 'src/commands/sweep.ts'), join(repoRoot, 'src/progress.ts'), ...readdirSync(join(repoRoot, 'src/sweep')).map((f) => join(repoRoot, 'src/sweep', f))];
  return sources.every((s) => statSync(s).mtimeMs <= built) && ['sweep', 'spec', 'summary', 'procs', 'index'].every((m) => existsSync(join(repoRoot, `dist/src/sweep/${m}.js`)));
}

const children: ChildProcess[] = [];

beforeAll(() => {
  writeFileSync(fake, FAKE);
  if (!distFresh()) spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repoRoot, stdio: 'ignore' });
  if (!distFresh()) throw new Error('dist/ is missing or older than src/sweep: run `npx tsc -p tsconfig.json` first');
}, 300_000);

afterAll(() => {
  for (const c of children) {
    try {
      if (c.pid) process.kill(-c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(work, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [join(repoRoot, 'bin/prunus.js'), ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, ...env } });
}

describe('sweep files', () => {
  const bad: [unknown, RegExp][] = [
    [{ name: 'x', grid: { seed: [1, 'two'] } }, /^sweep\.json: grid\.seed must be an array of integers, but item 1 is 'two'$/],
    [{ name: 'x', grid: { model: ['lenet-5'], seed: 3 } }, /^sweep\.json: grid\.seed must be an array of integers \(non-empty\), got 3$/],
    [{ name: 'x', base: { model: 'lenet-5' }, grid: { seed: [1.5] } }, /grid\.seed must be an array of integers/],
    [{ name: 'x', grid: { model: ['lenet-7'] } }, /^sweep\.json: grid\.model must be an array of lenet-300-100 \| lenet-5, but item 0 is 'lenet-7'$/],
    [{ name: 'x', base: { model: 'lenet-5', optimizer: 'ga' }, grid: { seed: [1] } }, /^sweep\.json: base\.optimizer must be one of ncs, olmp-released, random, cmaes, got 'ga'$/],
    [{ name: 'x', base: { model: 'lenet-5', rng: 'mt' }, grid: { seed: [1] } }, /^sweep\.json: base\.rng must be one of prunus, numpy, got 'mt'$/],
    [{ name: 'x', base: { model: 'lenet-5' }, grid: { evaluation: ['stateful', 'lazy'] } }, /grid\.evaluation must be an array of stateless \| stateful, but item 1 is 'lazy'/],
    [{ name: 'x', base: { model: 'lenet-5', out: 'x' }, grid: { seed: [1] } }, /^sweep\.json: base\.out is set by the sweep/],
    [{ name: 'x', base: { model: 'lenet-5' }, grid: { maxAccDrop: [0.1] } }, /^sweep\.json: grid\.maxAccDrop is not a flag name .*'max-acc-drop'/],
    [{ name: 'x', runs: [{ model: 'lenet-5' }, { seed: 2 }] }, /^sweep\.json: runs\[1\]\.model is required/],
    [{ name: '', runs: [{ model: 'lenet-5' }] }, /^sweep\.json: name must be/],
    [{ name: 'x', parallel: 0, runs: [{ model: 'lenet-5' }] }, /^sweep\.json: parallel must be an integer from 1 to 256, got 0$/],
    [{ name: 'x' }, /^sweep\.json: no runs/],
    [{ name: 'x', grids: {} }, /^sweep\.json: unknown field 'grids'/],
    [{ name: 'x', base: { model: 'lenet-5', quick: 'yes' }, grid: { seed: [1] } }, /^sweep\.json: base\.quick must be true or false, got 'yes'$/],
    [{ name: 'x', base: { model: 'lenet-5' }, grid: { seed: [1, 1] } }, /^sweep\.json: grid\.seed repeats the value 1$/],
    [[1, 2], /^sweep\.json: must hold a JSON object, got an array$/],
  ];
  it.each(bad.map(([spec, re], i) => ({ i, spec, re })))('rejects malformed file #$i with a named field', ({ spec, re }) => {
    let err: unknown;
    try {
      validateSweepSpec(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(re);
    expect((err as Error).message).not.toContain('\n');
  });

  it('checks flag names against the run command: a given list, and the real search command by default', async () => {
    expect(() => validateSweepSpec({ name: 'x', base: { quik: true }, grid: { model: ['lenet-5'] } }, { knownFlags: new Set(['model', 'quick']) })).toThrow(
      /^sweep\.json: base\.quik is not a flag of 'prunus search'$/,
    );
    await expect(resolveSweep({ name: 'x', base: { quik: true }, grid: { model: ['lenet-5'] } }, { out: join(work, 'never') })).rejects.toThrow("sweep: base.quik is not a flag of 'prunus search'");
    const ok = await resolveSweep({ name: 'x', base: { quick: true, 'search-budget': 20 }, grid: { model: ['lenet-5'], seed: [4] } }, { out: join(work, 'never'), cores: 4, parallel: 2 });
    expect(ok.runs.map((r) => r.argv)).toEqual([['search', '--quick', '--search-budget', '20', '--model', 'lenet-5', '--seed', '4', '--workers', '2', '--train-threads', '2', '--out', join(work, 'never', 'runs', 'lenet-5_s4'), '--json']]);
    expect(existsSync(join(work, 'never'))).toBe(false);
  });

  it('expands a grid and explicit runs into runs with stable ids', () => {
    const spec = validateSweepSpec({
      name: 'ids',
      base: { quick: true, optimizer: 'ncs' },
      grid: { model: ['lenet-300-100', 'lenet-5'], seed: [1, 2], 'max-acc-drop': [0.01, 0.02] },
      runs: [{ model: 'lenet-5', seed: 961449, optimizer: 'olmp-released', constraint: 'batch' }],
    });
    const runs = expandRuns(spec);
    expect(runs.map((r) => r.id)).toEqual([
      'lenet-300-100_s1_ncs_d0.01',
      'lenet-300-100_s1_ncs_d0.02',
      'lenet-300-100_s2_ncs_d0.01',
      'lenet-300-100_s2_ncs_d0.02',
      'lenet-5_s1_ncs_d0.01',
      'lenet-5_s1_ncs_d0.02',
      'lenet-5_s2_ncs_d0.01',
      'lenet-5_s2_ncs_d0.02',
      'lenet-5_s961449_olmp-released_batch',
    ]);
    expect(runs[8]!.flags).toEqual({ quick: true, optimizer: 'olmp-released', model: 'lenet-5', seed: 961449, constraint: 'batch' });
    // The id depends on the run's own flags and the base only: adding runs does not rename the others.
    const fewer = expandRuns(validateSweepSpec({ name: 'ids', base: { quick: true, optimizer: 'ncs' }, grid: { model: ['lenet-5'], seed: [2], 'max-acc-drop': [0.02] } }));
    expect(fewer.map((r) => r.id)).toEqual(['lenet-5_s2_ncs_d0.02']);
    expect(runId({ model: 'lenet-5', seed: 961449, optimizer: 'ncs', 'max-acc-drop': 0.02 })).toBe('lenet-5_s961449_ncs_d0.02');
    expect(flagsToArgv({ model: 'lenet-5', quick: true, seed: 3, verbose: false })).toEqual(['--model', 'lenet-5', '--quick', '--seed', '3']);
    expect(() => expandRuns(validateSweepSpec({ name: 'd', grid: { model: ['lenet-5'] }, runs: [{ model: 'lenet-5' }] }))).toThrow(/runs\[0\] repeats grid\[0\]/);
  });

  it('formats wall times', () => {
    expect([1234, 59_949, 59_950, 599_523, 3_599_600, 7_230_000].map(formatDuration)).toEqual(['1.2 s', '59.9 s', '1 min 0 s', '10 min 0 s', '1 h 0 min', '2 h 1 min']);
    expect(formatDuration(null)).toBe('');
  });

  it('CLI: a malformed file exits 2 with one line naming the field and writes nothing', () => {
    const file = join(work, 'bad-sweep.json');
    writeFileSync(file, JSON.stringify({ name: 'bad', out: 'bad-out', grid: { model: ['lenet-5'], seed: [1, 'x'] } }));
    const r = cli(['sweep', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("prunus: bad-sweep.json: grid.seed must be an array of integers, but item 1 is 'x'\n");
    expect(r.stdout).toBe('');
    expect(existsSync(join(work, 'bad-out'))).toBe(false);
    writeFileSync(file, '{ "name": "bad", ');
    const r2 = cli(['sweep', file]);
    expect(r2.status).toBe(2);
    expect(r2.stderr).toMatch(/^prunus: bad-sweep\.json: not valid JSON \(.*\)\n$/);
    const r3 = cli(['sweep', file, '--parallel', 'two']);
    expect(r3.status).toBe(2);
    expect(r3.stderr).toBe("prunus: --parallel must be a finite number, got 'two'\n");
    expect(existsSync(join(work, 'bad-out'))).toBe(false);
  });
});

describe('sweep runs', () => {
  it('runs, skips finished runs, retries a failed one next time, and writes the summary', async () => {
    const out = join(work, 'lib-sweep');
    const spec = {
      name: 'lib',
      base: { steps: 3, 'step-ms': 30 },
      grid: { model: ['lenet-5'], seed: [1, 2] },
      runs: [{ model: 'lenet-300-100', seed: 5, 'fake-fail': 1 }],
    };
    const events: SweepEvent[] = [];
    const r1 = await sweep(spec, { out, exec: [process.execPath, fake], parallel: 2, cores: 2, onEvent: (e) => events.push(e), pollMs: 50 });
    expect(r1.finished).toBe(2);
    expect(r1.failed).toBe(1);
    const failed = r1.rows.find((r) => r.status === 'failed')!;
    expect(failed.id).toBe('lenet-300-100_s5_fake-fail1');
    expect(failed.error).toBe('prunus: search: fake failure for lenet-300-100');
    expect(events.filter((e) => e.type === 'run-start').length).toBe(3);
    // Each run was told its pool size: 2 cores, 2 at once -> --workers 1.
    const cfg = JSON.parse(readFileSync(join(out, 'runs/lenet-5_s1/config.json'), 'utf8'));
    expect(cfg.options.workers).toBe(1);
    expect(cfg.options.trainThreads).toBe(1);
    const csv = readFileSync(join(out, 'summary.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('id,status,model,seed,optimizer,constraint,max_acc_drop,compression,non_zero,params,validation_accuracy,test_accuracy,test_error,wall_time_s,backend,evaluations,attempts,error');
    expect(csv[1]).toBe('lenet-5_s1,finished,lenet-5,1,ncs,validation,0.01,11,100,1000,0.98,0.971,0.029,1.234,cpu,20,1,');

    const events2: SweepEvent[] = [];
    const r2 = await sweep(out, { exec: [process.execPath, fake], onEvent: (e) => events2.push(e), pollMs: 50 });
    expect(r2.finished).toBe(3);
    expect(r2.failed).toBe(0);
    expect(events2.filter((e) => e.type === 'skip').map((e) => (e as { id: string }).id)).toEqual(['lenet-5_s1', 'lenet-5_s2']);
    expect(events2.filter((e) => e.type === 'run-start').map((e) => (e as { id: string }).id)).toEqual(['lenet-300-100_s5_fake-fail1']);
    expect(r2.rows.find((r) => r.id === 'lenet-300-100_s5_fake-fail1')!.attempts).toBe(2);
    const md = readFileSync(join(out, 'summary.md'), 'utf8');
    expect(md).toContain('| lenet-5_s2 | lenet-5 | 2 | ncs | validation (0.01) | 12.00x | 97.20% | 2.80% | 1.2 s | cpu | finished |');
    expect(md).toBe(summaryMarkdown(r2.rows, { name: 'lib' }));
    expect(summaryCsv(r2.rows).split('\n').length).toBe(5);

    // The same folder with other flags for an existing run id is refused before anything runs.
    await expect(sweep({ ...spec, base: { steps: 4, 'step-ms': 30 } }, { out, exec: [process.execPath, fake] })).rejects.toThrow(/run 'lenet-5_s1' already exists .* with other flags/);
  });

  it('does not start two runs that would train the same reference side by side', async () => {
    const out = join(work, 'ref-sweep');
    const events: { e: SweepEvent; t: number }[] = [];
    const r = await sweep(
      { name: 'ref', base: { model: 'lenet-5', seed: 7, steps: 8, 'step-ms': 120 }, grid: { optimizer: ['ncs', 'random'] } },
      { out, exec: [process.execPath, fake], parallel: 2, onEvent: (e) => events.push({ e, t: Date.now() }), pollMs: 20 },
    );
    expect(r.finished).toBe(2);
    const starts = events.filter((x) => x.e.type === 'run-start');
    expect(starts.length).toBe(2);
    // The second started only once the first had written its first phase event (i.e. its reference was done),
    // but did not wait for the first to finish.
    const firstDir = join(out, 'runs', (starts[0]!.e as { id: string }).id);
    const firstInvocation = Number(readFileSync(join(firstDir, 'invocations.log'), 'utf8').trim().split(' ')[2]);
    const firstEnd = events.find((x) => x.e.type === 'run-end' && (x.e as { id: string }).id === (starts[0]!.e as { id: string }).id)!.t;
    expect(starts[1]!.t - firstInvocation).toBeGreaterThanOrEqual(2 * 120 - 20);
    expect(starts[1]!.t).toBeLessThan(firstEnd);
  });

  it('aborting (what Ctrl-C does) stops the running runs, records them as interrupted, and the next start resumes them', async () => {
    const out = join(work, 'abort-sweep');
    const spec = { name: 'abort', base: { steps: 20, 'step-ms': 100 }, grid: { model: ['lenet-5'], seed: [1, 2] } };
    const ac = new AbortController();
    const running = sweep(spec, { out, exec: [process.execPath, fake], parallel: 2, signal: ac.signal, pollMs: 20 });
    // Abort once both runs are under way (have checkpointed at least once).
    const t0 = Date.now();
    while (!['lenet-5_s1', 'lenet-5_s2'].every((id) => existsSync(join(out, 'runs', id, 'checkpoint.json')))) {
      if (Date.now() - t0 > 60_000) throw new Error('runs did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
    ac.abort();
    const r1 = await running;
    expect(r1.interrupted).toBe(true);
    expect(r1.rows.map((r) => r.status)).toEqual(['interrupted', 'interrupted']);
    expect(existsSync(join(out, 'sweep.lock'))).toBe(false);
    const r2 = await sweep(out, { exec: [process.execPath, fake], pollMs: 20 });
    expect(r2.rows.map((r) => r.status)).toEqual(['finished', 'finished']);
    for (const id of ['lenet-5_s1', 'lenet-5_s2']) {
      const calls = readFileSync(join(out, 'runs', id, 'invocations.log'), 'utf8').trim().split('\n').map((l) => l.split(' ')[0]);
      expect(calls).toEqual(['search', 'resume']);
    }
  });

  it('waits for a live process already working on a run it has no record of (sweep killed between spawn and record)', async () => {
    const out = join(work, 'unrecorded');
    const dir = join(out, 'runs', 'lenet-5_s1');
    const stray = spawn(process.execPath, [fake, 'search', '--model', 'lenet-5', '--seed', '1', '--steps', '8', '--step-ms', '100', '--workers', '1', '--out', dir, '--json'], { stdio: 'ignore' });
    children.push(stray);
    const t0 = Date.now();
    while (!existsSync(join(dir, 'config.json'))) {
      if (Date.now() - t0 > 60_000) throw new Error('the stray run did not start');
      await new Promise((r) => setTimeout(r, 10));
    }
    const events: SweepEvent[] = [];
    const r = await sweep({ name: 'unrec', base: { steps: 8, 'step-ms': 100 }, grid: { model: ['lenet-5'], seed: [1] } }, { out, exec: [process.execPath, fake], pollMs: 20, onEvent: (e) => events.push(e) });
    expect(events.find((e) => e.type === 'run-wait')).toEqual({ type: 'run-wait', id: 'lenet-5_s1', pid: stray.pid });
    expect(events.some((e) => e.type === 'run-start')).toBe(false);
    expect(r.rows[0]!.status).toBe('finished');
    expect(readFileSync(join(dir, 'writes.log'), 'utf8').trim().split('\n').length).toBe(1);
    expect(readFileSync(join(dir, 'invocations.log'), 'utf8').trim().split('\n').length).toBe(1);
  });

  it('a sweep killed mid-way (SIGKILL, with and without its children) and restarted finishes every run exactly once', async () => {
    const file = join(work, 'kill.json');
    writeFileSync(
      file,
      JSON.stringify({ name: 'kill', out: 'kill-out', parallel: 2, base: { steps: 8, 'step-ms': 120 }, grid: { model: ['lenet-300-100', 'lenet-5'], seed: [1, 2, 3] } }),
    );
    const out = join(work, 'kill-out');
    const ids = ['lenet-300-100_s1', 'lenet-300-100_s2', 'lenet-300-100_s3', 'lenet-5_s1', 'lenet-5_s2', 'lenet-5_s3'];
    const runDir = (id: string) => join(out, 'runs', id);
    const finishedIds = () => ids.filter((id) => existsSync(join(runDir(id), 'report.json')));
    const inProgress = () => ids.filter((id) => existsSync(join(runDir(id), 'checkpoint.json')) && !existsSync(join(runDir(id), 'report.json')));
    const invocations = (id: string) => (existsSync(join(runDir(id), 'invocations.log')) ? readFileSync(join(runDir(id), 'invocations.log'), 'utf8').trim().split('\n') : []);
    const start = () => {
      const c = spawn(process.execPath, [join(repoRoot, 'bin/prunus.js'), 'sweep', file, '--json'], {
        cwd: work,
        detached: true, // its own process group: the sweep and its children
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, PRUNUS_SWEEP_EXEC: fake },
      });
      children.push(c);
      let stdout = '';
      let stderr = '';
      c.stdout!.on('data', (d) => (stdout += d));
      c.stderr!.on('data', (d) => (stderr += d));
      const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((res) => c.on('exit', (code, signal) => setTimeout(() => res({ code, signal, stdout, stderr }), 50)));
      return { c, done };
    };
    const until = async (cond: () => boolean, what: string, ms = 60_000) => {
      const t0 = Date.now();
      while (!cond()) {
        if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };

    // 1. Kill the whole group once one run has finished and another is half-way.
    const a = start();
    await until(() => finishedIds().length >= 1 && inProgress().length >= 1, 'a finished run and a run in progress');
    process.kill(-a.c.pid!, 'SIGKILL');
    const ra = await a.done;
    expect(ra.signal).toBe('SIGKILL');
    const done1 = finishedIds();
    const calls1 = Object.fromEntries(done1.map((id) => [id, invocations(id).length]));
    const interrupted1 = inProgress();
    expect(done1.length).toBeLessThan(ids.length);

    // 2. Restart; kill only the sweep process (its runs go on as orphans) once another run has finished.
    // (The runs in progress are noted at the kill: an orphan may finish before the sweep's exit is observed.)
    const b = start();
    let orphans: string[] = [];
    await until(() => {
      orphans = inProgress();
      return finishedIds().length > done1.length && orphans.length >= 1;
    }, 'progress after the restart');
    process.kill(b.c.pid!, 'SIGKILL');
    await b.done;
    const done2 = finishedIds();
    const calls2 = Object.fromEntries(done2.map((id) => [id, invocations(id).length]));
    expect(orphans.length).toBeGreaterThanOrEqual(1);

    // 3. Restart and let it finish.
    const c = start();
    const rc = await c.done;
    expect(rc.stderr).not.toMatch(/internal error/);
    expect(rc.code).toBe(0);
    const summary = JSON.parse(rc.stdout);
    expect(summary.finished).toBe(6);
    expect(summary.failed).toBe(0);
    expect(summary.runs.map((r: { id: string; status: string }) => `${r.id}:${r.status}`)).toEqual(ids.map((id) => `${id}:finished`));

    for (const id of ids) {
      // Each run's report was written exactly once, and each run was started (`search`) exactly once.
      const writes = readFileSync(join(runDir(id), 'writes.log'), 'utf8').trim().split('\n');
      expect(writes.length, `report writes of ${id}`).toBe(1);
      expect(invocations(id).filter((l) => l.startsWith('search ')).length, `searches of ${id}`).toBe(1);
    }
    // Finished runs were never run again.
    for (const id of done1) expect(invocations(id).length, `${id} after the first kill`).toBe(calls1[id]);
    for (const id of done2) expect(invocations(id).length, `${id} after the second kill`).toBe(calls2[id]);
    // The runs interrupted by the first kill were resumed, not restarted.
    for (const id of interrupted1) expect(invocations(id).some((l) => l.startsWith('resume ')), `${id} resumed`).toBe(true);
    // No run of the sweep is still alive, and the lock was released.
    expect(existsSync(join(out, 'sweep.lock'))).toBe(false);
    const resolved = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
    expect(resolved.runs.map((r: { id: string }) => r.id)).toEqual(ids);
    expect(readFileSync(join(out, 'summary.csv'), 'utf8').trim().split('\n').length).toBe(7);
  }, 120_000);
});
