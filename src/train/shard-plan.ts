/**
 * How a sharded training step is cut up, as pure functions: which images form each shard (fixed by the batch and the
 * shard count alone), which shards each thread computes, and where each trainable array sits in the flat buffers
 * that carry weights to the threads and gradients back.
 */

/** Half-open image ranges [start, end) of K shards of a batch of n: the first n mod K shards get one image more. */
export function shardRanges(n: number, shards: number): [number, number][] {
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`shards must be an integer >= 1, got ${shards}`);
  const base = Math.floor(n / shards);
  const extra = n % shards;
  const out: [number, number][] = [];
  let start = 0;
  for (let k = 0; k < shards; k++) {
    const size = base + (k < extra ? 1 : 0);
    out.push([start, start + size]);
    start += size;
  }
  return out;
}

/** The shards [lo, hi) thread t of `threads` computes: a contiguous block, thread 0 (the main thread) first. */
export function threadBlock(t: number, threads: number, shards: number): [number, number] {
  return [Math.floor((t * shards) / threads), Math.floor(((t + 1) * shards) / threads)];
}

/** Offsets of arrays laid end to end in one flat buffer. */
export interface FlatLayout {
  offsets: number[];
  sizes: number[];
  total: number;
}

export function flatLayout(sizes: readonly number[]): FlatLayout {
  const offsets: number[] = [];
  let total = 0;
  for (const s of sizes) {
    offsets.push(total);
    total += s;
  }
  return { offsets, sizes: sizes.slice(), total };
}

/**
 * The fixed reduction tree over K shards: node [lo, hi) is the sum of its halves [lo, mid) and [mid, hi), mid =
 * ⌊(lo + hi) / 2⌋, in float32. Every thread sums the largest nodes that lie inside its block of shards; the main
 * thread adds the rest. Each node is left + right whoever computes it, so the total has the same bits for any number
 * of threads (a float32 sum computed in float64 and rounded once equals the float32 sum: double rounding is
 * innocuous for addition at 53 ≥ 2·24 + 2 bits).
 */
export interface TreeNode {
  lo: number;
  hi: number;
}

const mid = (n: TreeNode): number => (n.lo + n.hi) >> 1;

/** The largest tree nodes covering [a, b) exactly, left to right. */
export function treeCover(a: number, b: number, shards: number): TreeNode[] {
  const out: TreeNode[] = [];
  const visit = (n: TreeNode): void => {
    if (n.hi <= a || b <= n.lo) return;
    if (a <= n.lo && n.hi <= b) {
      out.push(n);
      return;
    }
    visit({ lo: n.lo, hi: mid(n) });
    visit({ lo: mid(n), hi: n.hi });
  };
  visit({ lo: 0, hi: shards });
  return out;
}

/**
 * Sums a node from its parts: `leaf(node)` gives a value for nodes computed elsewhere (null: no images there),
 * `add` combines two. Returns null when the node holds no images.
 */
export function reduceTree<T>(node: TreeNode, known: (n: TreeNode) => T | null | undefined, add: (l: T, r: T) => T): T | null {
  const k = known(node);
  if (k !== undefined) return k;
  if (node.hi - node.lo <= 1) throw new Error(`reduceTree: shard ${node.lo} has no value`);
  const l = reduceTree({ lo: node.lo, hi: mid(node) }, known, add);
  const r = reduceTree({ lo: mid(node), hi: node.hi }, known, add);
  return l === null ? r : r === null ? l : add(l, r);
}

/** l + r elementwise into a new float32 array. */
export function addF32(l: Float32Array, r: Float32Array): Float32Array {
  const out = new Float32Array(l.length);
  for (let i = 0; i < l.length; i++) out[i] = l[i]! + r[i]!;
  return out;
}
