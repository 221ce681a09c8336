/**
 * The peer range includes ioredis 5 (RESP2): the same store and bus behaviour with a v5 client
 * passed as `client`, which is how an application on v5 uses this package.
 */
import type { CachedVerification } from '@m2m-guard/core'
import { Redis as Redis5 } from 'ioredis5'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RedisClient, redisCacheStore, redisRevocationBus } from '../src/index.js'
import { cachedOf, tokenId } from './support/fixtures.js'
import {
  eventually,
  type RedisServer,
  skipRedis,
  startRedisServer,
} from './support/redis-server.js'

const id = tokenId
const key = `m2m-guard:v1:0123456789abcdef:${'5'.repeat(43)}`
const entry: CachedVerification = cachedOf(id(1))

describe.skipIf(skipRedis)('with an ioredis 5 client', () => {
  let server: RedisServer
  const clients: Redis5[] = []
  // v5's class is a distinct type with the same API; the package's types name v6's.
  const client = (): RedisClient => {
    const c = new Redis5(server.url)
    c.on('error', () => {})
    clients.push(c)
    return c as unknown as RedisClient
  }

  beforeAll(async () => {
    server = await startRedisServer()
  })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await server.stop()
  })

  it('stores, carries revocations, fails fast and resumes the same way', async () => {
    const a = redisRevocationBus({ client: client(), commandTimeoutMs: 2_000 })
    const b = redisRevocationBus({ client: client(), commandTimeoutMs: 2_000 })
    const store = redisCacheStore({ client: client(), revocationBus: b, commandTimeoutMs: 2_000 })
    const heard: string[] = []
    b.subscribe((m2mTokenId) => heard.push(m2mTokenId))
    await Promise.all([a.ready(), b.ready()])

    await eventually(() => store.set(key, entry, 30_000))
    expect(await store.get(key)).toEqual(entry)
    await a.publish(id(1))
    await eventually(() => expect(heard).toEqual([id(1)]), 2_000)
    await eventually(async () => expect(await store.get(key)).toBeUndefined())

    await server.kill()
    await eventually(() => expect(store.get(key)).rejects.toMatchObject({ code: 'unavailable' }))
    await server.start()
    await eventually(async () => expect(await store.get(key)).toBeUndefined(), 10_000)
    await Promise.all([a.close(), b.close(), store.close()])
  })
})
