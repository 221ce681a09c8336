/** Token ids and verified identities the Redis tests store, publish and compare. */
import type { CachedVerification, CacheStore, M2MAuth } from '@m2m-guard/core'

/**
 * A well-formed token id, distinct per `n`.
 *
 * @example
 * tokenId(1) // 'mt_00000000000000000000000000000001'
 */
export const tokenId = (n: number): string => `mt_${n.toString(16).padStart(32, '0')}`

/**
 * A verified identity for `m2mTokenId`, valid for an hour; `overrides` replace any field.
 *
 * @example
 * authOf(tokenId(1), { claims: { job: 'nightly' } })
 */
export function authOf(m2mTokenId: string, overrides: Partial<M2MAuth> = {}): M2MAuth {
  return {
    tokenType: 'm2m_token',
    format: 'opaque',
    id: m2mTokenId,
    subject: 'mch_caller',
    scopes: [],
    claims: null,
    expiration: Date.now() + 3_600_000,
    ...overrides,
  }
}

/**
 * A cached verification of `m2mTokenId` whose entry lives 30 s.
 *
 * @example
 * await store.set(key, cachedOf(tokenId(1)), 30_000)
 */
export function cachedOf(m2mTokenId: string): CachedVerification {
  const now = Date.now()
  return { auth: authOf(m2mTokenId), verifiedAt: now, expiresAt: now + 30_000 }
}

/**
 * `inner` with its writes tracked: `written()` resolves once the writes the verifier started have
 * landed (or failed), so another instance can then read them. The verifier writes a few
 * microtasks after answering, in the background.
 *
 * @example
 * const { store, written } = trackWrites(redisCacheStore({ url }))
 * await verifier.verify(token)
 * await written()
 */
export function trackWrites(inner: CacheStore): { store: CacheStore; written(): Promise<void> } {
  const writes = new Set<Promise<void>>()
  return {
    store: {
      get: (key) => inner.get(key),
      set: (key, value, ttl) => {
        const write = Promise.resolve(inner.set(key, value, ttl))
        writes.add(write)
        write.finally(() => writes.delete(write)).catch(() => {})
        return write
      },
      delete: (key) => inner.delete(key),
    },
    async written() {
      await new Promise((resolve) => setImmediate(resolve))
      await Promise.allSettled([...writes])
    },
  }
}
