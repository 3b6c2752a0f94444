/**
 * Named recipes: 'olmp' is the spec's pipeline as configured; 'prunus' adds the retraining levers that
 * docs/recipe.md measured (each one a search option of its own).
 */
import type { SearchOptions } from './run.js';

export const RECIPES = ['olmp', 'prunus'] as const;
export type Recipe = (typeof RECIPES)[number];

/** What --recipe prunus sets, each with the flag that overrides it. */
export const PRUNUS_RECIPE: { key: keyof SearchOptions; flag: string; value: unknown }[] = [
  { key: 'constraint', flag: 'constraint', value: 'batch' },
  { key: 'finalSearch', flag: 'final-search', value: true },
  { key: 'retrainLr', flag: 'retrain-lr', value: 'cosine' },
  { key: 'distillAlpha', flag: 'distill', value: 0.5 },
];

/** Applies --recipe prunus to options parsed from flags `v`: each setting unless its flag was given. */
export function applyRecipe(opts: SearchOptions, v: Record<string, unknown>): void {
  for (const { key, flag, value } of PRUNUS_RECIPE) if (v[flag] === undefined) (opts as unknown as Record<string, unknown>)[key] = value;
}
