import type { CachedVerification, CacheStore } from '@m2m-guard/core'
import { checkWaitUntil, keepAlive, type WaitUntil } from './background.js'
import { decodeEntry, encodeEntry, isLive, storedUntil } from './codec.js'
import { CloudflareStoreError } from './errors.js'
import { checkKey, checkNow, checkPrefix, DEFAULT_PREFIX } from './names.js'
import type { CacheLike } from './types.js'

/**
 * Options of `workersCacheStore`.
 *
 * @example
 * const options: WorkersCacheStoreOptions = { cache: caches.open('m2m-guard'), prefix: 'orders-api' }
 */
export interface WorkersCacheStoreOptions {
  /** A Cache, or the promise `caches.open(name)` returns. @defaultValue caches.default */
  cache?: CacheLike | Promise<CacheLike>
  /** First path segment of every synthetic URL. @defaultValue 'm2m-guard' */
  prefix?: string
  /**
   * Origin of the synthetic URLs entries are stored under. It is never fetched; it only has to
   * be an `https:` origin no real response of yours is cached under.
   * @defaultValue 'https://m2m-guard.cache'
   */
  origin?: string
  /**
   * Keeps writes alive past the response (the verifier does not await them, and workerd cancels a
   * request's unfinished I/O, cutting a cached body short): pass `waitUntil` from
   * `cloudflare:workers`. Without it a write may be lost (or stored truncated, which reads back
   * as a miss), costing only a later upstream call.
   */
  waitUntil?: WaitUntil
  /** Injectable clock for tests. @defaultValue Date.now */
  now?: () => number
}

/**
 * A `CacheStore` on the Workers Cache API, with all three methods asynchronous.
 *
 * @example
 * const store: WorkersCacheStore = workersCacheStore()
 */
export interface WorkersCacheStore extends CacheStore {
  get(key: string): Promise<CachedVerification | undefined>
  set(key: string, value: CachedVerification, ttlMs: number): Promise<void>
  delete(key: string): Promise<void>
}

const DEFAULT_ORIGIN = 'https://m2m-guard.cache'

function defaultCache(who: string): CacheLike {
  const storage = (globalThis as { caches?: { default?: CacheLike } }).caches
  if (storage?.default === undefined) {
    throw new TypeError(
      `${who}: caches.default does not exist here (not on Cloudflare Workers?); pass options.cache`,
    )
  }
  return storage.default
}

function checkOrigin(origin: unknown, who: string): string {
  let url: URL | undefined
  try {
    url = typeof origin === 'string' ? new URL(origin) : undefined
  } catch {
    url = undefined
  }
  if (url === undefined || url.protocol !== 'https:' || url.origin !== origin) {
    throw new TypeError(
      `${who}: origin must be a bare https origin such as 'https://m2m-guard.cache'`,
    )
  }
  return url.origin
}

/**
 * Creates a shared cache tier on the Workers Cache API: free and fast, but local to one
 * Cloudflare data centre (colo). Isolates in the same colo share hits; other colos do not see
 * them and verify again (use `kvCacheStore` for a global tier). Entries are stored as responses
 * under synthetic GET URLs, `{origin}/{prefix}/{key}` (the verifier's hashed key, never a
 * token), with `Cache-Control: max-age` rounded up to whole seconds. Because of that rounding,
 * and because a cache may keep a response a little past its max-age, the body also carries the
 * entry's `expiresAt`, which every read checks: past it (or past the token's expiry) it is a miss.
 *
 * The Cache API does nothing on `*.workers.dev` and in the dashboard preview (every read is then
 * a miss, so the verifier simply goes upstream); deploy on a custom domain to use it.
 *
 * Errors: a value that fails validation rejects with `CloudflareStoreError` (`invalid_value`); the
 * Cache API's own failures reject as it throws them. The verifier treats every rejection as a
 * miss and reports a `store_error` event.
 *
 * @param [options.cache=caches.default] - a Cache, or `caches.open(name)`.
 * @param [options.prefix='m2m-guard'] - first path segment; letters, digits and `:_.-`.
 * @param [options.origin='https://m2m-guard.cache'] - origin of the synthetic URLs.
 * @param [options.waitUntil] - `waitUntil` from `cloudflare:workers`, so writes outlive the response.
 * @throws {TypeError} when an option is invalid, or no cache is given and `caches.default` does
 * not exist.
 * @example
 * import { env, waitUntil } from 'cloudflare:workers'
 * import { createM2MVerifier } from '@m2m-guard/core'
 * import { workersCacheStore } from '@m2m-guard/cloudflare'
 *
 * // Module scope: one verifier per isolate, sharing hits with every isolate of the colo.
 * const verifier = createM2MVerifier({
 *   secretKey: env.CLERK_MACHINE_SECRET_KEY,
 *   cache: { ttlMs: 30_000, store: workersCacheStore({ waitUntil }) },
 * })
 */
export function workersCacheStore(options: WorkersCacheStoreOptions = {}): WorkersCacheStore {
  const who = 'workersCacheStore'
  const given = options.cache
  if (
    given !== undefined &&
    (typeof given !== 'object' || given === null || !('then' in given || 'match' in given))
  ) {
    throw new TypeError(`${who}: cache must be a Cache (e.g. caches.default) or caches.open(name)`)
  }
  const cache: CacheLike | Promise<CacheLike> = given ?? defaultCache(who)
  const prefix = encodeURIComponent(checkPrefix(options.prefix ?? DEFAULT_PREFIX, who))
  const origin = checkOrigin(options.origin ?? DEFAULT_ORIGIN, who)
  const waitUntil = checkWaitUntil(options.waitUntil, who)
  const now = checkNow(options.now, who)
  const urlOf = (key: string, where: string): string =>
    `${origin}/${prefix}/${encodeURIComponent(checkKey(key, where))}`

  return {
    async get(key: string): Promise<CachedVerification | undefined> {
      const url = urlOf(key, 'Cache API get')
      const response = await (await cache).match(url)
      if (response === undefined) return undefined
      if (response.status !== 200) {
        // Never read a body we did not write; cancel it so the runtime can release it.
        await response.body?.cancel()
        throw new CloudflareStoreError(
          'invalid_value',
          `Cache API get: stored response has status ${response.status}; treated as a miss`,
        )
      }
      const entry = decodeEntry(await response.text(), 'Cache API')
      return isLive(entry, now()) ? entry : undefined
    },
    async set(key: string, value: CachedVerification, ttlMs: number): Promise<void> {
      const url = urlOf(key, 'Cache API set')
      const t = now()
      const until = storedUntil(value, ttlMs, t)
      // Nothing left to share (or a NaN TTL): storing would outlive the entry or the token.
      if (until === undefined) return
      const body = encodeEntry(
        { auth: value.auth, verifiedAt: value.verifiedAt, expiresAt: until },
        'Cache API',
      )
      const maxAge = Math.ceil((until - t) / 1000)
      const response = new Response(body, {
        headers: {
          'content-type': 'application/json',
          // Not `private`: the Workers cache is a shared cache and would not store it.
          'cache-control': `max-age=${maxAge}`,
        },
      })
      await keepAlive((async () => (await cache).put(url, response))(), waitUntil)
    },
    async delete(key: string): Promise<void> {
      const url = urlOf(key, 'Cache API delete')
      await keepAlive((async () => void (await (await cache).delete(url)))(), waitUntil)
    },
  }
}
