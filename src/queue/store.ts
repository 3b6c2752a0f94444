/**
 * What the queue keeps in Redis besides BullMQ's jobs: the sweeps, and for each run its owner lease, its latest
 * checkpointed state and, once finished, its result files.
 *
 *   prunus:sweeps                      set of sweep names
 *   prunus:sweep:<name>                the resolved sweep (JSON): spec, runs with ids and flags
 *   prunus:run:<sweep>/<id>:lease      the run's owner (JSON: worker, host, pid, since, a random token), with a TTL
 *   prunus:run:<sweep>/<id>:state      hash file path → bytes: config.json, events.jsonl, checkpoint.json and the
 *                                      pointer's checkpoint folder, replaced as a whole at each checkpoint
 *   prunus:run:<sweep>/<id>:result     hash file path → bytes: the finished run folder (report, events, model/)
 *   prunus:run:<sweep>/<id>:attempts   list of JSON attempt records (who ran it, from which checkpoint, how it ended)
 *
 * Checkpoints live in Redis itself rather than in a shared folder: a LeNet checkpoint is a few MB, every worker that
 * can take a job can already reach Redis, and a write of the state and the check of the lease are one atomic script,
 * so a worker that lost its lease (its job was handed over after a stall) can never overwrite the new owner's state.
 */
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

const SWEEPS = 'prunus:sweeps';
export const sweepKey = (name: string) => `prunus:sweep:${name}`;
const runKey = (run: string, part: 'lease' | 'state' | 'result' | 'attempts') => `prunus:run:${run}:${part}`;

/** Replaces a hash with the given fields, only while KEYS[1] holds ARGV[1]; KEYS[3], when given, is deleted too. */
const FENCED_REPLACE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
if #KEYS > 2 then redis.call('DEL', KEYS[3]) end
return 1`;
/**
 * Extends the lease while it is ours (1). A lease that expired while nobody took it (Redis was away for longer than
 * its lifetime) is taken back (2), unless the run has finished meanwhile; one that another worker holds is lost (0).
 */
const RENEW = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if v == false and redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const FENCED_PUSH = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end redis.call('RPUSH', KEYS[2], ARGV[2]) return 1`;

export interface RunHolder {
  worker: string;
  host: string;
  pid: number;
  since: string;
  token: string;
}

export type RunFiles = Map<string, Buffer>;

export interface AttemptRecord {
  n: number;
  worker: string;
  action: 'search' | 'resume';
  /** The checkpoint it started from (resume), e.g. checkpoints/ck-000003. */
  from?: string;
  startedAt: string;
  endedAt?: string;
  result?: 'finished' | 'failed' | 'interrupted' | 'lost';
  error?: string;
}

export function describeHolder(h: Pick<RunHolder, 'worker' | 'since'>): string {
  return `${h.worker} since ${h.since}`;
}

export class RunStore {
  constructor(private readonly redis: Redis) {}

  /** Takes the run's lease, or says who holds it and for how much longer. */
  async acquire(run: string, worker: string, ttlMs: number): Promise<{ ok: true; token: string; holder: RunHolder } | { ok: false; holder: string; ttlMs: number }> {
    const holder: RunHolder = { worker, host: hostname(), pid: process.pid, since: new Date().toISOString(), token: randomUUID() };
    const value = JSON.stringify(holder);
    const set = await this.redis.set(runKey(run, 'lease'), value, 'PX', ttlMs, 'NX');
    if (set === 'OK') return { ok: true, token: value, holder };
    const [current, pttl] = await Promise.all([this.redis.get(runKey(run, 'lease')), this.redis.pttl(runKey(run, 'lease'))]);
    let who = 'another worker';
    try {
      who = describeHolder(JSON.parse(current ?? '') as RunHolder);
    } catch {
      // a lease that expired between the two calls: try again later
    }
    return { ok: false, holder: who, ttlMs: Math.max(pttl, 0) };
  }

  /** Extends the lease (taking it back if it expired untaken); false when another worker holds it or the run finished. */
  async renew(run: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.eval(RENEW, 2, runKey(run, 'lease'), runKey(run, 'result'), token, String(ttlMs))) !== 0;
  }

  async release(run: string, token: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, runKey(run, 'lease'), token);
  }

  /** Replaces the run's checkpointed state while the lease is ours; false when it is not (nothing written). */
  async putState(run: string, token: string, files: RunFiles): Promise<boolean> {
    return (await this.redis.eval(FENCED_REPLACE, 2, runKey(run, 'lease'), runKey(run, 'state'), token, ...flatten(files))) === 1;
  }

  async getState(run: string): Promise<RunFiles> {
    return toFiles(await this.redis.hgetallBuffer(runKey(run, 'state')));
  }

  /** Stores the finished run's files and drops its checkpointed state, while the lease is ours. */
  async putResult(run: string, token: string, files: RunFiles): Promise<boolean> {
    return (await this.redis.eval(FENCED_REPLACE, 3, runKey(run, 'lease'), runKey(run, 'result'), runKey(run, 'state'), token, ...flatten(files))) === 1;
  }

  async getResult(run: string): Promise<RunFiles | null> {
    const files = toFiles(await this.redis.hgetallBuffer(runKey(run, 'result')));
    return files.size > 0 ? files : null;
  }

  async finished(run: string): Promise<boolean> {
    return (await this.redis.exists(runKey(run, 'result'))) === 1;
  }

  /** Appends an attempt record while the lease is ours. */
  async addAttempt(run: string, token: string, a: AttemptRecord): Promise<boolean> {
    return (await this.redis.eval(FENCED_PUSH, 2, runKey(run, 'lease'), runKey(run, 'attempts'), token, JSON.stringify(a))) === 1;
  }

  /** Replaces the last attempt record (its end), while the lease is ours. */
  async endAttempt(run: string, token: string, a: AttemptRecord): Promise<boolean> {
    const script = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end redis.call('LSET', KEYS[2], -1, ARGV[2]) return 1`;
    return (await this.redis.eval(script, 2, runKey(run, 'lease'), runKey(run, 'attempts'), token, JSON.stringify(a))) === 1;
  }

  async attempts(run: string): Promise<AttemptRecord[]> {
    return (await this.redis.lrange(runKey(run, 'attempts'), 0, -1)).flatMap((l) => {
      try {
        return [JSON.parse(l) as AttemptRecord];
      } catch {
        return [];
      }
    });
  }

  async saveSweep(name: string, record: unknown): Promise<void> {
    await this.redis.multi().set(sweepKey(name), JSON.stringify(record)).sadd(SWEEPS, name).exec();
  }

  async loadSweep<T>(name: string): Promise<T | null> {
    const text = await this.redis.get(sweepKey(name));
    return text === null ? null : (JSON.parse(text) as T);
  }

  async sweepNames(): Promise<string[]> {
    return (await this.redis.smembers(SWEEPS)).sort();
  }
}

/** The run key of a sweep's run (also its BullMQ job id). */
export const runName = (sweep: string, id: string) => `${sweep}/${id}`;

function flatten(files: RunFiles): (string | Buffer)[] {
  return [...files].flatMap(([k, v]) => [k, v]);
}

function toFiles(h: Record<string, Buffer>): RunFiles {
  return new Map(Object.entries(h).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
