/**
 * The search schedule without data (src/pipeline/schedule.ts). With numpy's stream and olmp-released it must be the
 * released scripts' schedule that spec olmp.md §5 lists for the published seeds.
 */
import { describe, it, expect } from 'vitest';
import { resolveConfig } from '../src/pipeline/run.js';
import { searchSchedule, generationRequests } from '../src/pipeline/schedule.js';
import { lenet300100 } from '../models/architectures.js';
import { initParams, onesMasks, type LayerMasks } from '../models/params.js';
import { magnitudeStats, masksForCrates } from '../models/masks.js';
import { Rng } from '../foundation/rng.js';

const asReleased = { rng: 'numpy' as const, optimizer: 'olmp-released' as const, constraint: 'batch' as const };
const named = (s: { iteration: number; layers: number[] }[], names: string[]) => s.map((e) => `${e.iteration}:${e.layers.map((k) => names[k]).join(',')}`);

describe('searchSchedule', () => {
  it('LeNet-300-100, seed 961449, numpy stream, olmp-released: the released scripts\' schedule (spec §5)', () => {
    const s = searchSchedule(resolveConfig({ model: 'lenet-300-100', ...asReleased }));
    expect(named(s, ['ip1', 'ip2', 'ip3'])).toEqual([
      '0:ip1,ip2,ip3',
      '1000:ip1,ip2,ip3',
      '2000:ip1,ip3',
      '4000:ip1,ip3',
      '5000:ip1,ip3',
      '6000:ip1,ip3',
      '8000:ip2,ip3',
      '9000:ip2,ip3',
      '13000:ip1,ip3',
    ]);
  });

  it('LeNet-5, seed 981118, numpy stream, olmp-released: the released scripts\' schedule (spec §5)', () => {
    const s = searchSchedule(resolveConfig({ model: 'lenet-5', ...asReleased }));
    const all = 'conv1,conv2,ip1,ip2';
    expect(named(s, ['conv1', 'conv2', 'ip1', 'ip2'])).toEqual([
      `0:${all}`,
      `1000:${all}`,
      `2000:${all}`,
      `3000:${all}`,
      '4000:conv1,conv2,ip1',
      '5000:conv1,conv2',
      `6000:${all}`,
      '7000:conv1,conv2',
      '8000:conv1,conv2',
      '9000:conv1,conv2',
      '10000:conv1,conv2,ip1',
      '11000:conv1,conv2',
      '12000:conv1,ip1',
      '13000:conv1,ip1',
    ]);
  });

  it("prunus's own stream gives another schedule for the same seed", () => {
    const s = searchSchedule(resolveConfig({ model: 'lenet-300-100', optimizer: 'olmp-released', constraint: 'batch' }));
    expect(named(s, ['ip1', 'ip2', 'ip3'])).not.toEqual(named(searchSchedule(resolveConfig({ model: 'lenet-300-100', ...asReleased })), ['ip1', 'ip2', 'ip3']));
    expect(s.length).toBeGreaterThan(3);
  });

  it('rejects an unknown stream and a seed numpy cannot take', () => {
    expect(() => resolveConfig({ model: 'lenet-5', rng: 'mersenne' as never })).toThrow(/unknown --rng 'mersenne'/);
    expect(() => resolveConfig({ model: 'lenet-5', rng: 'numpy', seed: 2 ** 32 })).toThrow(/--seed/);
  });
});

describe('generationRequests (how a generation\'s candidates get their masks)', () => {
  const arch = lenet300100();
  const params = initParams(arch, new Rng('gen-requests'));
  const stats = params.layers.map((l) => magnitudeStats(l));
  const start = onesMasks(arch);
  // A high crate, then a low one: with hysteresis the second only restores weights above 1.1·T, so its masks depend
  // on the state it is updated from.
  const crates = [
    [1.5, 1.5, 1.5],
    [0.5, 0.5, 0.5],
  ];
  const nonZero = (m: LayerMasks[]) => m.reduce((s, l) => s + l.weight.reduce((a, b) => a + b, 0) + l.bias.reduce((a, b) => a + b, 0), 0);

  it('stateless: crates requests, the state stays the start state', () => {
    const g = generationRequests('stateless', params.layers, start, stats, crates);
    expect(g.requests).toEqual(crates.map((c) => ({ kind: 'crates', crates: c })));
    expect(g.state).toBe(start);
  });

  it('stateful: each candidate updated from the previous one, the state moves on; differs from stateless under hysteresis', () => {
    const g = generationRequests('stateful', params.layers, start, stats, crates);
    const first = masksForCrates(params.layers, start, stats, crates[0]!);
    const second = masksForCrates(params.layers, first, stats, crates[1]!);
    expect(g.requests).toEqual([
      { kind: 'masks', masks: first },
      { kind: 'masks', masks: second },
    ]);
    expect(g.state).toEqual(second);
    const fromStart = masksForCrates(params.layers, start, stats, crates[1]!);
    expect(nonZero(second)).toBeLessThan(nonZero(fromStart));
    // The start state is not modified.
    expect(nonZero(start)).toBe(266610);
  });
});
