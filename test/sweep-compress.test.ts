/**
 * Sweeps of `prunus compress` runs: spec validation against the compress command (fast), the summary's compress
 * columns (fast, from a hand-written report), and one real sweep of two quick lenet-5 runs that is stopped part-way,
 * continued (`prunus resume` of the interrupted runs), and whose summary is checked against each run's report.json.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../foundation/errors.js';
import { COMMON_FLAGS } from '../src/cli-args.js';
import { COMPRESS_MODES, COMPRESS_OBJECTIVES } from '../src/compress/config.js';
import { METHOD_NAMES } from '../src/channels/config.js';
import { COMPRESS_METHOD_NAMES, COMPRESS_MODE_NAMES, COMPRESS_OBJECTIVE_NAMES, commandFlagNames } from '../src/sweep/commands.js';
import { buildSummary, resolveSweep, summaryCsv, summaryMarkdown, sweep, validateSweepSpec, type RunState, type SummaryRow, type SweepEvent } from '../src/sweep/index.js';
import type { CompressReport } from '../src/compress/finish.js';
import { report } from '../src/report/index.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'prunus-sweep-compress-test-'));
const results = join(work, 'results');

function distFresh(): boolean {
  const built = (p: string) => (existsSync(join(repoRoot, 'dist', p)) ? statSync(join(repoRoot, 'dist', p)).mtimeMs : -1);
  const sources = ['src/commands/sweep.ts', 'src/commands/compress.ts', ...readdirSync(join(repoRoot, 'src/sweep')).map((f) => `src/sweep/${f}`), ...readdirSync(join(repoRoot, 'src/compress')).map((f) => `src/compress/${f}`)];
  return sources.every((s) => built(s.replace(/\.ts$/, '.js')) >= statSync(join(repoRoot, s)).mtimeMs);
}

beforeAll(() => {
  if (!distFresh()) spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repoRoot, stdio: 'ignore' });
  if (!distFresh()) throw new Error('dist/ is missing or older than src/sweep or src/compress: run `npx tsc -p tsconfig.json` first');
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[]) {
  return spawnSync(process.execPath, [join(repoRoot, 'bin/prunus.js'), ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, PRUNUS_RESULTS: results } });
}

const base = { model: 'lenet-5', quick: true };

describe('compress sweep files', () => {
  const bad: [unknown, RegExp][] = [
    [{ name: 'x', command: 'compress', base, grid: { mode: ['joint', 'fast'] } }, /^sweep\.json: grid\.mode must be an array of joint \| chained \| olmp \| channels, but item 1 is 'fast'$/],
    [{ name: 'x', command: 'compress', base: { ...base, mode: 'fast' }, grid: { seed: [1] } }, /^sweep\.json: base\.mode must be one of joint, chained, olmp, channels, got 'fast'$/],
    [{ name: 'x', command: 'compress', base, grid: { method: ['di', 'l2'] } }, /^sweep\.json: grid\.method must be an array of di \| dcp \| gfbs \| l1 \| random, but item 1 is 'l2'$/],
    [{ name: 'x', command: 'compress', base: { ...base, objective: 'speed' }, grid: { seed: [1] } }, /^sweep\.json: base\.objective must be one of size, macs, mixed, got 'speed'$/],
    [{ name: 'x', command: 'compress', base, grid: { 'flops-budget': [0.5, 1.5] } }, /^sweep\.json: grid\.flops-budget must be an array of numbers in \(0, 1\], but item 1 is 1\.5$/],
    [{ name: 'x', command: 'compress', base: { ...base, 'flops-budget': 0 }, grid: { seed: [1] } }, /^sweep\.json: base\.flops-budget must be a number in \(0, 1\], got 0$/],
    [{ name: 'x', command: 'compress', base: { ...base, 'search-budget': 1 }, grid: { seed: [1] } }, /^sweep\.json: base\.search-budget must be an integer >= 2, got 1$/],
    [{ name: 'x', command: 'compress', base: { ...base, 'crate-bounds': '3,1' }, grid: { seed: [1] } }, /^sweep\.json: base\.crate-bounds must be two numbers 'lo,hi' with lo < hi, got '3,1'$/],
    [{ name: 'x', command: 'compress', base: { ...base, 'time-budget': 'soon' }, grid: { seed: [1] } }, /^sweep\.json: base\.time-budget must be a duration/],
    [{ name: 'x', command: 'compress', base: { quick: true }, grid: { model: ['lenet-300-100'] } }, /^sweep\.json: grid\.model must be an array of lenet-5 \| vgg-bn \| resnet-bn, but item 0 is 'lenet-300-100'$/],
    [{ name: 'x', command: 'compress', base: { ...base, compare: true }, grid: { seed: [1] } }, /^sweep\.json: base\.compare is for 'prunus compress --compare'/],
    [{ name: 'x', command: 'compress', base: { ...base, out: 'x' }, grid: { seed: [1] } }, /^sweep\.json: base\.out is set by the sweep/],
    [{ name: 'x', command: 'compress', grid: { method: ['di'] } }, /^sweep\.json: grid\.model or base\.model is required$/],
    [{ name: 'x', command: 'channels', base, grid: { seed: [1] } }, /^sweep\.json: command must be one of search, compress, got 'channels'$/],
  ];
  it.each(bad.map(([spec, re], i) => ({ i, spec, re })))('rejects malformed compress sweep #$i with a named field', ({ spec, re }) => {
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

  it("checks flag names against the sweep's command: search-only flags are refused in compress sweeps and the other way round", async () => {
    const out = join(work, 'never');
    await expect(resolveSweep({ name: 'x', command: 'compress', base: { ...base, optimizer: 'ncs' }, grid: { method: ['di'] } }, { out })).rejects.toThrow(
      new UsageError("sweep: base.optimizer is not a flag of 'prunus compress'"),
    );
    await expect(resolveSweep({ name: 'x', command: 'compress', base, grid: { constraint: ['batch'] } }, { out })).rejects.toThrow("sweep: grid.constraint is not a flag of 'prunus compress'");
    await expect(resolveSweep({ name: 'x', base, grid: { method: ['di'] } }, { out })).rejects.toThrow("sweep: grid.method is not a flag of 'prunus search'");
    await expect(resolveSweep({ name: 'x', base: { ...base, 'flops-budget': 0.5 }, grid: { seed: [1] } }, { out })).rejects.toThrow("sweep: base.flops-budget is not a flag of 'prunus search'");
    // Flags of both commands take each command's values: 8 search workers are fine, 65 compress workers are not.
    await expect(resolveSweep({ name: 'x', command: 'compress', base: { ...base, workers: 65 }, grid: { method: ['di'] } }, { out })).rejects.toThrow('sweep: base.workers must be an integer from 0 to 64, got 65');

    const ok = await resolveSweep(
      { name: 'c', command: 'compress', parallel: 2, base: { quick: true, model: 'lenet-5', 'flops-budget': 0.5 }, grid: { method: ['di', 'gfbs'], mode: ['joint', 'chained'] }, runs: [{ method: 'l1', seed: 3, 'flops-budget': 0.3 }] },
      { out, cores: 4 },
    );
    expect(ok.command).toBe('compress');
    expect(ok.runs.map((r) => r.id)).toEqual(['lenet-5_joint_di', 'lenet-5_chained_di', 'lenet-5_joint_gfbs', 'lenet-5_chained_gfbs', 'lenet-5_l1_s3_f0.3']);
    expect(ok.runs[0]!.argv).toEqual(['compress', '--quick', '--model', 'lenet-5', '--flops-budget', '0.5', '--method', 'di', '--mode', 'joint', '--workers', '2', '--train-threads', '2', '--out', join(out, 'runs', 'lenet-5_joint_di'), '--json']);
    // BatchNorm models whose candidates are recalibrated evaluate in the run's own thread: no --workers share.
    const bn = await resolveSweep({ name: 'bn', command: 'compress', base: { quick: true, model: 'vgg-bn' }, grid: { mode: ['joint', 'olmp'] }, runs: [{ 'bn-recalibration': 0 }] }, { out, cores: 4, parallel: 1 });
    expect(bn.runs.map((r) => [r.id, r.argv.includes('--workers'), r.argv.includes('--train-threads')])).toEqual([
      ['vgg-bn_joint', false, true],
      ['vgg-bn_olmp', true, true],
      ['vgg-bn_bn-recalibration0', true, true],
    ]);
    expect(existsSync(out)).toBe(false);
  });

  it("names the same flags and values as 'prunus compress' (src/commands/compress.ts)", async () => {
    // The FLAGS object of the compress command, read from its source: every flag is either a sweep flag or reserved.
    const src = readFileSync(join(repoRoot, 'src/commands/compress.ts'), 'utf8');
    const block = /const FLAGS = \{([\s\S]*?)\n\} as const;/.exec(src)![1]!;
    const own = [...block.matchAll(/^\s+'?([a-z][a-z0-9-]*)'?: \{ type:/gm)].map((m) => m[1]!);
    expect(own.length).toBeGreaterThan(20);
    const flags = new Set([...Object.keys(COMMON_FLAGS), ...own]);
    expect([...(await commandFlagNames('compress'))!].sort()).toEqual([...flags].sort());
    expect(COMPRESS_MODE_NAMES).toEqual(COMPRESS_MODES);
    expect(COMPRESS_OBJECTIVE_NAMES).toEqual(COMPRESS_OBJECTIVES);
    expect(COMPRESS_METHOD_NAMES).toEqual(METHOD_NAMES);
  });

  it('CLI: a compress sweep with a search-only flag or a bad mode exits 2 with one line and writes nothing', () => {
    const file = join(work, 'bad-compress.json');
    writeFileSync(file, JSON.stringify({ name: 'badc', out: 'badc-out', command: 'compress', base: { ...base, optimizer: 'ncs' }, grid: { method: ['di', 'gfbs'] } }));
    const r = cli(['sweep', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("prunus: bad-compress.json: base.optimizer is not a flag of 'prunus compress'\n");
    expect(r.stdout).toBe('');
    writeFileSync(file, JSON.stringify({ name: 'badc', out: 'badc-out', command: 'compress', base, grid: { method: ['di'], mode: ['joint', 'slim'] } }));
    const r2 = cli(['sweep', file]);
    expect(r2.status).toBe(2);
    expect(r2.stderr).toBe("prunus: bad-compress.json: grid.mode must be an array of joint | chained | olmp | channels, but item 1 is 'slim'\n");
    expect(existsSync(join(work, 'badc-out'))).toBe(false);
    // Queued sweeps run search only: refused before Redis is reached.
    writeFileSync(file, JSON.stringify({ name: 'badc', command: 'compress', base, grid: { method: ['di'] } }));
    const r3 = cli(['sweep', file, '--queue', 'redis://127.0.0.1:1']);
    expect(r3.status).toBe(2);
    expect(r3.stderr).toBe("prunus: bad-compress.json: only 'search' sweeps can be queued\n");
  });
});

describe('compress sweep summary', () => {
  it('reads compress rows from report.json (finished), config.json (interrupted) and the flags (pending)', () => {
    const dir = join(work, 'summary-only');
    const runs = ['lenet-5_joint_di', 'lenet-5_joint_gfbs', 'lenet-5_joint_l1'].map((id, i) => ({ id, dir: `runs/${id}`, flags: { model: 'lenet-5', mode: 'joint', method: ['di', 'gfbs', 'l1'][i]!, 'flops-budget': 0.5 } }));
    mkdirSync(join(dir, 'runs', runs[0]!.id), { recursive: true });
    mkdirSync(join(dir, 'runs', runs[1]!.id), { recursive: true });
    writeFileSync(join(dir, 'sweep.json'), JSON.stringify({ prunusSweep: 1, name: 's', command: 'compress', runs }));
    const options = { mode: 'joint', method: 'di', objective: 'size', maxAccDrop: 0.01, flopsBudget: 0.5 };
    writeFileSync(join(dir, 'runs', runs[0]!.id, 'config.json'), JSON.stringify({ command: 'compress', model: 'lenet-5', seed: 1, backend: { name: 'wasm' }, options }));
    writeFileSync(join(dir, 'runs', runs[1]!.id, 'config.json'), JSON.stringify({ command: 'compress', model: 'lenet-5', seed: 1, backend: { name: 'wasm' }, options: { ...options, method: 'gfbs' } }));
    const report = {
      status: 'finished', command: 'compress', mode: 'joint', model: 'lenet-5', dataset: 'mnist', method: 'di', objective: 'size', seed: 1, backend: { name: 'wasm' },
      budgets: { maxAccDrop: 0.01, flopsBudget: 0.5, targetCompression: null, timeBudget: null }, compression: 4.25, nonZero: 101_430, params: 431_080,
      macs: { dense: 2_293_000, slimmed: 1_081_098, sparse: 573_047, withinBudget: true },
      accuracy: { baseline: { validation: 0.948, test: 0.9425 }, start: { validation: 0.93, test: 0.93 }, final: { validation: 0.95, test: 0.943 }, withinDrop: true },
      search: { evaluations: 9 }, olmp: { evaluations: 30 }, wallTimeMs: 13_810,
    };
    writeFileSync(join(dir, 'runs', runs[0]!.id, 'report.json'), JSON.stringify(report));
    const state: RunState = { id: runs[0]!.id, flags: runs[0]!.flags, attempts: [{ n: 1, action: 'compress', pid: 1, start: null, startedAt: '', result: 'finished' }] };
    mkdirSync(join(dir, 'state'));
    writeFileSync(join(dir, 'state', `${state.id}.json`), JSON.stringify(state));
    const rows = buildSummary(dir, runs, (id) => (id === state.id ? state : null));
    expect(rows.map((r) => [r.id, r.status, r.command, r.mode, r.method])).toEqual([
      ['lenet-5_joint_di', 'finished', 'compress', 'joint', 'di'],
      ['lenet-5_joint_gfbs', 'interrupted', 'compress', 'joint', 'gfbs'],
      ['lenet-5_joint_l1', 'pending', 'compress', 'joint', 'l1'],
    ]);
    const csv = summaryCsv(rows).trim().split('\n');
    expect(csv[0]).toBe(
      'id,status,model,mode,method,seed,objective,max_acc_drop,flops_budget,compression,non_zero,params,macs_slimmed,macs_dense,validation_accuracy,test_accuracy,baseline_test_accuracy,within_drop,wall_time_s,backend,evaluations,attempts,error',
    );
    expect(csv[1]).toBe('lenet-5_joint_di,finished,lenet-5,joint,di,1,size,0.01,0.5,4.25,101430,431080,1081098,2293000,0.95,0.943,0.9425,true,13.81,wasm,39,1,');
    expect(csv[2]).toBe('lenet-5_joint_gfbs,interrupted,lenet-5,joint,gfbs,1,size,0.01,0.5,,,,,,,,,,,wasm,,0,');
    expect(csv[3]).toBe('lenet-5_joint_l1,pending,lenet-5,joint,l1,,size,,0.5,,,,,,,,,,,,,0,');
    const md = summaryMarkdown(rows, { name: 's' });
    expect(md).toContain('| id | model | mode | method | seed | compression | non-zeros | MACs slimmed/dense | test accuracy | baseline test | within drop | wall time | backend | status |');
    expect(md).toContain('| lenet-5_joint_di | lenet-5 | joint | di | 1 | 4.25x | 101430 | 1.08M / 2.29M (47.15%) | 94.30% | 94.25% | yes | 13.8 s | wasm | finished |');
  });
});

describe('compress sweep runs', () => {
  it('runs two quick compress runs, continues them after a stop with prunus resume, and summarises their reports', async () => {
    const out = join(work, 'cs');
    const spec = {
      name: 'cs',
      command: 'compress',
      parallel: 2,
      base: { model: 'lenet-5', mode: 'joint', seed: 1, quick: true, 'flops-budget': 0.5, 'search-budget': 9, 'pop-size': 4, 'finetune-steps': 20, 'di-steps': 2, iterations: 101, 'prune-until': 50, 'olmp-search-budget': 10 },
      grid: { method: ['di', 'gfbs'] },
    };
    const ids = ['lenet-5_joint_di_s1', 'lenet-5_joint_gfbs_s1'];
    const runDir = (id: string) => join(out, 'runs', id);
    const env = { PRUNUS_RESULTS: results };

    // 1. Start; stop the sweep (what Ctrl-C does) once both runs are under way. The second starts only once the
    //    first is past its baseline (both would train the same one).
    const ac = new AbortController();
    const events: SweepEvent[] = [];
    const pastBaselineAtStart: boolean[] = [];
    const first = sweep(spec, {
      out,
      cores: 2,
      env,
      signal: ac.signal,
      pollMs: 100,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'run-start') pastBaselineAtStart.push(existsSync(join(runDir(ids[0]!), 'stages.json')));
      },
    });
    const t0 = Date.now();
    while (!ids.every((id) => existsSync(join(runDir(id), 'config.json')))) {
      if (Date.now() - t0 > 180_000) throw new Error('the runs did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    ac.abort();
    const r1 = await first;
    expect(r1.interrupted).toBe(true);
    expect(events.filter((e) => e.type === 'run-start').map((e) => (e as { id: string; action: string }).id + ':' + (e as { action: string }).action)).toEqual(ids.map((id) => `${id}:compress`));
    expect(pastBaselineAtStart).toEqual([false, true]);
    // ... but did not wait for the first to finish.
    const at = (type: string, id: string) => events.findIndex((e) => e.type === type && (e as { id?: string }).id === id);
    expect(at('run-start', ids[1]!)).toBeLessThan(at('run-end', ids[0]!));
    expect(r1.rows.map((r) => r.status)).toContain('interrupted');
    const interrupted = r1.rows.filter((r) => r.status === 'interrupted').map((r) => r.id);
    // Each run got its share of the 2 cores (2 at once → 1 each).
    for (const id of ids) {
      const cfg = JSON.parse(readFileSync(join(runDir(id), 'config.json'), 'utf8')) as { command: string; options: { workers: number; trainThreads: number; method: string } };
      expect(cfg.command).toBe('compress');
      expect(cfg.options.workers).toBe(1);
      expect(cfg.options.trainThreads).toBe(1);
    }

    // 2. Start again: the interrupted runs are continued with `prunus resume`, not started anew.
    const events2: SweepEvent[] = [];
    const r2 = await sweep(out, { env, pollMs: 100, onEvent: (e) => events2.push(e) });
    expect(r2.interrupted).toBe(false);
    expect(r2.failed).toBe(0);
    expect(r2.rows.map((r) => `${r.id}:${r.status}`)).toEqual(ids.map((id) => `${id}:finished`));
    expect(events2.filter((e) => e.type === 'run-start').map((e) => `${(e as { id: string }).id}:${(e as { action: string }).action}`)).toEqual(interrupted.map((id) => `${id}:resume`));
    for (const id of interrupted) {
      const st = JSON.parse(readFileSync(join(out, 'state', `${id}.json`), 'utf8')) as RunState;
      expect(st.attempts.map((a) => `${a.action}:${a.result}`)).toEqual(['compress:interrupted', 'resume:finished']);
    }

    // 3. The summary (as written, and loaded back) matches each run's report.json.
    const saved = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { name: string; rows: SummaryRow[] };
    expect(saved.rows).toEqual(r2.rows);
    const csv = readFileSync(join(out, 'summary.csv'), 'utf8').trim().split('\n');
    const header = csv[0]!.split(',');
    expect(csv.length).toBe(3);
    for (const [i, id] of ids.entries()) {
      const rep = JSON.parse(readFileSync(join(runDir(id), 'report.json'), 'utf8')) as CompressReport;
      const row = saved.rows.find((r) => r.id === id)!;
      expect(rep.method).toBe(['di', 'gfbs'][i]);
      expect(row).toMatchObject({
        status: 'finished',
        command: 'compress',
        model: 'lenet-5',
        mode: 'joint',
        method: rep.method,
        seed: 1,
        compression: rep.compression,
        nonZero: rep.nonZero,
        params: rep.params,
        macsSlimmed: rep.macs.slimmed,
        macsDense: rep.macs.dense,
        flopsBudget: 0.5,
        testAccuracy: rep.accuracy.final.test,
        validationAccuracy: rep.accuracy.final.validation,
        baselineTestAccuracy: rep.accuracy.baseline.test,
        withinDrop: rep.accuracy.withinDrop,
        wallTimeMs: rep.wallTimeMs,
        backend: rep.backend.name,
      });
      expect(rep.macs.slimmed).toBeLessThanOrEqual(0.5 * rep.macs.dense);
      const cells = Object.fromEntries(header.map((h, k) => [h, csv.find((l) => l.startsWith(`${id},`))!.split(',')[k]]));
      expect(cells).toMatchObject({
        status: 'finished',
        method: rep.method,
        compression: String(rep.compression),
        non_zero: String(rep.nonZero),
        macs_slimmed: String(rep.macs.slimmed),
        macs_dense: String(rep.macs.dense),
        test_accuracy: String(rep.accuracy.final.test),
        baseline_test_accuracy: String(rep.accuracy.baseline.test),
        within_drop: String(rep.accuracy.withinDrop),
        wall_time_s: String(Math.round(rep.wallTimeMs) / 1000),
      });
      const md = readFileSync(join(out, 'summary.md'), 'utf8');
      expect(md).toContain(`| ${id} | lenet-5 | joint | ${rep.method} | 1 | ${rep.compression.toFixed(2)}x | ${rep.nonZero} | `);
    }

    // 4. The CLI on the finished sweep folder runs nothing and prints the same rows.
    const r3 = cli(['sweep', out, '--json']);
    expect(r3.status).toBe(0);
    expect(r3.stderr).not.toMatch(/starting|resuming/);
    const printed = JSON.parse(r3.stdout) as { finished: number; runs: SummaryRow[] };
    expect(printed.finished).toBe(2);
    expect(printed.runs).toEqual(r2.rows);

    // 5. Its HTML report has the compress columns and each run's Pareto front.
    const rep = await report(out);
    expect(rep.kind).toBe('sweep');
    const html = readFileSync(rep.out, 'utf8');
    expect(html).toContain('MACs slimmed/dense');
    for (const id of ids) expect(rep.figures.some((f) => f.run === id && f.id === 'pareto')).toBe(true);
  }, 420_000);
});
