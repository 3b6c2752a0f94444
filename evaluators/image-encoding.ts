/** The evaluation images in the sparse forms the JS kernels read, built once per images array (memoised). */

/**
 * The evaluation images in sparse form (per image: indices and values of the non-zero pixels), built once per
 * images array. A JS segment that reads the network input scatters these into an all-zero buffer instead of
 * copying and scanning every pixel.
 */
export interface ImageCsr {
  ptr: Int32Array;
  idx: Int32Array;
  val: Float64Array;
}
const csrMemo = new WeakMap<Float32Array, ImageCsr>();
export function imageCsr(images: Float32Array, count: number, per: number): ImageCsr {
  // Keyed by the images array: the evaluators hand the engine private copies that never change.
  let c = csrMemo.get(images);
  if (!c || c.ptr.length !== count + 1) {
    let nnz = 0;
    for (let i = 0; i < count * per; i++) if (images[i] !== 0) nnz++;
    const ptr = new Int32Array(count + 1);
    const idx = new Int32Array(nnz);
    const val = new Float64Array(nnz);
    let p = 0;
    for (let j = 0; j < count; j++) {
      ptr[j] = p;
      const off = j * per;
      for (let i = 0; i < per; i++) {
        const v = images[off + i]!;
        if (v !== 0) {
          idx[p] = i;
          val[p] = v;
          p++;
        }
      }
    }
    ptr[count] = p;
    c = { ptr, idx, val };
    csrMemo.set(images, c);
  }
  return c;
}

/**
 * The evaluation images pixel-major per batch of B (CSC): for batch k (images kB .. kB+B) and pixel i, the images
 * of the batch where pixel i is non-zero are img[p] (index within the batch, increasing) with value val[p], p in
 * ptr[k(per+1)+i] .. ptr[k(per+1)+i+1]. Built once per images array and batch size, from the image CSR.
 */
export interface ImageCsc {
  batch: number;
  count: number;
  ptr: Int32Array;
  img: Int32Array;
  val: Float64Array;
}
const cscMemo = new WeakMap<Float32Array, ImageCsc>();
export function imageCsc(images: Float32Array, count: number, per: number, B: number): ImageCsc {
  let c = cscMemo.get(images);
  if (!c || c.batch !== B || c.count !== count) {
    const r = imageCsr(images, count, per);
    const nb = Math.ceil(count / B);
    const ptr = new Int32Array(nb * (per + 1));
    const img = new Int32Array(r.idx.length);
    const val = new Float64Array(r.idx.length);
    const fill = new Int32Array(per);
    let p = 0;
    for (let k = 0; k < nb; k++) {
      const j0 = k * B;
      const j1 = Math.min(count, j0 + B);
      const base = k * (per + 1);
      fill.fill(0);
      for (let q = r.ptr[j0]!; q < r.ptr[j1]!; q++) fill[r.idx[q]!]!++;
      for (let i = 0; i < per; i++) {
        ptr[base + i] = p;
        const n = fill[i]!;
        fill[i] = p;
        p += n;
      }
      ptr[base + per] = p;
      for (let j = j0; j < j1; j++) {
        for (let q = r.ptr[j]!; q < r.ptr[j + 1]!; q++) {
          const at = fill[r.idx[q]!]!++;
          img[at] = j - j0;
          val[at] = r.val[q]!;
        }
      }
    }
    c = { batch: B, count, ptr, img, val };
    cscMemo.set(images, c);
  }
  return c;
}

/** Mean fraction of non-zero pixels of an image set (memoised per images array): picks the first conv kernel. */
const densityMemo = new WeakMap<Float32Array, number>();
export function imageDensity(images: Float32Array): number {
  let d = densityMemo.get(images);
  if (d === undefined) {
    let nz = 0;
    const n = Math.min(images.length, 784 * 2000);
    for (let i = 0; i < n; i++) if (images[i] !== 0) nz++;
    d = n > 0 ? nz / n : 1;
    densityMemo.set(images, d);
  }
  return d;
}
