import type { CacheStore, M2MVerifierOptions, RevocationBus } from '@m2m-guard/core'
import type { Cluster, Redis } from 'ioredis'
import { describe, expectTypeOf, it } from 'vitest'
import {
  type RedisBusEvent,
  type RedisCacheStore,
  type RedisRevocationBus,
  type RedisTierErrorCode,
  redisCacheStore,
  redisRevocationBus,
} from './index.js'

describe('types', () => {
  it('fits the verifier contracts', () => {
    expectTypeOf<RedisCacheStore>().toExtend<CacheStore>()
    expectTypeOf<RedisRevocationBus>().toExtend<RevocationBus>()
    expectTypeOf<RedisCacheStore>().toExtend<NonNullable<M2MVerifierOptions['cache']>['store']>()
    expectTypeOf<RedisRevocationBus>().toExtend<M2MVerifierOptions['revocationBus']>()
    expectTypeOf(redisCacheStore).returns.toEqualTypeOf<RedisCacheStore>()
    expectTypeOf(redisRevocationBus).returns.toEqualTypeOf<RedisRevocationBus>()
  })

  it('takes either ioredis client type, and narrows errors and events by code and type', () => {
    expectTypeOf<Redis>().toExtend<NonNullable<Parameters<typeof redisCacheStore>[0]['client']>>()
    expectTypeOf<Cluster>().toExtend<
      NonNullable<Parameters<typeof redisRevocationBus>[0]['client']>
    >()
    expectTypeOf<'timeout'>().toExtend<RedisTierErrorCode>()
    expectTypeOf<Extract<RedisBusEvent, { type: 'bus_replayed' }>['ids']>().toEqualTypeOf<
      string[]
    >()
    // Shapes that must not compile (checked by tsc, never run).
    const mustNotCompile = () => {
      // @ts-expect-error a client must be an ioredis client
      redisCacheStore({ client: {} })
      // @ts-expect-error prefix is a string
      redisCacheStore({ url: 'redis://x', prefix: 1 })
      // @ts-expect-error events are a closed union
      const event: RedisBusEvent = { type: 'bus_exploded' }
      return event
    }
    expectTypeOf(mustNotCompile).toBeFunction()
  })
})
