import type { CachedVerification, CacheStore } from '@m2m-guard/core'
import type { RedisRevocationBus } from './bus.js'
import { checkHmacKey, decodeEntry, encodeEntry } from './codec.js'
import { type Connection, openConnection, type RedisConnectionOptions } from './connection.js'
import { RedisTierError } from './errors.js'
import { checkPrefix, DEFAULT_PREFIX, isTokenId, looksLikeRawToken } from './names.js'

/**
 * Options of `redisCacheStore`.
 *
 * @example
 * const options: RedisCacheStoreOptions = { url: process.env.REDIS_URL, prefix: 'orders-api' }
 */
export interface RedisCacheStoreOptions extends RedisConnectionOptions {
  /** Namespace of every key; use the same one as the bus. @defaultValue 'm2m-guard' */
  prefix?: string
  /**
   * The fleet's bus. Linked, the store never serves or writes an entry of an id the bus has
   * seen revoked, deletes that id's shared entries when the revocation arrives, and never keeps
   * an entry longer than the bus's `retentionMs`.
   */
  revocationBus?: RedisRevocationBus
  /** Values past this size are not shared, and stored values past it are a miss. @defaultValue 32768 */
  maxValueBytes?: number
  /**
   * A secret (≥ 32 characters) every instance shares: values carry an HMAC bound to their key,
   * so whoever can write to Redis still cannot plant an identity. Recommended when Redis is
   * reachable by anything but this fleet.
   *
   * To rotate it, pass a non-empty array of secrets (each ≥ 32 characters): the first signs
   * what this instance writes, and a value is accepted when its HMAC verifies under any of them.
   * A rolling rotation goes `[old, new]` everywhere, then `[new, old]`, then `new`; see the
   * README ("Rotating hmacKey"). The stored format is the same as with a single string.
   *
   * @example
   * // Rotation step 1 of 3, on every instance: the old secret still signs, the new one is
   * // accepted already. Step 2: [newSecret, oldSecret]. Step 3: newSecret.
   * redisCacheStore({ url, hmacKey: [oldSecret, newSecret] })
   */
  hmacKey?: string | readonly string[]
  /** Injectable clock for tests. @defaultValue Date.now */
  now?: () => number
}

/**
 * A `CacheStore` on Redis, with `close()` and a by-id delete.
 *
 * @example
 * const store: RedisCacheStore = redisCacheStore({ url: process.env.REDIS_URL })
 * await store.close()
 */
export interface RedisCacheStore extends CacheStore {
  get(key: string): Promise<CachedVerification | undefined>
  set(key: string, value: CachedVerification, ttlMs: number): Promise<void>
  delete(key: string): Promise<void>
  /** Deletes every shared entry of a token id; resolves to how many there were. */
  deleteById(m2mTokenId: string): Promise<number>
  /** Unlinks from the bus and closes the connection the store opened (never your client). */
  close(): Promise<void>
}

/**
 * Adds a member to a token id's index of value keys and stretches the index's life to cover the
 * longest-lived of them. One key per script, so it runs unchanged on Redis Cluster.
 */
const INDEX_SCRIPT = `
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1`

/**
 * Creates the shared second cache tier, behind each verifier's in-process LRU.
 *
 * Layout (every command touches one key, so keys spread over all Redis Cluster slots; no hash
 * tags are needed): `{prefix}:v:{key}` holds one verified identity with its expiry, with a PX
 * TTL that never outlives the entry, the token or the bus's retention; `{prefix}:id:{tokenId}`
 * is the set of value keys of that id, used to delete them all on revocation.
 *
 * Errors (Redis down or slow, a corrupted value) reject with a `RedisTierError`; the verifier
 * treats them as a miss, goes upstream and reports a `store_error` event.
 *
 * @param options.client - your ioredis client (shared, not closed by `close()`), or
 * @param options.url - a `redis://` URL the store connects to itself.
 * @param [options.prefix='m2m-guard'] - key namespace; same as the bus's.
 * @param [options.revocationBus] - the fleet's `redisRevocationBus`.
 * @param [options.maxValueBytes=32768] - bound of one value.
 * @param [options.hmacKey] - shared secret that authenticates values, or a list of them while
 * rotating (the first signs, any verifies).
 * @param [options.commandTimeoutMs=200] - deadline of one Redis command.
 * @throws {TypeError} when an option is invalid (names the option).
 * @example
 * import { createM2MVerifier } from '@m2m-guard/core'
 * import { redisCacheStore } from '@m2m-guard/redis'
 *
 * const store = redisCacheStore({ url: 'redis://127.0.0.1:6379', prefix: 'orders-api' })
 * const verifier = createM2MVerifier({ cache: { ttlMs: 30_000, store } })
 */
export function redisCacheStore(options: RedisCacheStoreOptions): RedisCacheStore {
  const who = 'redisCacheStore'
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX, who)
  const maxValueBytes = options.maxValueBytes ?? 32_768
  if (!Number.isInteger(maxValueBytes) || maxValueBytes < 256 || maxValueBytes > 1_048_576) {
    throw new TypeError(`${who}: maxValueBytes must be an integer from 256 to 1048576`)
  }
  const hmacKeys = checkHmacKey(options.hmacKey, who) ?? []
  const now = options.now ?? Date.now
  const bus = options.revocationBus
  // Another bus (core's memory bus) has no retentionMs: every write's TTL would be NaN and
  // silently skipped. Only a bus every instance shares through Redis makes sense here anyway.
  if (
    bus !== undefined &&
    (typeof bus.isRevoked !== 'function' ||
      typeof bus.subscribe !== 'function' ||
      !(typeof bus.retentionMs === 'number' && bus.retentionMs > 0))
  ) {
    throw new TypeError(
      `${who}: revocationBus must be a redisRevocationBus (isRevoked, subscribe and a positive retentionMs)`,
    )
  }
  const codec = { hmacKeys, maxValueBytes }
  const conn: Connection = openConnection(options, who)

  const valueKey = (key: string): string => {
    if (typeof key !== 'string' || key.length === 0 || key.length > 1_024) {
      throw new RedisTierError('invalid_value', 'Redis store: cache key must be 1-1024 characters')
    }
    if (looksLikeRawToken(key)) {
      // Keys are the verifier's hashes; a token here would sit readable in Redis.
      throw new RedisTierError(
        'invalid_value',
        'Redis store: refusing a key that holds a raw token',
      )
    }
    return `${prefix}:v:${key}`
  }
  const indexKey = (m2mTokenId: string): string => `${prefix}:id:${m2mTokenId}`

  const deleteById = async (m2mTokenId: string): Promise<number> => {
    const idx = indexKey(m2mTokenId)
    const members = await conn.run('delete', (c) => c.smembers(idx))
    // One key per command: on Cluster the values live on different slots.
    await Promise.all(members.map((member) => conn.run('delete', (c) => c.unlink(member))))
    await conn.run('delete', (c) => c.unlink(idx))
    return members.length
  }

  // Revocations are swept one at a time in the background: a new instance hears the whole
  // retained record at once, and a burst of commands must not crowd out request lookups.
  const sweep: string[] = []
  let sweeping = false
  let closed = false
  const drain = async (): Promise<void> => {
    if (sweeping) return
    sweeping = true
    try {
      for (let id = sweep.shift(); id !== undefined && !closed; id = sweep.shift()) {
        // Every linked instance does this; it is idempotent, and revocations are rare.
        await deleteById(id).catch(() => {
          // Redis down: entries expire by TTL, and get() refuses revoked ids meanwhile.
        })
      }
    } finally {
      sweeping = false
    }
  }
  const unsubscribe = bus?.subscribe((m2mTokenId) => {
    if (sweep.length < 100_000) sweep.push(m2mTokenId)
    void drain()
  })

  return {
    async get(key: string): Promise<CachedVerification | undefined> {
      const k = valueKey(key)
      const raw = await conn.run('get', (c) => c.get(k))
      if (raw === null) return undefined
      const entry = decodeEntry(key, raw, codec)
      const t = now()
      if (entry.expiresAt <= t) return undefined
      if (entry.auth.expiration !== null && entry.auth.expiration <= t) return undefined
      if (bus?.isRevoked(entry.auth.id)) return undefined
      return entry
    },
    async set(key: string, value: CachedVerification, ttlMs: number): Promise<void> {
      const k = valueKey(key)
      // A JWT without `jti` has no id: its value would not decode, and every such key would
      // pile into one index set `{prefix}:id:`. Not shared; the in-process cache still has it.
      if (!isTokenId(value.auth.id)) return
      if (bus?.isRevoked(value.auth.id)) return
      const t = now()
      const px = Math.floor(
        Math.min(
          ttlMs,
          value.expiresAt - t,
          value.auth.expiration === null ? Number.POSITIVE_INFINITY : value.auth.expiration - t,
          bus ? bus.retentionMs : Number.POSITIVE_INFINITY,
        ),
      )
      // Nothing left to share (or a NaN ttl): storing would outlive the entry or the token.
      if (!(px >= 1)) return
      const encoded = encodeEntry(
        key,
        { auth: value.auth, verifiedAt: value.verifiedAt, expiresAt: value.expiresAt },
        codec,
      )
      // Index first: a revocation that finds the value also finds it in the index.
      await conn.run('set', (c) => c.eval(INDEX_SCRIPT, 1, indexKey(value.auth.id), k, px))
      await conn.run('set', (c) => c.set(k, encoded, 'PX', px))
      // A revocation that arrived while we wrote may have swept the index before our SET.
      if (bus?.isRevoked(value.auth.id)) await conn.run('set', (c) => c.unlink(k))
    },
    async delete(key: string): Promise<void> {
      const k = valueKey(key)
      await conn.run('delete', (c) => c.unlink(k))
    },
    deleteById,
    async close(): Promise<void> {
      closed = true
      unsubscribe?.()
      await conn.close()
    },
  }
}
