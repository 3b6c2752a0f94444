/**
 * IDX file reader (the MNIST format): big-endian magic 0x00 0x00 <type> <ndims>, then ndims uint32 dimensions,
 * then the data. Element types: unsigned bytes (0x08) and big-endian float32 (0x0D). Raw or gzipped.
 * Every mismatch is a UsageError naming the file and the problem.
 */
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { UsageError } from '../errors.js';
import { typedFromBytes } from './bytes.js';

export interface IdxArray {
  dims: number[];
  /** Uint8Array for type 0x08, Float32Array (converted to host byte order) for type 0x0D. */
  data: Uint8Array | Float32Array;
}

const ELEMENT_BYTES: Record<number, number> = { 0x08: 1, 0x0d: 4 };

/** Parses an IDX buffer of unsigned bytes (type 0x08) or float32 (type 0x0D). `name` is used in error messages. */
export function parseIdx(buf: Uint8Array, name: string, expectDims?: number): IdxArray {
  if (buf.length < 4) throw new UsageError(`${name}: not an IDX file (only ${buf.length} bytes)`);
  if (buf[0] !== 0 || buf[1] !== 0) throw new UsageError(`${name}: not an IDX file (bad magic number)`);
  const type = buf[2]!;
  const itemBytes = ELEMENT_BYTES[type];
  if (itemBytes === undefined) {
    throw new UsageError(`${name}: unsupported IDX element type 0x${type.toString(16)} (expected unsigned bytes 0x08 or float32 0x0d)`);
  }
  const ndims = buf[3]!;
  if (ndims < 1 || ndims > 4) throw new UsageError(`${name}: bad IDX dimension count ${ndims}`);
  if (expectDims !== undefined && ndims !== expectDims) throw new UsageError(`${name}: expected ${expectDims} dimensions, file has ${ndims}`);
  const header = 4 + 4 * ndims;
  if (buf.length < header) throw new UsageError(`${name}: truncated IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== header + count * itemBytes) {
    throw new UsageError(`${name}: file length ${buf.length} does not match its header (dims ${dims.join('x')} need ${header + count * itemBytes} bytes)`);
  }
  if (type === 0x0d) {
    // IDX stores multi-byte elements big-endian.
    return { dims, data: typedFromBytes(buf.subarray(header), 'f4', false) as Float32Array };
  }
  // A plain Uint8Array view, not a Node Buffer (whose slice() is a view and whose constructor is deprecated).
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + header, count) };
}

/** Reads an IDX file, gunzipping when it is gzipped (by magic bytes, not by name). */
export function readIdx(path: string, expectDims?: number): IdxArray {
  if (!existsSync(path)) throw new UsageError(`missing data file ${path}`);
  let buf: Uint8Array = readFileSync(path);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch {
      throw new UsageError(`${path}: corrupt gzip data`);
    }
  }
  return parseIdx(buf, path, expectDims);
}
