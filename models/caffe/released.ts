/**
 * The released OLMP LeNet fixtures (../shared/fixtures/olmp-released, see its README) as prunus models, through the
 * one Caffe importer (manifest.ts): for the evaluator benchmark and tests. Compressed models carry their masks;
 * reference models get all-ones masks.
 */
import { join } from 'node:path';
import type { Architecture } from '../graph.js';
import type { LayerMasks, ModelParams } from '../params.js';
import { importCaffeManifest } from './manifest.js';

export const RELEASED_FOLDERS = ['lenet300100-reference', 'lenet300100-compressed', 'lenet5-reference', 'lenet5-compressed'] as const;
export type ReleasedFolder = (typeof RELEASED_FOLDERS)[number];

export interface ReleasedModel {
  arch: Architecture;
  params: ModelParams;
  masks: LayerMasks[];
  /** Figures the fixture's manifest records (correct test images, non-zeros...). */
  verified: Record<string, unknown>;
}

export function defaultFixturesDir(repoRoot: string): string {
  return join(repoRoot, '..', 'shared', 'fixtures', 'olmp-released');
}

/** Loads one released model folder (e.g. lenet5-compressed) from the fixtures directory. */
export function loadReleasedModel(fixturesDir: string, folder: ReleasedFolder): ReleasedModel {
  const imported = importCaffeManifest(join(fixturesDir, folder), folder.startsWith('lenet5') ? 'lenet-5' : 'lenet-300-100');
  const { arch, params, masks } = imported.model;
  return { arch, params, masks, verified: (imported.meta.manifestVerified ?? {}) as Record<string, unknown> };
}
