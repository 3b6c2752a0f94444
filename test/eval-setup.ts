/**
 * What the evaluator tests share: the fixtures, the compiled worker (dist/, rebuilt when stale), a 2,000-image MNIST
 * validation subset and the released LeNet-300-100 reference as a context, random crate candidates.
 */
import { expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset, type ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import { magnitudeStats } from '../models/masks.js';
import { initBackend } from '../backends/backend.js';
import { loadReleasedModel, type ReleasedModel } from '../models/caffe/released.js';
import type { Candidate, Evaluation, EvaluationContext } from '../evaluators/index.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const fixtures = resolve(repoRoot, '../shared/fixtures/olmp-released');

/** Rebuilds dist/ when a source the worker loads is newer than its compiled file. */
export function ensureCompiled(): void {
  const stale = (): string[] => {
    const out: string[] = [];
    for (const dir of ['evaluators', 'models', 'models/ops', 'models/tfjs', 'foundation', 'foundation/data', 'backends', 'backends/kernels']) {
      for (const f of readdirSync(join(repoRoot, dir))) {
        if (!f.endsWith('.ts')) continue;
        const js = join(repoRoot, 'dist', dir, f.replace(/\.ts$/, '.js'));
        if (!existsSync(js) || statSync(js).mtimeMs < statSync(join(repoRoot, dir, f)).mtimeMs) out.push(join(dir, f));
      }
    }
    return out;
  };
  if (stale().length === 0) return;
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repoRoot, stdio: 'pipe' });
  } catch {
    // Type errors elsewhere in the tree still emit; what matters is the check below.
  }
  expect(stale()).toEqual([]);
}

export const crates = (...c: (number | null)[]): Candidate => ({ kind: 'crates', crates: c });
/** The fields that must not depend on worker count, order or path. */
export const core = (e: Evaluation) => [e.correct, e.evaluated, e.count, e.nonZero, e.macs, e.feasible, e.earlyExit, e.violation];

export interface EvalFixtures {
  data: { validation: ImageSet; test: ImageSet };
  ref300: ReleasedModel;
  ctx300: EvaluationContext;
  randomCands: Candidate[];
}

/** For a beforeAll: compiles the worker if stale, starts wasm, loads the data and the LeNet-300-100 context. */
export async function loadEvalFixtures(): Promise<EvalFixtures> {
  ensureCompiled();
  await initBackend('wasm');
  const ds = loadDataset('mnist', { limit: { validation: 2000 } });
  const data = { validation: ds.validation, test: ds.test };
  const ref300 = loadReleasedModel(fixtures, 'lenet300100-reference');
  const ctx300: EvaluationContext = { arch: ref300.arch, params: ref300.params, masks: ref300.masks, stats: ref300.params.layers.map((l) => magnitudeStats(l)), data: data.validation };
  const rng = new Rng('eval-test');
  const randomCands = Array.from({ length: 8 }, () => crates(...[0, 1, 2].map(() => (rng.uniform() < 0.2 ? null : 0.3 + 2.2 * rng.uniform()))));
  return { data, ref300, ctx300, randomCands };
}
