import { BaseOptimizer } from './base.js';
import type { EvalResult, InitKind, RandomAlgoState, RandomState, ResolvedOptions } from './types.js';

/**
 * Random search: batches of popSize points uniform in the bounds (one uniform per dimension, in order), the
 * last batch cut to what is left of the budget. With x0 but no f0 the first ask() is [x0]; with x0 and f0 the
 * best starts as x0. Best is by compareResults (feasibility-first).
 */
export class RandomSearch extends BaseOptimizer<'random', RandomAlgoState> {
  private a: RandomAlgoState;

  constructor(o: ResolvedOptions, state?: RandomState) {
    super('random', o, state);
    if (state) {
      this.a = structuredClone(state.algo);
      return;
    }
    const init: InitKind = o.x0 ? (o.f0 ? 'given' : 'x0') : 'uniform';
    this.a = { phase: init === 'x0' ? 'init' : 'search', init };
    if (init === 'given') this.offerBest(o.x0!, o.f0!);
  }

  protected propose(): number[][] {
    if (this.a.phase === 'init') return [this.o.x0!.slice()];
    const k = Math.min(this.o.popSize, this.o.budget - this.evals);
    return Array.from({ length: k }, () => this.uniformPoint());
  }

  protected absorb(xs: number[][], rs: EvalResult[]): void {
    xs.forEach((x, i) => this.offerBest(x, rs[i]!));
    this.a.phase = 'search';
  }

  protected isDone(): boolean {
    return this.evals >= this.o.budget;
  }

  protected algoState(): RandomAlgoState {
    return this.a;
  }
}
