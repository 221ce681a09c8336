import { createHmac } from 'node:crypto'
import { callObserver, type RevocationBus } from '@m2m-guard/core'
import { Cluster } from 'ioredis'
import { checkHmacKey, macMatches } from './codec.js'
import {
  type Connection,
  connectIfLazy,
  openConnection,
  quit,
  type RedisClient,
  type RedisConnectionOptions,
} from './connection.js'
import { RedisTierError } from './errors.js'
import { checkPrefix, DEFAULT_PREFIX, isTokenId } from './names.js'

/**
 * What the bus reports through `onEvent`. Token ids only; never a token, key or secret.
 *
 * @example
 * redisRevocationBus({ url, onEvent: (e) => e.type === 'bus_disconnected' && log.warn(e) })
 */
export type RedisBusEvent =
  /** Subscribed (first time or after a reconnect) and caught up with the record. */
  | { type: 'bus_subscribed'; replayed: number }
  /** The subscriber connection dropped; messages may be missed until `bus_subscribed`. */
  | { type: 'bus_disconnected' }
  /** Subscribing or reading the record failed; retried shortly, with backoff. */
  | { type: 'bus_resync_failed'; message: string }
  /** Revocations found in the record that pub/sub had not delivered (missed messages). */
  | { type: 'bus_replayed'; ids: string[] }
  /** `publish` could not reach Redis; the id is kept and published when Redis is back. */
  | { type: 'bus_publish_failed'; id: string; message: string; pending: number }
  /** Ids kept from failed publishes went out. */
  | { type: 'bus_pending_flushed'; ids: string[] }
  /**
   * With `hmacKey`: a revocation whose HMAC verifies under none of its secrets was ignored
   * (someone else writes to Redis, or an instance signs with a secret this one does not accept).
   */
  | { type: 'bus_unauthenticated'; source: 'message' | 'record' }

/**
 * Options of `redisRevocationBus`.
 *
 * @example
 * const options: RedisRevocationBusOptions = { url: process.env.REDIS_URL, retentionMs: 3_600_000 }
 */
export interface RedisRevocationBusOptions extends RedisConnectionOptions {
  /** Namespace of the revocation record; use the same one as the store. @defaultValue 'm2m-guard' */
  prefix?: string
  /** Pub/sub channel. @defaultValue `${prefix}:revocations` */
  channel?: string
  /**
   * How long a revocation stays in the Redis record and in each instance's memory. Must be at
   * least the longest cache `ttlMs` in the fleet; a linked store never keeps an entry longer.
   * @defaultValue 3600000 (1 hour)
   */
  retentionMs?: number
  /**
   * How often each instance reads the record even without a reconnect, a safety net for
   * messages lost without a visible disconnect (failover, half-open sockets). 0 turns it off.
   * @defaultValue 5000
   */
  resyncIntervalMs?: number
  /**
   * A secret (≥ 32 characters) every instance shares: revocations carry its HMAC, and ones
   * without it are ignored. Without it, whoever can publish to Redis can make every instance
   * reject a valid token (never accept an invalid one). The store's `hmacKey` may be the same.
   *
   * To rotate it, pass a non-empty array of secrets (each ≥ 32 characters): the first signs the
   * revocations this instance publishes, and a revocation (message or record entry) is accepted
   * when its HMAC verifies under any of them. A rolling rotation goes `[old, new]` everywhere,
   * then `[new, old]`, then `new`; see the README ("Rotating hmacKey"). Messages and record
   * entries are the same as with a single string.
   *
   * @example
   * // Rotation step 1 of 3, on every instance: the old secret still signs, the new one is
   * // accepted already. Step 2: [newSecret, oldSecret]. Step 3: newSecret.
   * redisRevocationBus({ url, hmacKey: [oldSecret, newSecret] })
   */
  hmacKey?: string | readonly string[]
  onEvent?: (event: RedisBusEvent) => void
  /** Injectable clock for tests. @defaultValue Date.now */
  now?: () => number
}

/**
 * A `RevocationBus` over Redis pub/sub, backed by a record (a Redis stream) that instances read
 * after every (re)subscribe, so a message missed during a disconnect is still honoured.
 *
 * @example
 * const bus = redisRevocationBus({ url: process.env.REDIS_URL })
 * const verifier = createM2MVerifier({ revocationBus: bus })
 */
export interface RedisRevocationBus extends RevocationBus {
  /**
   * Records the revocation in Redis, then publishes it. Local listeners hear it at once, even
   * when Redis is down; then the promise rejects with a `RedisTierError` and the id is published
   * when Redis is reachable again (within `retentionMs`).
   */
  publish(m2mTokenId: string): Promise<void>
  subscribe(listener: (m2mTokenId: string) => void): () => void
  /** Whether this instance has heard of this id's revocation within `retentionMs`. */
  isRevoked(m2mTokenId: string): boolean
  readonly retentionMs: number
  /** Resolves once subscribed and caught up with the record (first time). */
  ready(): Promise<void>
  /** Unsubscribes, stops timers, closes the connections the bus opened. */
  close(): Promise<void>
}

const PAGE = 500
const MAX_REMEMBERED = 100_000
const MESSAGE_VERSION = 1

/**
 * Creates a revocation bus shared by every instance that uses the same Redis and prefix.
 *
 * @param options.client - your ioredis client (shared, not closed by `close()`), or
 * @param options.url - a `redis://` URL the bus connects to itself.
 * @param [options.prefix='m2m-guard'] - namespace of the record; same as the store's.
 * @param [options.channel] - pub/sub channel, default `${prefix}:revocations`.
 * @param [options.retentionMs=3600000] - life of the record; ≥ the longest cache ttlMs.
 * @param [options.resyncIntervalMs=5000] - periodic catch-up read; 0 disables.
 * @param [options.hmacKey] - shared secret that authenticates revocations, or a list of them
 * while rotating (the first signs, any verifies).
 * @param [options.commandTimeoutMs=200] - deadline of one Redis command.
 * @throws {TypeError} when an option is invalid (names the option).
 * @example
 * import { createM2MVerifier } from '@m2m-guard/core'
 * import { redisCacheStore, redisRevocationBus } from '@m2m-guard/redis'
 *
 * const bus = redisRevocationBus({ url: 'redis://127.0.0.1:6379' })
 * const store = redisCacheStore({ url: 'redis://127.0.0.1:6379', revocationBus: bus })
 * const verifier = createM2MVerifier({ cache: { store }, revocationBus: bus })
 * await verifier.revoke('mt_…') // every instance drops it within ~100 ms
 */
export function redisRevocationBus(options: RedisRevocationBusOptions): RedisRevocationBus {
  const who = 'redisRevocationBus'
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX, who)
  const channel = options.channel ?? `${prefix}:revocations`
  if (!/^[\x21-\x7e]{1,256}$/.test(channel)) {
    throw new TypeError(`${who}: channel must be 1-256 printable characters without spaces`)
  }
  const retentionMs = options.retentionMs ?? 3_600_000
  if (!Number.isInteger(retentionMs) || retentionMs < 1_000) {
    throw new TypeError(`${who}: retentionMs must be an integer ≥ 1000 (≥ the longest cache ttlMs)`)
  }
  const resyncIntervalMs = options.resyncIntervalMs ?? 5_000
  if (!Number.isFinite(resyncIntervalMs) || resyncIntervalMs < 0) {
    throw new TypeError(`${who}: resyncIntervalMs must be ≥ 0 (0 disables)`)
  }
  const hmacKeys = checkHmacKey(options.hmacKey, who)
  /** Signs what this instance publishes; the other secrets only verify (a rotation in progress). */
  const hmacKey = hmacKeys?.[0]
  const now = options.now ?? Date.now
  const onEvent = options.onEvent
  const recordKey = `${prefix}:revoked`
  // Bound to the channel, so a revocation signed for one fleet is not accepted by another.
  const macUnder = (key: string, m2mTokenId: string): string =>
    createHmac('sha256', key).update(`${channel}\n${m2mTokenId}`).digest('base64url')
  const macOf = (m2mTokenId: string): string =>
    hmacKey === undefined ? '' : macUnder(hmacKey, m2mTokenId)
  const authentic = (m2mTokenId: string, mac: string | undefined): boolean => {
    if (hmacKeys === undefined) return true
    if (mac === undefined) return false
    return macMatches(hmacKeys, mac, (key) => macUnder(key, m2mTokenId))
  }

  const conn: Connection = openConnection(options, who)
  // Subscribing turns a connection into subscriber mode, so the bus always has its own.
  const sub: RedisClient =
    conn.client instanceof Cluster ? conn.client.duplicate() : conn.client.duplicate()
  sub.on('error', () => {})
  // With lazyConnect nothing would connect: the bus sends no command to a connection that is not
  // ready, and the subscriber (a duplicate, so lazy too) waits for its 'ready' to subscribe. The
  // subscriber is the bus's own; a client you passed is yours to connect.
  if (conn.owned) connectIfLazy(conn.client)
  connectIfLazy(sub)

  const listeners = new Set<(m2mTokenId: string) => void>()
  /** Token id → until when this instance treats it as revoked. */
  const revoked = new Map<string, number>()
  /**
   * Entries already handled, so pub/sub and the record do not emit an id twice. Keyed by stream
   * id and token id together: a message's stream id is not covered by the HMAC, so whoever can
   * publish could otherwise mark future stream ids as seen and have a real revocation dropped.
   */
  const seen = new Map<string, number>()
  /** Ids whose publish failed, kept until Redis is back or their retention ends. */
  const pending = new Map<string, number>()
  /**
   * Last stream id read from the record. Only the record advances it: pub/sub may deliver two
   * publishers' messages out of stream order, but a range read is a consistent snapshot.
   */
  let cursor: string | undefined
  let subscribed = false
  let closed = false
  let resyncing: Promise<void> | undefined
  let resyncAgain = false
  let subscribeGeneration = 0
  let announcedGeneration = 0
  let retryTimer: ReturnType<typeof setTimeout> | undefined
  let subscribeTimer: ReturnType<typeof setTimeout> | undefined
  let resolveReady: () => void = () => {}
  const readyPromise = new Promise<void>((resolve) => {
    resolveReady = resolve
  })

  // An observer's bug (a throw, or an async one that rejects) must not break revocation.
  const emit = (event: RedisBusEvent): void => callObserver(onEvent, event)

  const prune = (map: Map<string, number>, limit: number): void => {
    const t = now()
    for (const [key, until] of map) {
      // Maps keep insertion order and every entry gets the same retention, so the oldest come first.
      if (until > t && map.size <= limit) break
      map.delete(key)
    }
  }

  const remember = (m2mTokenId: string): void => {
    revoked.delete(m2mTokenId)
    revoked.set(m2mTokenId, now() + retentionMs)
    if (revoked.size > MAX_REMEMBERED || revoked.size % 1_000 === 0) prune(revoked, MAX_REMEMBERED)
  }

  const notify = (m2mTokenId: string): void => {
    // One failing listener (sync or async) must not keep the others from evicting.
    for (const listener of listeners) callObserver(listener, m2mTokenId)
  }

  /** Marks an entry handled; returns whether it was new. */
  const see = (streamId: string, m2mTokenId: string): boolean => {
    // Token ids have no spaces, so the pair cannot be forged from another split.
    const entry = `${streamId} ${m2mTokenId}`
    if (seen.has(entry)) return false
    seen.set(entry, now() + retentionMs)
    if (seen.size > MAX_REMEMBERED || seen.size % 1_000 === 0) prune(seen, MAX_REMEMBERED)
    return true
  }

  /** Returns whether the entry was new. */
  const handle = (streamId: string | undefined, m2mTokenId: string): boolean => {
    if (streamId !== undefined && !see(streamId, m2mTokenId)) return false
    remember(m2mTokenId)
    notify(m2mTokenId)
    return true
  }

  sub.on('message', (from: string, message: string) => {
    if (from !== channel) return
    const parsed = parseMessage(message)
    if (!parsed) return
    if (!authentic(parsed.m2mTokenId, parsed.mac)) {
      emit({ type: 'bus_unauthenticated', source: 'message' })
      return
    }
    handle(parsed.streamId, parsed.m2mTokenId)
  })

  const record = async (m2mTokenId: string): Promise<string> => {
    const streamId = await conn.run('publish', (c) =>
      hmacKey === undefined
        ? c.xadd(recordKey, '*', 'id', m2mTokenId)
        : c.xadd(recordKey, '*', 'id', m2mTokenId, 'mac', macOf(m2mTokenId)),
    )
    const addedAt = streamIdMs(streamId)
    if (typeof streamId !== 'string' || addedAt === undefined) {
      throw new RedisTierError('command_failed', 'Redis publish: XADD returned no entry id')
    }
    // Handled here, so this instance does not hear its own message again. see() also prunes,
    // which an instance that only publishes would otherwise never do.
    see(streamId, m2mTokenId)
    // MINID trims entries older than the retention, measured on Redis's clock (the new entry's
    // id): a publisher whose clock runs ahead must not trim what others still need to read.
    // PEXPIRE drops the whole record after a quiet period. Both keep the record bounded without
    // a cleanup job; sent together, they cost one round trip.
    const minId = String(Math.max(0, addedAt - retentionMs))
    await Promise.all([
      conn.run('publish', (c) => c.xtrim(recordKey, 'MINID', '~', minId)),
      conn.run('publish', (c) => c.pexpire(recordKey, retentionMs)),
    ])
    await conn.run('publish', (c) =>
      c.publish(
        channel,
        JSON.stringify({
          v: MESSAGE_VERSION,
          sid: streamId,
          id: m2mTokenId,
          ...(hmacKey === undefined ? {} : { mac: macOf(m2mTokenId) }),
        }),
      ),
    )
    return streamId
  }

  const flushPending = async (): Promise<void> => {
    if (pending.size === 0) return
    prune(pending, MAX_REMEMBERED)
    const flushed: string[] = []
    for (const m2mTokenId of [...pending.keys()]) {
      await record(m2mTokenId)
      pending.delete(m2mTokenId)
      flushed.push(m2mTokenId)
    }
    if (flushed.length > 0) emit({ type: 'bus_pending_flushed', ids: flushed })
  }

  const readRecord = async (): Promise<string[]> => {
    const replayed: string[] = []
    // First read: the whole retained window, so a new instance also knows recent revocations.
    // Stream ids are Redis's clock, so the window is too: a local clock ahead by the retention
    // would otherwise read nothing.
    let start: string
    if (cursor === undefined) {
      const [seconds, micros] = await conn.run('resync', (c) => c.time())
      const redisNow = Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000)
      if (!Number.isFinite(redisNow)) {
        throw new RedisTierError('command_failed', 'Redis resync: TIME returned no time')
      }
      start = String(Math.max(0, redisNow - retentionMs))
    } else {
      start = `(${cursor}`
    }
    for (;;) {
      const entries = await conn.run('resync', (c) =>
        c.xrange(recordKey, start, '+', 'COUNT', PAGE),
      )
      for (const [streamId, fields] of entries) {
        cursor = streamId
        const m2mTokenId = fieldValue(fields, 'id')
        if (!isTokenId(m2mTokenId)) continue
        if (!authentic(m2mTokenId, fieldValue(fields, 'mac'))) {
          emit({ type: 'bus_unauthenticated', source: 'record' })
          continue
        }
        if (handle(streamId, m2mTokenId)) replayed.push(m2mTokenId)
      }
      if (entries.length < PAGE || cursor === undefined) return replayed
      start = `(${cursor}`
    }
  }

  const runResync = async (): Promise<number> => {
    // What expired goes even on an instance that hears nothing new.
    prune(seen, MAX_REMEMBERED)
    prune(revoked, MAX_REMEMBERED)
    await flushPending()
    const replayed = await readRecord()
    if (replayed.length > 0) emit({ type: 'bus_replayed', ids: replayed })
    return replayed.length
  }

  // Backs off while Redis stays down, so an outage does not turn into a stream of retries.
  let retryDelayMs = 250
  const scheduleRetry = (): void => {
    if (closed || retryTimer) return
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      void resync()
    }, retryDelayMs)
    retryDelayMs = Math.min(retryDelayMs * 2, 5_000)
    retryTimer.unref?.()
  }

  /** One resync at a time; a request during one runs another after it (its snapshot is newer). */
  const resync = (): Promise<void> => {
    if (resyncing) {
      resyncAgain = true
      return resyncing
    }
    resyncing = (async () => {
      do {
        resyncAgain = false
        const generation = subscribeGeneration
        try {
          const replayed = await runResync()
          retryDelayMs = 250
          // Announce only a catch-up that started after the latest subscribe.
          if (generation > announcedGeneration) {
            announcedGeneration = generation
            emit({ type: 'bus_subscribed', replayed })
            resolveReady()
          }
        } catch (err) {
          if (closed) return
          emit({ type: 'bus_resync_failed', message: messageOf(err) })
          scheduleRetry()
          return
        }
      } while (resyncAgain && !closed)
    })().finally(() => {
      resyncing = undefined
    })
    return resyncing
  }

  // A SUBSCRIBE can fail while the connection stays up (its reply came after the command
  // timeout): no new 'ready' will come, so retry on a timer, backing off like resyncs.
  let subscribeDelayMs = 250
  const scheduleSubscribe = (): void => {
    if (closed || subscribeTimer) return
    subscribeTimer = setTimeout(() => {
      subscribeTimer = undefined
      if (!closed && !subscribed && sub.status === 'ready') void onSubReady()
    }, subscribeDelayMs)
    subscribeDelayMs = Math.min(subscribeDelayMs * 2, 5_000)
    subscribeTimer.unref?.()
  }
  const cancelSubscribeRetry = (): void => {
    if (subscribeTimer) clearTimeout(subscribeTimer)
    subscribeTimer = undefined
  }

  const onSubReady = async (): Promise<void> => {
    cancelSubscribeRetry()
    try {
      // Resolves only after Redis registered the subscription (replies are in order), so the
      // record read below cannot miss a revocation that pub/sub would not deliver either.
      await sub.subscribe(channel)
    } catch (err) {
      if (closed) return
      emit({ type: 'bus_resync_failed', message: messageOf(err) })
      // Connection down: its next 'ready' retries. Still up: nothing else would.
      if (sub.status === 'ready') scheduleSubscribe()
      return
    }
    if (closed) return
    subscribeDelayMs = 250
    subscribed = true
    subscribeGeneration += 1
    // A resync in flight may predate the subscription; the flag makes it run once more.
    resyncAgain = true
    await resync()
  }
  sub.on('ready', () => void onSubReady())
  sub.on('close', () => {
    cancelSubscribeRetry()
    if (subscribed && !closed) {
      subscribed = false
      emit({ type: 'bus_disconnected' })
    }
  })

  const interval =
    resyncIntervalMs > 0
      ? setInterval(() => {
          if (subscribed) void resync()
        }, resyncIntervalMs)
      : undefined
  interval?.unref?.()

  return {
    retentionMs,
    async publish(m2mTokenId: string): Promise<void> {
      if (!isTokenId(m2mTokenId)) {
        throw new TypeError('redisRevocationBus.publish: m2mTokenId must be a token id (mt_…)')
      }
      if (closed) throw new RedisTierError('closed', 'Redis publish: the bus was closed')
      // This instance evicts at once, whatever Redis does.
      handle(undefined, m2mTokenId)
      try {
        await record(m2mTokenId)
      } catch (err) {
        pending.delete(m2mTokenId)
        pending.set(m2mTokenId, now() + retentionMs)
        emit({
          type: 'bus_publish_failed',
          id: m2mTokenId,
          message: messageOf(err),
          pending: pending.size,
        })
        scheduleRetry()
        throw err instanceof RedisTierError
          ? err
          : new RedisTierError('command_failed', 'Redis publish failed', { cause: err })
      }
    },
    subscribe(listener: (m2mTokenId: string) => void): () => void {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    },
    isRevoked(m2mTokenId: string): boolean {
      const until = revoked.get(m2mTokenId)
      return until !== undefined && until > now()
    },
    ready(): Promise<void> {
      return readyPromise
    },
    async close(): Promise<void> {
      if (closed) return
      closed = true
      subscribed = false
      listeners.clear()
      if (interval) clearInterval(interval)
      if (retryTimer) clearTimeout(retryTimer)
      cancelSubscribeRetry()
      await resyncing?.catch(() => {})
      await Promise.all([quit(sub), conn.close()])
    },
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : 'unknown error'
}

/** The milliseconds part of a stream id (`<ms>-<seq>`), Redis's clock when it was added. */
function streamIdMs(streamId: string | null): number | undefined {
  const match = streamId === null ? null : /^(\d+)-\d+$/.exec(streamId)
  return match ? Number(match[1]) : undefined
}

function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === name) return fields[i + 1]
  }
  return undefined
}

/** @internal Parses a bus message; anything foreign is `undefined` (ignored). */
export function parseMessage(
  message: string,
): { streamId: string | undefined; m2mTokenId: string; mac?: string } | undefined {
  if (message.length > 1_024) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(message)
  } catch {
    return undefined
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined
  const { v, sid, id, mac } = parsed as Record<string, unknown>
  if (v !== MESSAGE_VERSION || !isTokenId(id)) return undefined
  const streamId = typeof sid === 'string' && /^\d+-\d+$/.test(sid) ? sid : undefined
  return typeof mac === 'string' ? { streamId, m2mTokenId: id, mac } : { streamId, m2mTokenId: id }
}
