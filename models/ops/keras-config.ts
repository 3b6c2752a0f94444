/** Reading Keras / tfjs-layers layer configs: the checks every op's fromKeras shares, each failing with one line. */
import { UsageError } from '../../foundation/errors.js';
import { ACTIVATIONS, type Activation, type Padding } from '../graph.js';

type Config = Record<string, unknown>;

/** A square size from an int or an [a, a] pair (kernel_size, strides, pool_size). */
export function squarePair(cfg: Config, key: string, label: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  const pair = Array.isArray(v) ? v : [v, v];
  const [a, b] = pair as unknown[];
  if (pair.length !== 2 || typeof a !== 'number' || typeof b !== 'number' || !Number.isInteger(a) || a < 1) {
    throw new UsageError(`${label}: ${key} ${JSON.stringify(v)} is not a positive integer or pair`);
  }
  if (a !== b) throw new UsageError(`${label}: ${key} ${a}x${b} is not supported (square only)`);
  return a;
}

export function readPadding(cfg: Config, label: string): Padding {
  const p = cfg.padding ?? 'valid';
  if (p !== 'valid' && p !== 'same') throw new UsageError(`${label}: padding '${String(p)}' is not supported (valid or same)`);
  return p;
}

export function channelsLast(cfg: Config, label: string): void {
  const f = cfg.data_format;
  if (f !== undefined && f !== null && f !== 'channels_last') throw new UsageError(`${label}: data_format '${String(f)}' is not supported (channels_last only)`);
}

export function noDilation(cfg: Config, label: string): void {
  const d = cfg.dilation_rate;
  if (d === undefined || d === null) return;
  const pair = Array.isArray(d) ? d : [d, d];
  if (pair.some((x) => x !== 1)) throw new UsageError(`${label}: dilation_rate ${JSON.stringify(d)} is not supported (1 only)`);
}

/**
 * An in-layer activation. `softmax` is accepted only where the importer has already moved an output softmax to
 * Architecture.outputActivation; anywhere else it is refused here.
 */
export function readActivation(cfg: Config, label: string, key = 'activation'): Activation {
  const a = cfg[key] ?? 'linear';
  if (typeof a === 'string' && (ACTIVATIONS as readonly string[]).includes(a)) return a as Activation;
  if (a === 'softmax') throw new UsageError(`${label}: softmax is supported only as the model's last activation`);
  throw new UsageError(`${label}: activation ${JSON.stringify(a)} is not supported (${ACTIVATIONS.join(', ')}; softmax at the output)`);
}

export function useBias(cfg: Config): boolean {
  return cfg.use_bias !== false;
}

/** A positive integer field. */
export function positiveInt(cfg: Config, key: string, label: string): number {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new UsageError(`${label}: ${key} ${JSON.stringify(v)} is not a positive integer`);
  return v;
}

/** The channel axis of a concat / batchnorm: -1, or the last axis of a rank-`rank` tensor (batch included). */
export function lastAxis(cfg: Config, key: string, rank: number, label: string): void {
  const raw = cfg[key] ?? -1;
  const a = Array.isArray(raw) && raw.length === 1 ? raw[0] : raw;
  if (a !== -1 && a !== rank - 1) throw new UsageError(`${label}: ${key} ${JSON.stringify(raw)} is not supported (the channel axis, -1, only)`);
}
