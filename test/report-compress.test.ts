/**
 * `prunus report` on a compress run folder: a synthetic folder (config.json, search.json, report.json as
 * src/compress/run.ts and finish.ts write them) rendered by report(), the function the CLI calls, and the written page
 * read back; a folder without search.json (mode olmp); and damaged folders, which are one-line usage errors (exit 2).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../foundation/errors.js';
import { report } from '../src/report/index.js';
import { repoRoot, runCli } from './run-cli.js';

const work = mkdtempSync(join(tmpdir(), 'prunus-report-compress-'));
const DENSE_MACS = 2_293_000;
const PARAMS = 431_080;

/** One search candidate as search.json holds it (NaN sizes of rejected points are written as null). */
function point(keep: number[], nonZero: number | null, macs: number, accuracy: number | null, feasible: boolean, violation = 0) {
  return {
    keep,
    crates: [-0.5, 0.25, 1.5, -1],
    nonZero,
    compression: nonZero === null ? null : PARAMS / nonZero,
    macs,
    sparseMacs: nonZero === null ? null : Math.round(macs * 0.6),
    accuracy,
    result: { fitness: nonZero === null ? 1 : nonZero / PARAMS, feasible, violation },
  };
}

const POINTS = [
  point([10, 25, 250], 120_000, 900_000, 0.95, true), // 0: front
  point([6, 20, 200], 60_000, 600_000, 0.94, true), // 1: front
  point([5, 15, 150], 30_000, 400_000, 0.6, false, 0.33), // 2: front (fewest non-zeros)
  point([8, 22, 230], 45_000, 700_000, 0.945, true), // 3: front, chosen
  point([4, 10, 100], 20_000, 300_000, null, false, 0.5), // 4: stopped early
  point([20, 50, 500], null, DENSE_MACS, null, false, 1.5), // 5: rejected over the FLOPs budget
  point([9, 24, 240], 130_000, 950_000, 0.93, true), // 6: dominated by 0
];
const FRONT = [0, 1, 2, 3];
const CHOSEN = 3;

const GROUPS = [
  { name: 'conv1', channels: 20, kept: 8, keepRatio: 0.4 },
  { name: 'conv2', channels: 50, kept: 22, keepRatio: 0.44 },
  { name: 'ip1', channels: 500, kept: 230, keepRatio: 0.46 },
];
const LAYERS = [
  { name: 'conv1', params: 520, slimmedParams: 208, nonZero: 150, density: 150 / 520 },
  { name: 'conv2', params: 25_050, slimmedParams: 4_408, nonZero: 2_000, density: 2_000 / 25_050 },
  { name: 'ip1', params: 400_500, slimmedParams: 81_190, nonZero: 30_000, density: 30_000 / 400_500 },
  { name: 'ip2', params: 5_010, slimmedParams: 2_310, nonZero: 1_200, density: 1_200 / 5_010 },
];

/** Writes a finished compress run folder (mode joint: with search.json; mode olmp: without). */
function fakeCompressRun(dir: string, mode: 'joint' | 'olmp'): void {
  mkdirSync(dir, { recursive: true });
  const backend = { name: 'cpu', requested: 'auto', detail: 'tfjs cpu (test fixture)' };
  const seed = 7;
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({ command: 'compress', model: 'lenet-5', dataset: 'mnist', seed, backend, backendRequested: 'auto', versions: { prunus: '0.1.0', node: 'v20' }, options: { mode, method: 'di', quick: true, seed }, resultsRoot: work }),
  );
  if (mode !== 'olmp') {
    const outcome = { best: POINTS[CHOSEN], start: POINTS[0], points: POINTS, evaluations: 5, earlyExits: 1, rejectedOverBudget: 1, generations: 2, history: [], wallMs: 1234 };
    const settings = { objective: 'size', flopsBudget: 0.5, targetCompression: null, maxAccDrop: 0.02, baselineAccuracy: 0.955, searchCrates: true, seed };
    writeFileSync(join(dir, 'search.json'), JSON.stringify({ settings, baselineValidationAccuracy: 0.955, scores: 'method', outcome, pareto: FRONT }));
  }
  const nonZero = LAYERS.reduce((s, l) => s + l.nonZero, 0);
  writeFileSync(
    join(dir, 'report.json'),
    JSON.stringify({
      status: 'finished',
      command: 'compress',
      mode,
      model: 'lenet-5',
      dataset: 'mnist',
      method: 'di',
      objective: 'size',
      seed,
      backend,
      budgets: { maxAccDrop: 0.01, flopsBudget: 0.5, targetCompression: null, timeBudget: null },
      compression: PARAMS / nonZero,
      nonZero,
      params: PARAMS,
      macs: { dense: DENSE_MACS, slimmed: 700_000, sparse: 250_000, withinBudget: true },
      reachedTarget: null,
      // The drop budget is missed here, so that the page must say so.
      accuracy: { baseline: { validation: 0.955, test: 0.95 }, start: { validation: 0.94, test: 0.938 }, final: { validation: 0.94, test: 0.9395 }, withinDrop: false },
      layers: LAYERS,
      groups: mode === 'olmp' ? GROUPS.map((g) => ({ ...g, kept: g.channels, keepRatio: 1 })) : GROUPS,
      search: null,
      olmp: { dir: join(dir, 'olmp'), compression: 3.5, crates: [0.1, 0.2, 0.3, 0.4], searches: 2, evaluations: 80, iterations: 401, stoppedBy: 'iterations' },
      exported: { tfjs: { dir: join(dir, 'export/tfjs'), bytes: 123_456, gzipBytes: 45_678 }, sparse: { dir: join(dir, 'export/sparse'), bytes: 34_567, gzipBytes: 23_456 }, denseFloat32Bytes: 1_724_320 },
      inference: { images: 2000, tfjsImagesPerSec: 6000, sparseImagesPerSec: 11000, note: 'fixture' },
      wallTimeMs: 40_000,
      phasesMs: { baseline: 1000, search: 3000, finetune: 15000, olmp: 19000, finish: 2000 },
      versions: { prunus: '0.1.0', node: 'v20' },
      runDir: dir,
    }),
  );
}

/** The markup of one figure of the page (from its <figure> to its </figure>); fails when the page lacks it. */
function figure(html: string, id: string): string {
  const start = html.indexOf(`<figure class="chart" data-chart="${id}"`);
  expect(start, `figure ${id}`).toBeGreaterThanOrEqual(0);
  return html.slice(start, html.indexOf('</figure>', start));
}

/** Symbols drawn as data points (Vega marks them aria-roledescription="point"; legend symbols are not). */
const points = (svg: string) => svg.match(/aria-roledescription="point"/g)?.length ?? 0;

/** The CLI runs from dist/: rebuild it when it is older than the report sources. */
function ensureDist(): void {
  const sources = [join(repoRoot, 'src/commands/report.ts'), ...readdirSync(join(repoRoot, 'src/report')).map((f) => join(repoRoot, 'src/report', f))];
  const fresh = () =>
    sources.every((s) => {
      const out = join(repoRoot, 'dist', s.slice(repoRoot.length + 1).replace(/\.ts$/, '.js'));
      return existsSync(out) && statSync(out).mtimeMs >= statSync(s).mtimeMs;
    });
  if (!fresh()) spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repoRoot, stdio: 'ignore' });
  if (!fresh()) throw new Error('dist/ is missing or older than src/report: run `npm run build` first');
}

const joint = join(work, 'compress-joint');
const olmpOnly = join(work, 'compress-olmp');

beforeAll(() => {
  fakeCompressRun(joint, 'joint');
  fakeCompressRun(olmpOnly, 'olmp');
  ensureDist();
}, 120_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('report of a compress run', () => {
  it('draws the Pareto front with the chosen point, keep ratios, densities, exported sizes; names seed and backend', async () => {
    const r = await report(joint);
    expect(r.kind).toBe('compress');
    expect(r.warnings).toEqual([]);
    expect(r.out).toBe(join(joint, 'report.html'));
    expect(r.figures.map((f) => f.id)).toEqual(['footprint', 'pareto', 'pareto-accuracy', 'keep-ratios', 'layer-density']);
    const html = readFileSync(join(joint, 'report.html'), 'utf8');
    expect(html).toBe(r.html);
    // Nothing to fetch: the only url() are the colour legends' gradients, defined in the same SVG.
    expect(html).not.toMatch(/<script|<link|@import|url\((?!#gradient_)|src=|href="http/i);
    expect(html).toContain('<h1>prunus compress report — lenet-5, joint di, seed 7</h1>');
    expect(html).toContain('<dt>backend</dt><dd>cpu — tfjs cpu (test fixture)</dd>');
    expect(html).toContain('<dt>mode</dt><dd>joint</dd>');

    // Non-zeros × MACs: the six candidates with a known size (not the rejected #5), a ring per front point, the star.
    const pareto = figure(html, 'pareto');
    expect(pareto).toContain('<svg');
    for (const i of [0, 1, 2, 3, 4, 6]) expect(pareto).toContain(`candidate #: ${i};`);
    expect(pareto).not.toContain('candidate #: 5;');
    expect(points(pareto)).toBe(6 + FRONT.length + 1);
    expect(pareto).toMatch(new RegExp(`aria-label="[^"]*candidate #: ${CHOSEN};[^"]*"[^>]*stroke="#d62728"`));
    expect(pareto).toMatch(/>chosen<\/text>/);
    expect(pareto).toMatch(/>FLOPs budget 50%<\/text>/);
    expect(pareto).toContain('1 candidate over the FLOPs budget was rejected');
    // Accuracy × non-zeros: the five candidates that ran to the end, rings, star and the final model.
    const acc = figure(html, 'pareto-accuracy');
    expect(points(acc)).toBe(5 + FRONT.length + 1 + 1);
    expect(acc).not.toContain('candidate #: 4;');
    expect(acc).toMatch(/>search floor 93.50%<\/text>/);
    // The chosen candidate, named above the figures and marked in the front's table.
    expect(html).toContain(`data-chosen="${CHOSEN}"`);
    expect(html).toContain(`<tr class="chosen"><td>#${CHOSEN} ★</td><td>8/22/230</td>`);
    expect(html.match(/<tr(?: class="chosen")?><td>#\d+/g)?.length).toBe(FRONT.length);

    // Keep ratios and densities: figures and tables.
    expect(figure(html, 'keep-ratios')).toMatch(/>8 \/ 20<\/text>/);
    expect(html).toContain('<td>conv2</td><td class="num">50</td><td class="num">22</td><td class="num">44.0%</td>');
    const density = figure(html, 'layer-density');
    expect(density).toMatch(/>28\.8%<\/text>/); // conv1: 150 of 520 non-zero
    expect(density).toMatch(/>40\.0%<\/text>/); // conv1: 208 of 520 left after channel removal
    expect(html).toContain('<td>ip1</td><td class="num">400,500</td><td class="num">81,190</td><td class="num">30,000</td><td class="num">7.49%</td>');

    // Exported sizes (bytes and KiB, gzip, dense float32), in the table and the figure.
    for (const s of ['123,456', '120.6 KiB', '45,678', '34,567', '23,456', '1,724,320']) expect(html).toContain(s);
    expect(figure(html, 'footprint')).toMatch(/>1683\.9 KiB<\/text>/);
    // The budgets: FLOPs met, accuracy drop missed.
    expect(html).toMatch(/<td>FLOPs budget<\/td>.*<span class="met">met<\/span>/);
    expect(html).toMatch(/<td>max accuracy drop<\/td>.*<span class="not-met">NOT met<\/span>/);

    // Every figure names the seed and the backend.
    for (const f of r.figures) expect(figure(html, f.id), f.id).toContain('lenet-5 · joint di · seed 7 · backend cpu');
  });

  it('a run without search.json (mode olmp) has no Pareto section, and says why', async () => {
    const r = await report(olmpOnly);
    expect(r.kind).toBe('compress');
    expect(r.figures.map((f) => f.id)).toEqual(['footprint', 'layer-density']);
    const html = readFileSync(r.out, 'utf8');
    expect(html).not.toContain('data-chart="pareto');
    expect(html).toContain('No Pareto front: mode olmp runs no joint search');
    expect(figure(html, 'layer-density')).toContain('lenet-5 · olmp · seed 7 · backend cpu');
  });

  it('CLI: --json names the figures; a damaged compress folder is a one-line usage error (exit 2)', async () => {
    const ok = await runCli(['report', joint, '--json'], { cwd: work });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const j = JSON.parse(ok.stdout) as { out: string; kind: string; figures: { id: string }[] };
    expect(j.kind).toBe('compress');
    expect(j.out).toBe(join(joint, 'report.html'));
    expect(j.figures.map((f) => f.id)).toContain('pareto');

    // report.json missing: the run has not finished.
    const unfinished = join(work, 'unfinished');
    fakeCompressRun(unfinished, 'joint');
    rmSync(join(unfinished, 'report.json'));
    await expect(report(unfinished)).rejects.toThrow(UsageError);
    const r1 = await runCli(['report', unfinished], { cwd: work });
    expect(r1.code).toBe(2);
    expect(r1.stdout).toBe('');
    expect(r1.stderr).toBe(`prunus: report: ${unfinished} is a compress run that has not finished (no report.json); continue it with 'prunus resume ${unfinished}'\n`);
    expect(existsSync(join(unfinished, 'report.html'))).toBe(false);

    // A field missing from report.json, and a Pareto index past the candidates in search.json.
    const noMacs = join(work, 'no-macs');
    fakeCompressRun(noMacs, 'joint');
    const rep = JSON.parse(readFileSync(join(noMacs, 'report.json'), 'utf8'));
    delete rep.macs;
    writeFileSync(join(noMacs, 'report.json'), JSON.stringify(rep));
    const r2 = await runCli(['report', noMacs], { cwd: work });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toBe(`prunus: report: ${join(noMacs, 'report.json')}: 'macs.dense' is missing or not a number\n`);

    const badFront = join(work, 'bad-front');
    fakeCompressRun(badFront, 'joint');
    const s = JSON.parse(readFileSync(join(badFront, 'search.json'), 'utf8'));
    s.pareto = [0, 99];
    writeFileSync(join(badFront, 'search.json'), JSON.stringify(s));
    const r3 = await runCli(['report', badFront], { cwd: work });
    expect(r3.code).toBe(2);
    expect(r3.stderr).toBe(`prunus: report: ${join(badFront, 'search.json')}: 'pareto[1]' is not an index into outcome.points (7 points)\n`);
  });
});
