/**
 * On a real three-master Redis Cluster: no command of the tier may be cross-slot, values spread
 * over the nodes, and the bus works through a Cluster client.
 */
import { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisCacheStore, redisRevocationBus } from '../src/index.js'
import { cachedOf, tokenId } from './support/fixtures.js'
import {
  eventually,
  haveRedisCli,
  inCi,
  type RedisClusterServer,
  skipRedis,
  startRedisCluster,
} from './support/redis-server.js'

const id = tokenId
const key = (n: number): string => `m2m-guard:v1:0123456789abcdef:${String(n).padStart(43, 'x')}`
const entry = cachedOf

describe.skipIf(skipRedis || (!haveRedisCli && !inCi))('on Redis Cluster', () => {
  let cluster: RedisClusterServer
  const clients: Cluster[] = []
  const client = (): Cluster => {
    const c = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })))
    c.on('error', () => {})
    clients.push(c)
    return c
  }

  beforeAll(async () => {
    cluster = await startRedisCluster()
  }, 60_000)
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await cluster?.stop()
  })

  it('spreads values over the nodes and deletes an id whose values live on several', async () => {
    const c = client()
    await eventually(() => expect(c.status).toBe('ready'), 10_000)
    const store = redisCacheStore({ client: c, commandTimeoutMs: 2_000 })
    for (let n = 0; n < 30; n++) await store.set(key(n), entry(id(n % 3)), 30_000)
    for (let n = 0; n < 30; n++) expect((await store.get(key(n)))?.auth.id).toBe(id(n % 3))

    const perNode = await Promise.all(c.nodes('master').map((node) => node.dbsize()))
    expect(perNode.filter((size) => size > 0).length).toBeGreaterThanOrEqual(2)

    expect(await store.deleteById(id(1))).toBe(10)
    for (let n = 0; n < 30; n++) {
      const got = await store.get(key(n))
      if (n % 3 === 1) expect(got).toBeUndefined()
      else expect(got).toBeDefined()
    }
    await store.close()
  })

  it('carries revocations between instances and replays the record to a late one', async () => {
    const a = redisRevocationBus({ client: client(), commandTimeoutMs: 2_000 })
    const b = redisRevocationBus({ client: client(), commandTimeoutMs: 2_000 })
    const heard: string[] = []
    b.subscribe((m2mTokenId) => heard.push(m2mTokenId))
    await Promise.all([a.ready(), b.ready()])
    await a.publish(id(5))
    await eventually(() => expect(heard).toEqual([id(5)]), 2_000)

    const late = redisRevocationBus({ client: client(), commandTimeoutMs: 2_000 })
    await late.ready()
    expect(late.isRevoked(id(5))).toBe(true)
    await Promise.all([a.close(), b.close(), late.close()])
  })
})
