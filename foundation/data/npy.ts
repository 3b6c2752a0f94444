/**
 * NPY reader (NumPy's array file format): the magic "\x93NUMPY", a major and minor version byte, a little-endian
 * header length (2 bytes in version 1, 4 bytes in versions 2 and 3), and a Python dict literal such as
 * {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), } padded with spaces; then the raw data in
 * C order. Only little-endian (or byte-sized) numeric dtypes in C order are read; everything else is refused
 * with a one-line UsageError naming the file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { ELEMENT_SIZE, isFloatKind, typedFromBytes, type ElementKind, type NumericArray } from './bytes.js';

/** An array read from a data file, with the name (file, or archive[entry]) used in error messages. */
export interface RawArray {
  name: string;
  shape: number[];
  data: NumericArray;
  /** True for float dtypes (their values are checked for NaN/Inf by the loaders). */
  float: boolean;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/** The dtype descriptors that are read, and the element kind each stands for. */
const DESCRS: Record<string, ElementKind> = {
  '|u1': 'u1',
  '<u1': 'u1',
  '|i1': 'i1',
  '<u2': 'u2',
  '<i2': 'i2',
  '<i4': 'i4',
  '<i8': 'i8',
  '<u4': 'u4',
  '<f4': 'f4',
  '<f8': 'f8',
};

/** Parses the header dict's three keys; `name` is used in error messages. */
function parseHeader(text: string, name: string): { kind: ElementKind; shape: number[] } {
  const descr = /['"]descr['"]\s*:\s*(['"])(.*?)\1/.exec(text)?.[2];
  if (descr === undefined) throw new UsageError(`${name}: unsupported NPY dtype (not a plain numeric dtype; structured arrays are not read)`);
  const kind = DESCRS[descr];
  if (kind === undefined) {
    if (descr.startsWith('>')) throw new UsageError(`${name}: big-endian dtype '${descr}' is not supported (save it little-endian, e.g. with arr.astype('<${descr.slice(1)}'))`);
    throw new UsageError(`${name}: unsupported dtype '${descr}' (supported: ${Object.keys(DESCRS).join(' ')})`);
  }
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text)?.[1];
  if (fortran === undefined) throw new UsageError(`${name}: NPY header has no fortran_order`);
  if (fortran === 'True') throw new UsageError(`${name}: fortran_order arrays are not supported (save it in C order, e.g. np.ascontiguousarray)`);
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (shapeText === undefined) throw new UsageError(`${name}: NPY header has no shape`);
  const parts = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const shape = parts.map((p) => {
    // Python 2 wrote long integers with an L suffix.
    if (!/^\d+L?$/.test(p)) throw new UsageError(`${name}: bad NPY shape (${shapeText})`);
    return Number.parseInt(p, 10);
  });
  return { kind, shape };
}

/** Parses an NPY buffer; `name` (the file, or archive[entry]) is used in error messages. */
export function parseNpy(buf: Uint8Array, name: string): RawArray {
  if (buf.length < 10 || MAGIC.some((b, i) => buf[i] !== b)) throw new UsageError(`${name}: not an NPY file (bad magic)`);
  const major = buf[6]!;
  if (major < 1 || major > 3) throw new UsageError(`${name}: unsupported NPY format version ${major}.${buf[7]}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (buf.length < 8 + lenBytes) throw new UsageError(`${name}: truncated NPY header`);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lenBytes + headerLen;
  if (buf.length < dataStart) throw new UsageError(`${name}: truncated NPY header (needs ${dataStart} bytes, file has ${buf.length})`);
  // Versions 1 and 2 store the header in latin-1, version 3 in UTF-8; the keys and values read here are ASCII.
  const text = Buffer.from(buf.buffer, buf.byteOffset + 8 + lenBytes, headerLen).toString(major === 3 ? 'utf8' : 'latin1');
  const { kind, shape } = parseHeader(text, name);
  const count = shape.reduce((a, b) => a * b, 1);
  const need = count * ELEMENT_SIZE[kind];
  const have = buf.length - dataStart;
  if (have < need) throw new UsageError(`${name}: truncated data (shape ${describeShape(shape)} needs ${need} bytes, file has ${have})`);
  if (have > need) throw new UsageError(`${name}: ${have - need} bytes after the data of shape ${describeShape(shape)}`);
  return { name, shape, data: typedFromBytes(buf.subarray(dataStart), kind, true), float: isFloatKind(kind) };
}

/** Reads an NPY file. */
export function readNpy(path: string): RawArray {
  if (!existsSync(path)) throw new UsageError(`missing data file ${path}`);
  return parseNpy(readFileSync(path), path);
}

/** A shape as rows x cols x ...; a scalar's empty shape reads as 'scalar'. */
export function describeShape(shape: readonly number[]): string {
  return shape.length === 0 ? 'scalar' : shape.join('x');
}
