/**
 * One owner per run, damage survived, no stack traces, a quiet terminal: two resumes of one run started together
 * (one runs, the other exits 2 naming the holder); a damaged pointer, a missing newest checkpoint and a damaged
 * newest checkpoint (each resumes to the report and events of an uninterrupted run); a write failure injected at
 * every write of a small run (each leaves a run that resumes to the identical report); NaN weights, --out on a file,
 * a damaged config.json (one line, exit 2); no Dawn warnings and no tfjs banner on stderr.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../backends/backend.js';
import { search, resume } from '../src/pipeline/run.js';
import { setWriteFault, writeCount } from '../foundation/atomic.js';
import { EnvironmentError } from '../foundation/errors.js';
import { saveModel } from '../models/io.js';
import { lenet300100 } from '../models/architectures.js';
import { initParams, onesMasks } from '../models/params.js';
import { Rng } from '../foundation/rng.js';
import { bin, lines, runCli, type CliResult } from './run-cli.js';


type Result = CliResult;

let work: string;
const env = (): NodeJS.ProcessEnv => ({ ...process.env, PRUNUS_RESULTS: join(work, 'results') });

function prunus(args: string[]): Promise<Result> {
  return runCli(args, { cwd: work, env: env() });
}


/** A small run of the quick preset: three searches, a checkpoint every 20 iterations. */
const FLAGS = ['--model', 'lenet-300-100', '--quick', '--seed', '3', '--iterations', '81', '--prune-until', '60', '--search-period', '20', '--log-period', '20', '--checkpoint-period', '20', '--reference-iterations', '40', '--search-budget', '15', '--backend', 'wasm'];
const OPTIONS = { model: 'lenet-300-100', quick: true, seed: 3, iterations: 81, pruneUntil: 60, searchPeriod: 20, logPeriod: 20, checkpointPeriod: 20, referenceIterations: 40, searchBudget: 15, backend: 'wasm' as const };

const comparable = (r: Record<string, unknown>) => ({ ...r, wallTimeMs: 0, runDir: '' });
const events = (dir: string) =>
  readFileSync(join(dir, 'events.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => ({ ...JSON.parse(l), elapsedMs: 0 }));

let reference: Record<string, unknown>;
let referenceDir: string;

/** Starts the run and SIGKILLs it once `checkpoints` checkpoints exist: a run to resume. */
async function killedRun(dir: string, checkpoints: number): Promise<void> {
  const child = spawn(process.execPath, [bin, 'search', ...FLAGS, '--out', dir, '--keep-checkpoints'], { cwd: work, env: env(), stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const seq = () => {
    try {
      return (JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')) as { seq: number }).seq;
    } catch {
      return 0;
    }
  };
  while (seq() < checkpoints) await new Promise((r) => setTimeout(r, 10));
  child.kill('SIGKILL');
  await exited;
  expect(existsSync(join(dir, 'report.json'))).toBe(false);
}

describe('reliability', () => {
  beforeAll(async () => {
    await initBackend('wasm');
    work = mkdtempSync(join(tmpdir(), 'prunus-rel-'));
    referenceDir = join(work, 'reference');
    const r = await prunus(['search', ...FLAGS, '--out', referenceDir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    reference = JSON.parse(r.stdout) as Record<string, unknown>;
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('two resumes started together: one runs to the uninterrupted result, the other exits 2 naming the holder', async () => {
    const dir = join(work, 'twice');
    await killedRun(dir, 1);
    const [a, b] = await Promise.all([prunus(['resume', dir, '--json']), prunus(['resume', dir, '--json'])]);
    const [ok, refused] = a.code === 0 ? [a, b] : [b, a];
    expect(ok.code, ok.stderr).toBe(0);
    expect(refused.code, refused.stderr).toBe(2);
    expect(lines(refused.stderr)).toHaveLength(1);
    expect(lines(refused.stderr)[0]).toMatch(/is in use by prunus resume \(pid \d+ on .+, since .+\); wait for it to finish or stop it$/);
    expect(comparable(JSON.parse(ok.stdout))).toEqual(comparable(reference));
    expect(events(dir)).toEqual(events(referenceDir));
  });

  it('SIGINT or SIGTERM stops a search at the next iteration, checkpointed (exit 130 / 143, one line); resume ends identical', async () => {
    // The whole quick preset: long enough to be stopped in the middle.
    const long = ['--model', 'lenet-300-100', '--quick', '--seed', '4', '--backend', 'wasm'];
    const baseDir = join(work, 'stopped-baseline');
    const base = await prunus(['search', ...long, '--out', baseDir, '--json']);
    expect(base.code, base.stderr).toBe(0);
    for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
      const dir = join(work, `stopped-${signal}`);
      let sent = false;
      const stopped = await runCli(['search', ...long, '--out', dir, '--json'], {
        cwd: work,
        env: env(),
        onStderr: (err, child) => {
          if (!sent && /search at t=\d+ /.test(err)) {
            sent = true;
            child.kill(signal);
          }
        },
      });
      const exit = stopped.code ?? stopped.signal;
      const stderr = stopped.stderr;
      expect(exit, stderr).toBe(code);
      const last = lines(stderr).at(-1)!;
      expect(last.startsWith(`prunus: ${signal}: stopped at `) && last.endsWith(`, checkpointed; continue with: prunus resume ${dir}`), last).toBe(true);
      expect(last).toMatch(/ stopped at (pruning|adjusting) iteration \d+, /);
      expect(existsSync(join(dir, 'report.json'))).toBe(false);
      const r = await prunus(['resume', dir, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(comparable(JSON.parse(r.stdout))).toEqual(comparable(JSON.parse(base.stdout)));
      expect(events(dir)).toEqual(events(baseDir));
    }
  });

  it('a damaged pointer, a missing newest checkpoint, a damaged newest checkpoint: each resumes to the uninterrupted result', async () => {
    const base = join(work, 'damaged');
    await killedRun(base, 3);
    const newest = (dir: string) => readdirSync(join(dir, 'checkpoints')).filter((d) => d.startsWith('ck-')).sort().at(-1)!;
    const cases: [string, (dir: string) => void, RegExp][] = [
      ['pointer cut short', (d) => truncateSync(join(d, 'checkpoint.json'), 5), /checkpoint\.json is damaged; resuming from checkpoints\/ck-\d+/],
      ['newest folder deleted', (d) => rmSync(join(d, 'checkpoints', newest(d)), { recursive: true }), /checkpoints\/ck-\d+ is damaged \(.*no such file.*\); resuming from checkpoints\/ck-\d+/i],
      ['newest state cut short', (d) => truncateSync(join(d, 'checkpoints', newest(d), 'state.bin'), 100), /checkpoints\/ck-\d+ is damaged \(state\.bin has 100 bytes, \d+ were written\); resuming from checkpoints\/ck-\d+/],
    ];
    for (const [name, damage, notice] of cases) {
      const dir = join(work, `damaged-${name.replace(/ /g, '-')}`);
      cpSync(base, dir, { recursive: true });
      damage(dir);
      const r = await prunus(['resume', dir, '--json']);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect(lines(r.stderr).filter((l) => /damaged/.test(l)), name).toHaveLength(1);
      expect(r.stderr, name).toMatch(notice);
      expect(comparable(JSON.parse(r.stdout)), name).toEqual(comparable(reference));
      expect(events(dir), name).toEqual(events(referenceDir));
    }
  });

  it('a write failure at every write of a run leaves it resumable to the identical report', async () => {
    const root = join(work, 'faults');
    const results = join(work, 'results');
    process.env['PRUNUS_RESULTS'] = results;
    try {
      setWriteFault(null);
      const clean = await search({ ...OPTIONS, out: join(root, 'clean') });
      const writes = writeCount();
      expect(writes).toBeGreaterThan(20);
      expect(comparable(clean as unknown as Record<string, unknown>)).toEqual(comparable(reference));
      for (let n = 1; n <= writes; n++) {
        const dir = join(root, `fault-${n}`);
        setWriteFault(n);
        let failure: unknown = null;
        try {
          await search({ ...OPTIONS, out: dir });
        } catch (e) {
          failure = e;
        }
        setWriteFault(null);
        expect(failure, `write ${n}`).toBeInstanceOf(EnvironmentError);
        expect((failure as Error).message, `write ${n}`).toMatch(/^cannot write .+: no space left on device$/);
        expect(existsSync(join(dir, 'report.json')), `write ${n}`).toBe(false);
        const report = existsSync(join(dir, 'config.json')) ? await resume(dir) : await search({ ...OPTIONS, out: dir });
        expect(comparable(report as unknown as Record<string, unknown>), `write ${n}`).toEqual(comparable(reference));
        expect(events(dir), `write ${n}`).toEqual(events(referenceDir));
      }
    } finally {
      setWriteFault(null);
      delete process.env['PRUNUS_RESULTS'];
    }
  }, 600_000);

  it('NaN weights, --out on a file, a damaged config.json: one line and exit 2, nothing changed', async () => {
    const arch = lenet300100();
    const modelDir = join(work, 'nan-model');
    saveModel(modelDir, { arch, params: initParams(arch, new Rng(1)), masks: onesMasks(arch) });
    const w = readFileSync(join(modelDir, 'weights.bin'));
    w.writeFloatLE(NaN, 4 * 10);
    writeFileSync(join(modelDir, 'weights.bin'), w);
    const nan = await prunus(['eval', modelDir]);
    expect(nan.code).toBe(2);
    expect(lines(nan.stderr)).toEqual([expect.stringMatching(/^prunus: Dense 'ip1': weight ip1\/kernel holds NaN at index 10 \(NaN or infinite weights are refused\)$/)]);

    const file = join(work, 'a-file');
    writeFileSync(file, 'keep me');
    const out = await prunus(['search', ...FLAGS, '--out', file]);
    expect(out.code).toBe(2);
    expect(lines(out.stderr)).toEqual([`prunus: --out ${file} exists and is not a folder`]);
    expect(readFileSync(file, 'utf8')).toBe('keep me');

    // A full disk in the CLI: one line, exit 1, and the run resumes to the uninterrupted result.
    const full = join(work, 'disk-full');
    const f = await runCli(['search', ...FLAGS, '--out', full], { cwd: work, env: { ...env(), PRUNUS_TEST_WRITE_FAULT: '12' } });
    expect(f.code).toBe(1);
    // (Progress lines aside: the backend line, phase changes, searches.)
    expect(lines(f.stderr).filter((l) => !/^(prunus: backend|prunus: \d+\/\d+|phase |search at )/.test(l))).toEqual([expect.stringMatching(/^prunus: cannot write .+: no space left on device$/)]);
    const again = await prunus(['resume', full, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(comparable(JSON.parse(again.stdout))).toEqual(comparable(reference));

    const dir = join(work, 'bad-config');
    await killedRun(dir, 1);
    truncateSync(join(dir, 'config.json'), 20);
    const before = readFileSync(join(dir, 'events.jsonl'), 'utf8');
    const bad = await prunus(['resume', dir]);
    expect(bad.code).toBe(2);
    expect(lines(bad.stderr)).toEqual([expect.stringMatching(/config\.json: not valid JSON \(.+\)$/)]);
    expect(readFileSync(join(dir, 'events.jsonl'), 'utf8')).toBe(before);
  });

  it('a quiet terminal: no Dawn warnings and no tfjs banner; --verbose says why other backends were skipped', async () => {
    const r = await prunus(['search', ...FLAGS.slice(0, -2), '--backend', 'auto', '--out', join(work, 'quiet'), '--verbose']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/artificially reduced|looks like you are running TensorFlow\.js|={10}/);
    const backendLine = lines(r.stderr).find((l) => l.startsWith('prunus: backend'))!;
    expect(backendLine).toMatch(/^prunus: backend (wasm|webgpu|tensorflow) /);
    if (backendLine.includes('backend wasm')) expect(backendLine).toMatch(/; skipped webgpu \(hardware adapter\): .+; @tensorflow\/tfjs-node-gpu: .+; @tensorflow\/tfjs-node: .+/);
  });
});
