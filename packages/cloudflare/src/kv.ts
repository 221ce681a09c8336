import type { CachedVerification, CacheStore } from '@m2m-guard/core'
import { checkWaitUntil, keepAlive, type WaitUntil } from './background.js'
import { decodeEntry, encodeEntry, isLive, storedUntil } from './codec.js'
import { checkKey, checkNow, checkPrefix, DEFAULT_PREFIX } from './names.js'
import type { KVNamespaceLike } from './types.js'

/**
 * Options of `kvCacheStore`.
 *
 * @example
 * const options: KVCacheStoreOptions = { namespace: env.M2M_CACHE, prefix: 'orders-api' }
 */
export interface KVCacheStoreOptions {
  /** The KV namespace binding, e.g. `env.M2M_CACHE`. */
  namespace: KVNamespaceLike
  /** Namespace of every key (`{prefix}:{key}`). @defaultValue 'm2m-guard' */
  prefix?: string
  /**
   * Keeps writes alive past the response (the verifier does not await them, and workerd cancels a
   * request's unfinished I/O): pass `waitUntil` from `cloudflare:workers`. Without it a write
   * may be lost, which costs only a later upstream call.
   */
  waitUntil?: WaitUntil
  /** Injectable clock for tests. @defaultValue Date.now */
  now?: () => number
}

/**
 * A `CacheStore` on Workers KV, with all three methods asynchronous.
 *
 * @example
 * const store: KVCacheStore = kvCacheStore({ namespace: env.M2M_CACHE })
 */
export interface KVCacheStore extends CacheStore {
  get(key: string): Promise<CachedVerification | undefined>
  set(key: string, value: CachedVerification, ttlMs: number): Promise<void>
  delete(key: string): Promise<void>
}

/** KV refuses an `expirationTtl` under 60 seconds. */
const KV_MIN_TTL_SECONDS = 60

/**
 * Creates a shared cache tier on Workers KV: global, so every isolate in every colo reads what
 * any of them verified. Keys are `{prefix}:{key}` (the verifier's hashed key, never a token);
 * values are JSON holding the identity and the entry's `expiresAt`.
 *
 * KV cannot expire a key sooner than 60 s after writing it, while a verifier entry may live
 * only a few seconds (its `ttlMs`, or what is left of the token's life). So the key is written
 * with `expirationTtl = max(60, ⌈life⌉)` and the value carries `expiresAt`, which every read
 * checks: past it (or past the token's expiry) the value is a miss and is never returned, though
 * KV may still hold it. Such leftovers are not deleted on read: a delete is a KV write, and
 * writes are the scarce, billed operation; KV drops them by itself within the minute.
 *
 * Errors: a value that fails validation rejects with `CloudflareStoreError` (`invalid_value`);
 * KV's own failures (limits such as one write per key per second, outages) reject as KV throws
 * them. The verifier treats every rejection as a miss and reports a `store_error` event.
 *
 * @param options.namespace - the KV binding, e.g. `env.M2M_CACHE`.
 * @param [options.prefix='m2m-guard'] - key namespace; letters, digits and `:_.-`.
 * @param [options.waitUntil] - `waitUntil` from `cloudflare:workers`, so writes outlive the response.
 * @throws {TypeError} when an option is invalid (names the option).
 * @example
 * import { env, waitUntil } from 'cloudflare:workers'
 * import { createM2MVerifier } from '@m2m-guard/core'
 * import { kvCacheStore } from '@m2m-guard/cloudflare'
 *
 * // Module scope: one verifier per isolate, sharing hits with every isolate everywhere.
 * const verifier = createM2MVerifier({
 *   secretKey: env.CLERK_MACHINE_SECRET_KEY,
 *   cache: { ttlMs: 30_000, store: kvCacheStore({ namespace: env.M2M_CACHE, waitUntil }) },
 * })
 */
export function kvCacheStore(options: KVCacheStoreOptions): KVCacheStore {
  const who = 'kvCacheStore'
  const namespace = options?.namespace
  if (
    typeof namespace !== 'object' ||
    namespace === null ||
    typeof namespace.get !== 'function' ||
    typeof namespace.put !== 'function' ||
    typeof namespace.delete !== 'function'
  ) {
    throw new TypeError(
      `${who}: namespace must be a KV namespace binding (e.g. env.M2M_CACHE); check the binding name in wrangler.toml`,
    )
  }
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX, who)
  const waitUntil = checkWaitUntil(options.waitUntil, who)
  const now = checkNow(options.now, who)
  const storageKey = (key: string, where: string): string => `${prefix}:${checkKey(key, where)}`

  return {
    async get(key: string): Promise<CachedVerification | undefined> {
      const raw = await namespace.get(storageKey(key, 'KV get'), { type: 'text' })
      if (raw === null) return undefined
      const entry = decodeEntry(raw, 'KV')
      return isLive(entry, now()) ? entry : undefined
    },
    async set(key: string, value: CachedVerification, ttlMs: number): Promise<void> {
      const k = storageKey(key, 'KV set')
      const t = now()
      const until = storedUntil(value, ttlMs, t)
      // Nothing left to share (or a NaN TTL): storing would outlive the entry or the token.
      if (until === undefined) return
      const encoded = encodeEntry(
        { auth: value.auth, verifiedAt: value.verifiedAt, expiresAt: until },
        'KV',
      )
      const seconds = Math.max(KV_MIN_TTL_SECONDS, Math.ceil((until - t) / 1000))
      await keepAlive(namespace.put(k, encoded, { expirationTtl: seconds }), waitUntil)
    },
    async delete(key: string): Promise<void> {
      await keepAlive(namespace.delete(storageKey(key, 'KV delete')), waitUntil)
    },
  }
}
