/**
 * numpy's legacy stream, draw for draw. Expected values: the MT19937 authors' published test vector (mt19937ar.out)
 * and numpy 2.4 `RandomState` outputs (`rs.seed([s]); rs.random_sample(...)`, `rs.standard_normal(...)`).
 */
import { describe, it, expect } from 'vitest';
import { NumpyRandomState } from '../foundation/mt19937.js';

describe('NumpyRandomState (MT19937 as numpy.random.RandomState)', () => {
  it("matches the MT19937 reference output for init_by_array({0x123, 0x234, 0x345, 0x456})", () => {
    const r = new NumpyRandomState([0x123, 0x234, 0x345, 0x456]);
    expect(r.state().key.slice(0, 3)).toEqual([2147483648, 1827812183, 1371430253]);
    expect([r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.uint32()]).toEqual([1067595299, 955945823, 477289528, 4107218783, 4228976476]);
  });

  it('random_sample and standard_normal match numpy for seed([961449]) and seed(981118)', () => {
    const r = new NumpyRandomState([961449]);
    expect([r.uniform(), r.uniform(), r.uniform()]).toEqual([0.2296929101379276, 0.19805882561328347, 0.07214911052605699]);
    expect([r.normal(), r.normal(), r.normal()]).toEqual([0.1282186722029117, 0.21349437686302197, -0.8663665102685233]);
    const s = new NumpyRandomState(981118);
    expect([s.uniform(), s.uniform()]).toEqual([0.1349835799356519, 0.9743244374522894]);
  });

  it('crosses the 624-word boundary like numpy, and a restored state continues bit-identically', () => {
    const r = new NumpyRandomState([981118]);
    let last = 0;
    for (let i = 0; i < 700; i++) last = r.uniform();
    expect(last).toBe(0.323874823558292);
    const first = r.normal();
    expect(first).toBe(-2.0513518099033177);
    const saved = JSON.parse(JSON.stringify(r.state()));
    const rest = [r.normal(), r.normal(), r.normal(), r.normal()];
    expect(rest).toEqual([0.4616595255175883, 0.7557080487798834, 1.767052953065269, -0.5029892688754891]);
    const again = NumpyRandomState.fromState(saved);
    expect([again.normal(), again.normal(), again.normal(), again.normal()]).toEqual(rest);
  });

  it('refuses seeds numpy refuses', () => {
    expect(() => new NumpyRandomState([-1])).toThrow(/\[0, 2\^32\)/);
    expect(() => new NumpyRandomState(2 ** 32)).toThrow(/\[0, 2\^32\)/);
    expect(() => new NumpyRandomState([1.5])).toThrow(/integers/);
  });
});
