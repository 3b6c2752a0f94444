import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { Rng } from '../foundation/rng.js';
import { report, paretoFront, loadRun } from '../src/report/index.js';
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readdirSync, statSync } from 'node:fs';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The CLI runs from dist/: rebuild when it is older than the report sources. */
function distFresh(): boolean {
  const out = join(repoRoot, 'dist/src/commands/report.js');
  if (!existsSync(out)) return false;
  const built = statSync(out).mtimeMs;
  const sources = [join(repoRoot, 'src/commands/report.ts'), ...readdirSync(join(repoRoot, 'src/report')).map((f) => join(repoRoot, 'src/report', f))];
  return sources.every((s) => statSync(s).mtimeMs <= built) && ['index', 'load', 'charts', 'html', 'render'].every((m) => existsSync(join(repoRoot, `dist/src/report/${m}.js`)));
}

function cli(args: string[]) {
  return spawnSync(process.execPath, [join(repoRoot, 'bin/prunus.js'), ...args], { cwd: work, encoding: 'utf8' });
}

const CHROMIUM = '/usr/bin/chromium';
const work = mkdtempSync(join(tmpdir(), 'prunus-report-test-'));
/** Screenshots are kept here after the test (for people to look at). */
const SHOTS = join(tmpdir(), 'prunus-report-screenshots');

const LAYERS: Record<string, { name: string; params: number }[]> = {
  'lenet-300-100': [
    { name: 'ip1', params: 235500 },
    { name: 'ip2', params: 30100 },
    { name: 'ip3', params: 1010 },
  ],
  'lenet-5': [
    { name: 'conv1', params: 520 },
    { name: 'conv2', params: 25050 },
    { name: 'ip1', params: 400500 },
    { name: 'ip2', params: 5010 },
  ],
};

/** Writes a run directory that follows the contract of `prunus search` (config.json, events.jsonl, report.json). */
function fakeRun(dir: string, model: string, seed: number, opts: { optimizer?: string; finished?: boolean; iterations?: number } = {}): void {
  const rng = new Rng(`${model}:${seed}:${opts.optimizer ?? 'ncs'}`);
  const iterations = opts.iterations ?? 3000;
  const pruneUntil = Math.floor(iterations / 2);
  const optimizer = opts.optimizer ?? 'ncs';
  mkdirSync(dir, { recursive: true });
  const backend = { name: 'cpu', requested: 'auto', detail: 'tfjs cpu (test fixture)' };
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({ command: 'search', model, dataset: 'mnist', seed, backend, versions: { prunus: '0.1.0', node: 'v20', tfjs: '4.22.0' }, options: { optimizer, constraint: 'validation', maxAccDrop: 0.01, iterations } }),
  );
  const events: unknown[] = [{ type: 'phase', iteration: 0, phase: 'pruning' }];
  const finalC = (model === 'lenet-5' ? 60 : 35) * (1 + 0.3 * rng.uniform());
  const comp = (t: number) => 1 + (finalC - 1) * Math.min(1, t / pruneUntil) ** 1.5;
  const last = opts.finished === false ? Math.floor(iterations * 0.6) : iterations;
  for (let t = 0; t <= last; t += 100) {
    if (t === pruneUntil) events.push({ type: 'phase', iteration: t, phase: 'adjusting' });
    if (t > 0 && t < pruneUntil && t % 300 === 0) {
      const gens = Array.from({ length: 16 }, (_, g) => ({ generation: g + 1, evaluations: (g + 1) * 10, bestFitness: (1 / comp(t)) * (1 + 0.5 * Math.exp(-g / 4)) }));
      events.push({ type: 'search', iteration: t, layers: LAYERS[model]!.slice(0, 2).map((l) => l.name), crates: LAYERS[model]!.map(() => rng.uniform() * 3), compression: comp(t) * 1.05, accuracy: 0.975 + 0.01 * rng.uniform(), evaluations: 160, feasible: true, generations: gens });
    }
    events.push({ type: 'log', iteration: t, phase: t < pruneUntil ? 'pruning' : 'adjusting', compression: comp(t), accuracy: 0.95 + 0.05 * rng.uniform(), validationAccuracy: 0.985 - 0.01 * Math.sin(t / 700) ** 2, loss: 0.1, lr: 0.01, elapsedMs: t * 10 });
  }
  if (opts.finished !== false) events.push({ type: 'phase', iteration: iterations, phase: 'done' });
  // A line cut by a kill at the end of the file must be skipped, not break the report.
  writeFileSync(join(dir, 'events.jsonl'), events.map((e) => JSON.stringify(e)).join('\n') + '\n' + (opts.finished === false ? '{"type":"log","itera' : ''));
  if (opts.finished === false) return;
  const params = LAYERS[model]!.reduce((s, l) => s + l.params, 0);
  const layers = LAYERS[model]!.map((l, i) => {
    const density = Math.min(1, (i === LAYERS[model]!.length - 1 ? 0.25 : 0.4 / (i + 1)) / (finalC / 10) + 0.01 * rng.uniform());
    return { name: l.name, params: l.params, nonZero: Math.round(l.params * density), density };
  });
  const nonZero = layers.reduce((s, l) => s + l.nonZero, 0);
  const testAccuracy = 0.9835 - 0.002 * rng.uniform() - (model === 'lenet-5' ? -0.006 : 0);
  writeFileSync(
    join(dir, 'report.json'),
    JSON.stringify({ status: 'finished', command: 'search', model, dataset: 'mnist', seed, backend, optimizer, constraint: 'validation', compression: params / nonZero, nonZero, params, layers, validationAccuracy: 0.98, testAccuracy, testError: 1 - testAccuracy, wallTimeMs: 61_000 + rng.int(20_000), evaluations: 800, iterations }),
  );
}

const runDir = join(work, 'run-lenet-5');
const sweepDir = join(work, 'sweep');
const sweepIds: string[] = [];
let browser: Browser | undefined;

beforeAll(async () => {
  fakeRun(runDir, 'lenet-5', 981118);
  const runs: { id: string; flags: Record<string, unknown>; dir: string; origin: string; argv: string[] }[] = [];
  for (const model of ['lenet-300-100', 'lenet-5']) {
    for (const seed of [1, 2, 3]) {
      for (const optimizer of ['ncs', 'random']) {
        const id = `${model}_s${seed}_${optimizer}`;
        sweepIds.push(id);
        runs.push({ id, flags: { model, seed, optimizer, quick: true }, dir: `runs/${id}`, origin: `grid[${runs.length}]`, argv: [] });
        // One run was interrupted half-way.
        fakeRun(join(sweepDir, 'runs', id), model, seed, { optimizer, finished: !(model === 'lenet-5' && seed === 3 && optimizer === 'random') });
      }
    }
  }
  writeFileSync(join(sweepDir, 'sweep.json'), JSON.stringify({ prunusSweep: 1, name: 'report-fixture', command: 'search', source: null, spec: { name: 'report-fixture' }, parallel: 2, workers: 1, cores: 2, runs }));
  mkdirSync(SHOTS, { recursive: true });
  if (!distFresh()) spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repoRoot, stdio: 'ignore' });
  if (!distFresh()) throw new Error('dist/ is missing or older than src/report: run `npx tsc -p tsconfig.json` first');
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}: the report's browser test needs it (apt-get install -y --no-install-recommends chromium; .ci/run does this)`);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  rmSync(work, { recursive: true, force: true });
});

interface ChartCheck {
  chart: string;
  run: string | null;
  width: number;
  height: number;
  title: string;
  marks: Record<string, number>;
  visibleMarkItems: number;
}

/** Opens the page; returns per-chart facts measured in the browser, console errors, and every request made. */
async function inspect(file: string, shot: string, sweepShot?: string) {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  const charts: ChartCheck[] = await page.$$eval('figure.chart', (figs) =>
    figs.map((fig) => {
      const svg = fig.querySelector('svg')!;
      const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
      const marks: Record<string, number> = {};
      let visible = 0;
      for (const g of Array.from(fig.querySelectorAll('g.role-mark'))) {
        const type = (Array.from(g.classList).find((c) => c.startsWith('mark-')) ?? 'mark-?').slice(5);
        const items = Array.from(g.children) as SVGGraphicsElement[];
        marks[type] = (marks[type] ?? 0) + items.length;
        for (const it of items) {
          const r = it.getBoundingClientRect();
          if (r.width > 0 || r.height > 0) visible++;
        }
      }
      const title = Array.from(fig.querySelectorAll('g.role-title text')).map((t) => t.textContent).join(' | ');
      return { chart: fig.getAttribute('data-chart')!, run: fig.getAttribute('data-run'), width: box.width, height: box.height, title, marks, visibleMarkItems: visible };
    }),
  );
  await page.screenshot({ path: shot, fullPage: true });
  if (sweepShot) await page.locator('section.sweep').screenshot({ path: sweepShot });
  await page.close();
  return { charts, errors, requests };
}

describe('report', () => {
  it('Pareto front keeps the non-dominated runs of each model', () => {
    const rows = [
      { model: 'a', compression: 10, testAccuracy: 0.99 },
      { model: 'a', compression: 20, testAccuracy: 0.985 },
      { model: 'a', compression: 15, testAccuracy: 0.98 }, // dominated by 20/0.985
      { model: 'a', compression: 30, testAccuracy: 0.97 },
      { model: 'b', compression: 5, testAccuracy: 0.9 },
    ];
    expect(paretoFront(rows).map((r) => `${r.model}${r.compression}`)).toEqual(['a10', 'a20', 'a30', 'b5']);
  });

  it('a run report: every chart is drawn in Chromium, names seed and backend, fetches nothing', async () => {
    const r = await report(runDir);
    expect(r.kind).toBe('run');
    expect(r.warnings).toEqual([]);
    expect(r.figures.map((f) => f.id)).toEqual(['training', 'density', 'convergence']);
    const html = readFileSync(r.out, 'utf8');
    expect(html).not.toMatch(/<script|<link|@import|url\(|src=|href="http/i);
    const shot = join(SHOTS, 'run-report.png');
    const { charts, errors, requests } = await inspect(r.out, shot);
    expect(errors).toEqual([]);
    expect(requests).toEqual([pathToFileURL(r.out).href]);
    expect(charts.map((c) => c.chart)).toEqual(['training', 'density', 'convergence']);
    const run = loadRun(runDir);
    const searches = run.events.filter((e) => e.type === 'search').length;
    for (const c of charts) {
      expect(c.width, c.chart).toBeGreaterThan(300);
      expect(c.height, c.chart).toBeGreaterThan(150);
      expect(c.visibleMarkItems, c.chart).toBeGreaterThan(0);
      expect(c.title, c.chart).toContain('seed 981118');
      expect(c.title, c.chart).toContain('backend cpu');
    }
    const [training, density, convergence] = charts as [ChartCheck, ChartCheck, ChartCheck];
    // Two line series groups (compression; batch + validation accuracy), a dashed rule per search in each panel.
    expect(training.marks.line).toBe(3);
    expect(training.marks.rule).toBeGreaterThanOrEqual(2 * searches);
    expect(density.marks.rect).toBe(4); // one bar per layer of lenet-5
    expect(density.marks.text).toBe(4);
    expect(convergence.marks.line).toBe(searches);
    expect(existsSync(shot)).toBe(true);
  });

  it('a sweep report: accuracy-vs-compression scatter with its Pareto front, the table, and each run', async () => {
    const out = join(work, 'sweep-report.html');
    const r = await report(sweepDir, { out });
    expect(r.kind).toBe('sweep');
    expect(r.warnings).toEqual([]);
    expect(r.out).toBe(out);
    const html = readFileSync(out, 'utf8');
    for (const id of sweepIds) expect(html).toContain(`<a href="#run-${id}">${id}</a>`);
    expect(html).toContain('<tr class="interrupted">');
    const shot = join(SHOTS, 'sweep-report.png');
    const { charts, errors, requests } = await inspect(out, shot, join(SHOTS, 'sweep-summary.png'));
    expect(errors).toEqual([]);
    expect(requests).toEqual([pathToFileURL(out).href]);
    const scatter = charts.find((c) => c.chart === 'scatter')!;
    expect(scatter).toBeDefined();
    // 11 finished runs drawn as filled points, plus rings around the front and a front line per model.
    const front = paretoFront(
      sweepIds
        .filter((id) => id !== 'lenet-5_s3_random')
        .map((id) => {
          const rep = JSON.parse(readFileSync(join(sweepDir, 'runs', id, 'report.json'), 'utf8'));
          return { model: rep.model as string, compression: rep.compression as number, testAccuracy: rep.testAccuracy as number };
        }),
    );
    expect(scatter.marks.symbol).toBe(11 + front.length);
    expect(scatter.marks.line).toBe(2);
    expect(scatter.title).toContain('seeds 1, 2, 3');
    expect(scatter.title).toContain('backend cpu');
    // Every run has its figures (the interrupted one has no density plot yet), each visibly drawn.
    expect(charts.filter((c) => c.chart === 'training').length).toBe(12);
    expect(charts.filter((c) => c.chart === 'density').length).toBe(11);
    expect(charts.filter((c) => c.chart === 'convergence').length).toBe(12);
    for (const c of charts) {
      expect(c.visibleMarkItems, `${c.chart} of ${c.run}`).toBeGreaterThan(0);
      expect(c.width * c.height, `${c.chart} of ${c.run}`).toBeGreaterThan(300 * 150);
      expect(c.title).toMatch(/seed/);
      expect(c.title).toMatch(/backend cpu/);
    }
    copyFileSync(out, join(SHOTS, 'sweep-report.html'));
  });

  it('CLI: prunus report writes the page; a folder that is not a run is a usage error (exit 2)', () => {
    const ok = cli(['report', runDir, '--json']);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    const j = JSON.parse(ok.stdout);
    expect(j.out).toBe(join(runDir, 'report.html'));
    expect(j.figures.map((f: { id: string }) => f.id)).toEqual(['training', 'density', 'convergence']);
    const bad = cli(['report', work]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe(`prunus: ${work} is neither a run directory (config.json) nor a sweep directory (sweep.json)\n`);
    expect(bad.stdout).toBe('');
    const badOut = cli(['report', runDir, '--out', join(work, 'x.png')]);
    expect(badOut.status).toBe(2);
    expect(badOut.stderr).toBe(`prunus: report: --out must name an .html file, got '${join(work, 'x.png')}'\n`);
    expect(existsSync(join(work, 'x.png'))).toBe(false);
  });
});
