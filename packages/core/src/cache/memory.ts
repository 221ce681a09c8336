import { LRUCache } from 'lru-cache'
import type { CachedVerification, CacheStore, RevocationBus } from '../verifier/types.js'

/**
 * Options of {@link memoryCacheStore}.
 *
 * @example
 * memoryCacheStore({ maxEntries: 50_000 })
 */
export interface MemoryCacheStoreOptions {
  /** @defaultValue 10000 */
  maxEntries?: number
  /** Injectable clock for tests. @defaultValue Date.now */
  now?: () => number
}

interface StoredValue {
  value: CachedVerification
  until: number
}

/**
 * An in-process {@link CacheStore}: a bounded LRU whose entries die at `min(ttl, expiresAt)`.
 * Useful to share verified results between verifiers of one process (several apps, tests), and
 * as the reference for store implementations.
 *
 * @param [options.maxEntries=10000] upper bound of entries
 * @example
 * const store = memoryCacheStore()
 * const a = createM2MVerifier({ cache: { store } })
 * const b = createM2MVerifier({ cache: { store } }) // hits what `a` verified
 */
export function memoryCacheStore(options: MemoryCacheStoreOptions = {}): CacheStore & {
  readonly size: number
} {
  const now = options.now ?? Date.now
  const lru = new LRUCache<string, StoredValue>({ max: options.maxEntries ?? 10_000 })
  return {
    get(key) {
      const stored = lru.get(key)
      if (stored === undefined) return undefined
      // Expiry is checked against the injectable clock, not lru-cache's own timers, so that an
      // entry can never be served past its token's expiry whatever the clock does.
      if (now() >= stored.until || now() >= stored.value.expiresAt) {
        lru.delete(key)
        return undefined
      }
      return stored.value
    },
    set(key, value, ttlMs) {
      if (!(ttlMs > 0)) return
      lru.set(key, { value, until: Math.min(now() + ttlMs, value.expiresAt) })
    },
    delete(key) {
      lru.delete(key)
    },
    get size() {
      return lru.size
    },
  }
}

/**
 * An in-process {@link RevocationBus}: `publish` reaches every subscriber of the same bus
 * synchronously. Share one bus between verifiers of a process so `revoke()` on one evicts on all;
 * across processes use a networked bus (e.g. `redisRevocationBus()` from `@m2m-guard/redis`).
 *
 * @example
 * const bus = memoryRevocationBus()
 * const a = createM2MVerifier({ revocationBus: bus })
 * const b = createM2MVerifier({ revocationBus: bus })
 * await a.revoke('mt_…') // evicted from b's cache too
 */
export function memoryRevocationBus(): RevocationBus & { readonly listenerCount: number } {
  const listeners = new Set<(m2mTokenId: string) => void>()
  return {
    publish(m2mTokenId) {
      for (const listener of [...listeners]) {
        // One failing subscriber must not stop the others from evicting.
        try {
          listener(m2mTokenId)
        } catch {}
      }
    },
    subscribe(listener) {
      // Wrapped so the same function subscribed twice gets two independent subscriptions.
      const wrapped = (id: string): void => listener(id)
      listeners.add(wrapped)
      return () => {
        listeners.delete(wrapped)
      }
    },
    get listenerCount() {
      return listeners.size
    },
  }
}
