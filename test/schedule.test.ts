/**
 * The search schedule without data (src/pipeline/schedule.ts). With numpy's stream and olmp-released it must be the
 * released scripts' schedule that spec olmp.md §5 lists for the published seeds.
 */
import { describe, it, expect } from 'vitest';
import { resolveConfig } from '../src/pipeline/run.js';
import { searchSchedule } from '../src/pipeline/schedule.js';

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
