/**
 * Option checks and `waitUntil` hand-off, in Node with an in-memory stand-in for KV (behaviour
 * against the real KV and Cache API is tested inside workerd, in test/).
 */
import type { CachedVerification } from '@m2m-guard/core'
import { describe, expect, it } from 'vitest'
import {
  CloudflareStoreError,
  type KVNamespaceLike,
  kvCacheStore,
  workersCacheStore,
} from './index.js'

const KEY = 'm2m-guard:v2:0123456789abcdef:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU'
const T = Date.UTC(2030, 0, 1)
const VALUE: CachedVerification = {
  auth: {
    tokenType: 'm2m_token',
    format: 'opaque',
    id: 'mt_0123456789abcdef0123456789abcdef',
    subject: 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk',
    scopes: [],
    claims: null,
    expiration: null,
  },
  verifiedAt: T,
  expiresAt: T + 30_000,
}

function memoryKV(options: { failPut?: boolean } = {}) {
  const data = new Map<string, { value: string; expirationTtl: number }>()
  const namespace: KVNamespaceLike = {
    async get(key) {
      return data.get(key)?.value ?? null
    },
    async put(key, value, { expirationTtl }) {
      if (options.failPut) throw new Error('KV PUT failed: 429 Too Many Requests')
      data.set(key, { value, expirationTtl })
    },
    async delete(key) {
      data.delete(key)
    },
  }
  return { namespace, data }
}

describe('kvCacheStore options', () => {
  it.each([
    [{ namespace: undefined }, /namespace must be a KV namespace binding/],
    [{ namespace: {} }, /namespace must be a KV namespace binding/],
    [{ namespace: memoryKV().namespace, prefix: '' }, /prefix must be/],
    [{ namespace: memoryKV().namespace, prefix: 'a/b' }, /prefix must be/],
    [{ namespace: memoryKV().namespace, prefix: '..' }, /prefix must be/],
    [{ namespace: memoryKV().namespace, waitUntil: 'later' }, /waitUntil must be a function/],
    [{ namespace: memoryKV().namespace, now: 'soon' }, /now must be a function/],
  ])('throws a TypeError naming the option (%#)', (options, message) => {
    expect(() => kvCacheStore(options as never)).toThrow(TypeError)
    expect(() => kvCacheStore(options as never)).toThrow(message)
  })

  it('writes with expirationTtl of at least 60 s, rounded up', async () => {
    const { namespace, data } = memoryKV()
    const store = kvCacheStore({ namespace, now: () => T })
    await store.set(`${KEY}1`, VALUE, 1)
    await store.set(`${KEY}2`, { ...VALUE, expiresAt: T + 200_000 }, 61_001)
    await store.set(`${KEY}3`, { ...VALUE, expiresAt: T + 90_000 }, 120_000)
    expect([...data.values()].map((v) => v.expirationTtl)).toEqual([60, 62, 90])
  })

  it('keeps when the token was verified, and stores nothing for an identity without an id', async () => {
    const { namespace, data } = memoryKV()
    const store = kvCacheStore({ namespace, now: () => T + 5_000 })
    await store.set(`${KEY}1`, VALUE, 30_000)
    expect((await store.get(`${KEY}1`))?.verifiedAt).toBe(T)
    // A JWT without jti: no reader would accept it, so it is not worth a billed write.
    await store.set(`${KEY}2`, { ...VALUE, auth: { ...VALUE.auth, id: '' } }, 30_000)
    expect([...data.keys()]).toEqual([`m2m-guard:${KEY}1`])
  })
})

describe('workersCacheStore options', () => {
  const cache = { match: async () => undefined, put: async () => {}, delete: async () => false }

  it('needs a cache outside Workers, and says so', () => {
    expect(() => workersCacheStore()).toThrow(/caches\.default does not exist here.*options\.cache/)
  })

  it.each([
    [{ cache: 'default' }, /cache must be a Cache/],
    [{ cache, origin: 'http://m2m-guard.cache' }, /origin must be a bare https origin/],
    [{ cache, origin: 'https://m2m-guard.cache/path' }, /origin must be a bare https origin/],
    [{ cache, origin: 'not a url' }, /origin must be a bare https origin/],
    [{ cache, prefix: 'a b' }, /prefix must be/],
    [{ cache, waitUntil: {} }, /waitUntil must be a function/],
    [{ cache, now: 1_700_000_000_000 }, /now must be a function/],
  ])('throws a TypeError naming the option (%#)', (options, message) => {
    expect(() => workersCacheStore(options as never)).toThrow(TypeError)
    expect(() => workersCacheStore(options as never)).toThrow(message)
  })

  it('accepts the promise caches.open returns, and a custom origin', async () => {
    const urls: string[] = []
    const store = workersCacheStore({
      cache: Promise.resolve({ ...cache, put: async (url: string) => void urls.push(url) }),
      origin: 'https://cache.internal',
      prefix: 'orders',
      now: () => T,
    })
    await store.set(KEY, VALUE, 30_000)
    expect(urls).toEqual([`https://cache.internal/orders/${encodeURIComponent(KEY)}`])
  })
})

describe('waitUntil', () => {
  it('receives every write and delete, and never a rejection', async () => {
    const handed: Promise<unknown>[] = []
    const { namespace } = memoryKV({ failPut: true })
    const store = kvCacheStore({ namespace, now: () => T, waitUntil: (p) => void handed.push(p) })
    await expect(store.set(KEY, VALUE, 30_000)).rejects.toThrow(/429/)
    await store.delete(KEY)
    expect(handed).toHaveLength(2)
    await expect(Promise.all(handed)).resolves.toEqual([undefined, undefined])
  })

  it('is not asked for reads, nor for writes that store nothing', async () => {
    const handed: Promise<unknown>[] = []
    const store = kvCacheStore({
      namespace: memoryKV().namespace,
      now: () => T,
      waitUntil: (p) => void handed.push(p),
    })
    await store.get(KEY)
    await store.set(KEY, VALUE, 0)
    expect(handed).toHaveLength(0)
  })

  it('failing outside a request does not fail the write', async () => {
    const { namespace, data } = memoryKV()
    const store = kvCacheStore({
      namespace,
      now: () => T,
      waitUntil: () => {
        throw new Error('waitUntil() called outside a request context')
      },
    })
    await store.set(KEY, VALUE, 30_000)
    expect(data.size).toBe(1)
  })
})

describe('CloudflareStoreError', () => {
  it('carries a code and a cause', () => {
    const cause = new Error('underlying')
    const error = new CloudflareStoreError('invalid_value', 'bad', { cause })
    expect(error).toMatchObject({ name: 'CloudflareStoreError', code: 'invalid_value', cause })
    expect(error).toBeInstanceOf(Error)
  })
})
