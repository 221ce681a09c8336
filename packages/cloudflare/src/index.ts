/**
 * `@m2m-guard/cloudflare`: m2m-guard's shared cache tier for Cloudflare Workers, which cannot
 * open a Redis socket. Two `CacheStore`s: `kvCacheStore()` over Workers KV (global, eventually
 * consistent) and `workersCacheStore()` over the Cache API (per colo, free).
 *
 * @example
 * import { createM2MVerifier } from '@m2m-guard/core'
 * import { kvCacheStore } from '@m2m-guard/cloudflare'
 *
 * const verifier = createM2MVerifier({ cache: { store: kvCacheStore({ namespace: env.M2M_CACHE }) } })
 */

export type { WaitUntil } from './background.js'
export {
  type WorkersCacheStore,
  type WorkersCacheStoreOptions,
  workersCacheStore,
} from './cache.js'
export { CloudflareStoreError, type CloudflareStoreErrorCode } from './errors.js'
export { type KVCacheStore, type KVCacheStoreOptions, kvCacheStore } from './kv.js'
export type { CacheLike, KVNamespaceLike, ResponseLike } from './types.js'
