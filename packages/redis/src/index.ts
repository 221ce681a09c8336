/**
 * `@m2m-guard/redis`: a Redis-shared second cache tier and a revocation bus for fleets of
 * m2m-guard instances.
 *
 * @example
 * import { createM2MVerifier } from '@m2m-guard/core'
 * import { redisCacheStore, redisRevocationBus } from '@m2m-guard/redis'
 *
 * const bus = redisRevocationBus({ url: process.env.REDIS_URL })
 * const store = redisCacheStore({ url: process.env.REDIS_URL, revocationBus: bus })
 * const verifier = createM2MVerifier({ cache: { store }, revocationBus: bus })
 */
export {
  type RedisBusEvent,
  type RedisRevocationBus,
  type RedisRevocationBusOptions,
  redisRevocationBus,
} from './bus.js'
export { ownedClientOptions, type RedisClient, type RedisConnectionOptions } from './connection.js'
export { RedisTierError, type RedisTierErrorCode } from './errors.js'
export { type RedisCacheStore, type RedisCacheStoreOptions, redisCacheStore } from './store.js'
