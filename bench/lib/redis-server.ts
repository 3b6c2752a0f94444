/**
 * A real redis-server for the queue tests and the queue benchmark: on 127.0.0.1, a free port, a temporary data folder with the append-only
 * file on (fsync at every write, so a SIGKILL loses nothing), stopped when the test is done. It can be killed and
 * started again on the same port and data, as a machine's Redis restarting.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  url: string;
  port: number;
  /** SIGKILL, then wait for the port to close. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data folder. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

function answers(port: number): Promise<boolean> {
  return new Promise((res) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      res(true);
    });
    c.once('error', () => res(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startRedis(opts: { password?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'prunus-redis-'));
  let proc: ChildProcess | null = null;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--loglevel', 'warning'];
  if (opts.password) args.push('--requirepass', opts.password);
  const start = async () => {
    const p = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const failed = new Promise<never>((_, rej) => {
      p.once('error', (e) => rej(new Error(`redis-server could not be started (${e.message}); install Debian's redis-server`)));
      p.once('exit', (code) => rej(new Error(`redis-server exited with ${code}: ${err}`)));
    });
    failed.catch(() => undefined);
    for (let i = 0; i < 100; i++) {
      if (await Promise.race([answers(port), failed])) return;
      await sleep(50);
    }
    throw new Error(`redis-server did not answer on port ${port}`);
  };
  const kill = async () => {
    const p = proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    while (await answers(port)) await sleep(20);
  };
  await start();
  return {
    url: opts.password ? `redis://:${opts.password}@127.0.0.1:${port}` : `redis://127.0.0.1:${port}`,
    port,
    kill,
    start,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
