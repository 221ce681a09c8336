import { type Cluster, Redis, type RedisOptions } from 'ioredis'
import { RedisTierError } from './errors.js'

/**
 * An ioredis connection: a standalone or Sentinel-managed `Redis`, or a `Cluster`.
 *
 * @example
 * const client: RedisClient = new Redis(process.env.REDIS_URL!)
 */
export type RedisClient = Redis | Cluster

/**
 * How the tier reaches Redis: your own ioredis `client`, or a `url` it connects to itself.
 *
 * @example
 * const options: RedisConnectionOptions = { url: 'redis://127.0.0.1:6379', commandTimeoutMs: 100 }
 */
export interface RedisConnectionOptions {
  /** Your ioredis client (`Redis` or `Cluster`). It is shared, never closed by the tier. */
  client?: RedisClient
  /** `redis://…` or `rediss://…`; the tier opens (and on `close()`, closes) its own connection. */
  url?: string
  /** Extra ioredis options for the connection opened from `url` (TLS, auth, Sentinel …). */
  redisOptions?: RedisOptions
  /**
   * Deadline of one Redis command. A slower Redis counts as a miss: the request goes upstream
   * instead of waiting. @defaultValue 200
   */
  commandTimeoutMs?: number
}

/** After a command timed out, commands fail at once for this long instead of each waiting out
 * its own deadline: a Redis that stopped answering must not add latency to every request. */
const COOLDOWN_AFTER_TIMEOUT_MS = 1_000

/** @internal A client plus the fail-fast command runner shared by the store and the bus. */
export interface Connection {
  readonly client: RedisClient
  readonly owned: boolean
  run<T>(operation: string, command: (client: RedisClient) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/**
 * The ioredis options the tier uses for connections it opens itself; use them for a client you
 * pass in, too. The point of each: a cache tier must fail fast and never queue. With the offline
 * queue on (ioredis's default), commands issued during an outage pile up in memory and all fire
 * at once on reconnect, long after their requests were answered.
 *
 * @param commandTimeoutMs - the tier's command deadline; ioredis's own is set a little above it.
 * @example
 * import { Redis } from 'ioredis'
 * const client = new Redis(process.env.REDIS_URL!, { ...ownedClientOptions(200), tls: {} })
 * const store = redisCacheStore({ client })
 */
export function ownedClientOptions(commandTimeoutMs: number): RedisOptions {
  return {
    enableOfflineQueue: false,
    // In-flight commands of a dropped connection fail at once instead of being resent later.
    maxRetriesPerRequest: 0,
    // A backstop behind the tier's own deadline (which fires first and starts the cool-down):
    // it releases the command inside ioredis once its answer can no longer be used.
    commandTimeout: commandTimeoutMs + 100,
    connectTimeout: 2_000,
    keepAlive: 10_000,
    // Reconnect forever with capped backoff, so the tier resumes without a restart.
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 6), 2_000),
    // Sentinel only (ignored otherwise): follow +switch-master at once. Without it a client stays
    // on the old master until Sentinel demotes it, about 10 s later, and what it writes there
    // (cache entries, revocation records) is lost and unseen by instances on the new master.
    failoverDetector: true,
  }
}

/** @internal Validates `{ client | url }` and builds the connection. */
export function openConnection(options: RedisConnectionOptions, who: string): Connection {
  const commandTimeoutMs = options.commandTimeoutMs ?? 200
  if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) {
    throw new TypeError(`${who}: commandTimeoutMs must be a positive number of ms`)
  }
  if (options.client && options.url) {
    throw new TypeError(`${who}: pass either client or url, not both`)
  }
  let client: RedisClient
  let owned = false
  if (options.client) {
    client = options.client
  } else if (typeof options.url === 'string' && options.url.length > 0) {
    if (!/^rediss?:\/\//.test(options.url)) {
      // The URL may hold a password: never echo it.
      throw new TypeError(`${who}: url must start with redis:// or rediss://`)
    }
    client = new Redis(options.url, {
      ...ownedClientOptions(commandTimeoutMs),
      ...options.redisOptions,
    })
    owned = true
    // Without a listener ioredis prints every connection error; outages surface through the
    // verifier's store_error events instead.
    client.on('error', () => {})
  } else {
    throw new TypeError(`${who}: pass an ioredis client or a redis:// url`)
  }

  let coolUntil = 0
  let closed = false

  return {
    client,
    owned,
    async run<T>(operation: string, command: (client: RedisClient) => Promise<T>): Promise<T> {
      if (closed) throw new RedisTierError('closed', `Redis ${operation}: the tier was closed`)
      // A client that is not ready would queue the command (user clients may keep the offline
      // queue on): answer "unavailable" now and let the request go upstream.
      if (client.status !== 'ready') {
        const status = client.status
        // Only a connection the tier opened: a client you pass is yours to connect (calling
        // connect() on it here would make your own `await client.connect()` fail).
        if (owned) connectIfLazy(client)
        throw new RedisTierError(
          'unavailable',
          `Redis ${operation}: connection is ${status}; treated as a miss`,
        )
      }
      if (Date.now() < coolUntil) {
        throw new RedisTierError(
          'unavailable',
          `Redis ${operation}: cooling down after a timeout; treated as a miss`,
        )
      }
      const pending = command(client)
      // The command may settle after the deadline; its late rejection must not go unhandled.
      pending.catch(() => {})
      let timer: ReturnType<typeof setTimeout> | undefined
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          coolUntil = Date.now() + COOLDOWN_AFTER_TIMEOUT_MS
          reject(
            new RedisTierError(
              'timeout',
              `Redis ${operation}: no answer within ${commandTimeoutMs} ms; treated as a miss`,
            ),
          )
        }, commandTimeoutMs)
      })
      try {
        return await Promise.race([pending, deadline])
      } catch (err) {
        if (err instanceof RedisTierError) throw err
        throw new RedisTierError('command_failed', `Redis ${operation} failed`, { cause: err })
      } finally {
        clearTimeout(timer)
      }
    },
    async close(): Promise<void> {
      if (closed) return
      closed = true
      if (owned) await quit(client)
    },
  }
}

/**
 * @internal Starts connecting a `lazyConnect` client, which otherwise waits for a first command
 * that the tier never sends to a client that is not ready. Failures surface as later misses.
 */
export function connectIfLazy(client: RedisClient): void {
  if (client.status === 'wait') client.connect().catch(() => {})
}

/** @internal Closes a connection the tier owns: QUIT when it can, else drop the socket. */
export async function quit(client: RedisClient): Promise<void> {
  if (client.status === 'ready') {
    try {
      await Promise.race([
        client.quit(),
        new Promise((resolve) => setTimeout(resolve, 500).unref?.()),
      ])
    } catch {
      // Already gone: disconnect below is enough.
    }
  }
  client.disconnect()
}
