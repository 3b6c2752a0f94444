/**
 * Redis connections of the queue: the URL a user gives (`redis://[user:pass@]host:port[/db]`, `rediss://` for TLS),
 * a probe that turns "cannot reach it" and "wrong password" into one line (exit 2), and the long-lived connections
 * BullMQ and the run store use (they reconnect on their own when Redis restarts).
 */
import { Redis, type RedisOptions } from 'ioredis';
import { UsageError } from '../../foundation/errors.js';

export interface QueueAddress {
  /** The URL as given, with the password replaced by `***` (for messages and records). */
  display: string;
  options: RedisOptions;
}

/** Parses a queue URL into ioredis options; a malformed URL is a one-line UsageError. */
export function parseQueueUrl(url: string): QueueAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`--queue ${url}: not a URL (expected redis://[user:password@]host:port[/db] or rediss://...)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new UsageError(`--queue ${url}: the scheme must be redis:// or rediss://, got ${u.protocol}//`);
  if (!u.hostname) throw new UsageError(`--queue ${url}: no host`);
  const port = u.port === '' ? 6379 : Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--queue ${url}: bad port '${u.port}'`);
  const dbText = u.pathname.replace(/^\/+/, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) throw new UsageError(`--queue ${url}: the path must be a database number, got '/${dbText}'`);
  if (u.search || u.hash) throw new UsageError(`--queue ${url}: unexpected query or fragment`);
  const options: RedisOptions = { host: u.hostname.replace(/^\[|\]$/g, ''), port, db: dbText === '' ? 0 : Number(dbText) };
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') options.tls = { servername: u.hostname };
  const shown = new URL(u.href);
  if (shown.password) shown.password = '***';
  return { display: shown.href.replace(/\/$/, ''), options };
}

/** The one line for a connection failure, or null when the error says nothing we can name. */
function describeConnectError(address: QueueAddress, e: unknown): string {
  const err = e as NodeJS.ErrnoException & { message?: string };
  const msg = String(err?.message ?? e);
  const code = err?.code ?? /\b(E[A-Z]+)\b/.exec(msg)?.[1];
  const at = `Redis at ${address.display}`;
  if (/WRONGPASS|invalid username-password|invalid password/i.test(msg)) return `${at} refused the user name or password`;
  if (/NOAUTH|Authentication required/i.test(msg)) return `${at} needs a password (redis://:PASSWORD@host:port)`;
  if (code === 'ECONNREFUSED') return `cannot reach ${at}: connection refused (is redis-server running?)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot reach ${at}: host not found`;
  if (code === 'ETIMEDOUT' || /timed? ?out/i.test(msg)) return `cannot reach ${at}: no answer in time`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `cannot reach ${at}: no route to the host`;
  return `cannot use ${at}: ${msg.split('\n')[0]}`;
}

/**
 * Connects once, without retries, and checks that Redis answers (and accepts the password). Throws a one-line
 * UsageError otherwise. The connection is closed again.
 */
export async function probeRedis(address: QueueAddress, timeoutMs = 5000): Promise<void> {
  const client = new Redis({
    ...address.options,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
    reconnectOnError: () => false,
  });
  // The first error event says why (refused, not found, wrong password); the promises below only say "closed".
  let first: unknown = null;
  client.on('error', (e: unknown) => (first ??= e));
  try {
    await client.connect();
    const pong = await client.ping();
    if (pong !== 'PONG') throw new Error(`unexpected answer to PING: ${pong}`);
  } catch (e) {
    throw new UsageError(describeConnectError(address, first ?? e));
  } finally {
    client.disconnect();
  }
}

/**
 * A long-lived connection: it reconnects by itself (Redis restarted, the network gone for a while), and commands wait
 * for it meanwhile, as BullMQ requires (`maxRetriesPerRequest: null`). `onState` hears 'lost' and 'back' once each.
 */
export function openRedis(address: QueueAddress, onState?: (state: 'lost' | 'back', detail: string) => void): Redis {
  const client = new Redis({ ...address.options, maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(200 * n, 2000) });
  let lost = false;
  client.on('error', (e: Error) => {
    if (!lost) {
      lost = true;
      onState?.('lost', e.message.split('\n')[0]!);
    }
  });
  client.on('ready', () => {
    if (lost) {
      lost = false;
      onState?.('back', address.display);
    }
  });
  return client;
}
