/**
 * Type tests: the structural `KVNamespaceLike` and `CacheLike` must accept the real Workers
 * types (`@cloudflare/workers-types`, imported as a module so its globals stay out of this
 * project), and the stores must satisfy the core's `CacheStore`.
 */
import type { Cache, CacheStorage, KVNamespace } from '@cloudflare/workers-types/index.ts'
import type { CacheStore } from '@m2m-guard/core'
import { describe, expect, expectTypeOf, it } from 'vitest'
import {
  type CacheLike,
  type KVCacheStore,
  type KVNamespaceLike,
  kvCacheStore,
  type ResponseLike,
  type WaitUntil,
  type WorkersCacheStore,
  workersCacheStore,
} from '../src/index.js'

describe('types', () => {
  it('accepts real Workers bindings', () => {
    expectTypeOf<KVNamespace>().toExtend<KVNamespaceLike>()
    expectTypeOf<Cache>().toExtend<CacheLike>()
    expectTypeOf<ReturnType<CacheStorage['open']>>().toExtend<Promise<CacheLike>>()
    expectTypeOf<(promise: Promise<unknown>) => void>().toExtend<WaitUntil>()
    // and the DOM's, whose Response differs from the Workers one
    expectTypeOf<globalThis.Cache>().toExtend<CacheLike>()
    expectTypeOf<globalThis.Response>().toExtend<ResponseLike>()
  })

  it('makes stores the verifier takes', () => {
    expectTypeOf<KVCacheStore>().toExtend<CacheStore>()
    expectTypeOf<WorkersCacheStore>().toExtend<CacheStore>()
    expectTypeOf(kvCacheStore).parameter(0).toHaveProperty('namespace')
    expectTypeOf(workersCacheStore).returns.toEqualTypeOf<WorkersCacheStore>()
  })

  it('rejects what is not a binding', () => {
    // Checked by tsc (`npm run typecheck`); at run time the same calls throw.
    // @ts-expect-error a KV namespace is required
    expect(() => kvCacheStore({})).toThrow(TypeError)
    // @ts-expect-error an object with only `get` is not a KV namespace
    expect(() => kvCacheStore({ namespace: { get: async () => null } })).toThrow(TypeError)
    // @ts-expect-error the cache is a Cache, not its name
    expect(() => workersCacheStore({ cache: 'default' })).toThrow(TypeError)
  })
})
