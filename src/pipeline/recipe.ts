/**
 * Named recipes: 'olmp' is the spec's pipeline as configured; 'prunus' is OLMP's with the levers that
 * docs/recipe.md measured to help (each one a search option of its own; the others it tried are off).
 */
import type { SearchOptions } from './run.js';

export const RECIPES = ['olmp', 'prunus'] as const;
export type Recipe = (typeof RECIPES)[number];

/** What --recipe prunus sets, each with the flag that overrides it. */
export const PRUNUS_RECIPE: { key: keyof SearchOptions; flag: string; value: unknown }[] = [
  { key: 'constraint', flag: 'constraint', value: 'batch' },
  { key: 'retrainLr', flag: 'retrain-lr', value: 'cosine' },
];

/** Applies --recipe prunus to options parsed from flags `v`: each setting unless its flag was given. */
export function applyRecipe(opts: SearchOptions, v: Record<string, unknown>): void {
  for (const { key, flag, value } of PRUNUS_RECIPE) if (v[flag] === undefined) (opts as unknown as Record<string, unknown>)[key] = value;
}
