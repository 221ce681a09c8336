import type { M2MAuth } from '@m2m-guard/core'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  type RedisBusEvent,
  type RedisCacheStore,
  type RedisRevocationBus,
  type RedisRevocationBusOptions,
  RedisTierError,
  redisCacheStore,
  redisRevocationBus,
} from '../src/index.js'
import { authOf, tokenId } from './support/fixtures.js'
import {
  type CuttableProxy,
  eventually,
  type RedisServer,
  skipRedis,
  startProxy,
  startRedisServer,
} from './support/redis-server.js'

const id = tokenId
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const auth = (m2mTokenId: string): M2MAuth => authOf(m2mTokenId)

describe.skipIf(skipRedis)('redisRevocationBus against redis-server', () => {
  let server: RedisServer
  let raw: Redis
  const closers: Array<{ close(): Promise<void> }> = []
  const bus = (
    options: Partial<RedisRevocationBusOptions> = {},
  ): RedisRevocationBus & { events: RedisBusEvent[]; heard: string[] } => {
    const events: RedisBusEvent[] = []
    const heard: string[] = []
    const created = redisRevocationBus({
      ...(options.client ? {} : { url: server.url }),
      // A generous deadline: CI runs every suite at once on two cores.
      commandTimeoutMs: 2_000,
      ...options,
      onEvent: (e) => events.push(e),
    })
    created.subscribe((m2mTokenId) => heard.push(m2mTokenId))
    closers.push(created)
    return Object.assign(created, { events, heard })
  }

  beforeAll(async () => {
    server = await startRedisServer()
    raw = new Redis(server.url)
  })
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((c) => c.close()))
    await raw.flushall()
  })
  afterAll(async () => {
    raw.disconnect()
    await server.stop()
  })

  it('a publish on A reaches B within 100 ms, once, and B remembers it', async () => {
    const a = bus()
    const b = bus()
    await Promise.all([a.ready(), b.ready()])
    await a.publish(id(1))
    // Polled, so it passes as soon as B hears; fails only past the 100 ms the design promises.
    await eventually(() => expect(b.heard).toEqual([id(1)]), 100)
    // Time for a duplicate (B's, or A's own echo through its subscription) to arrive if it would.
    await sleep(100)
    expect(b.heard).toEqual([id(1)])
    expect(b.isRevoked(id(1))).toBe(true)
    expect(b.isRevoked(id(2))).toBe(false)
    // A heard it at once (locally), and not a second time from its own subscription.
    expect(a.heard).toEqual([id(1)])
  })

  it('records revocations in a stream whose life is the retention', async () => {
    const a = bus({ retentionMs: 60_000 })
    await a.ready()
    await a.publish(id(1))
    await a.publish(id(2))
    const entries = await raw.xrange('m2m-guard:revoked', '-', '+')
    expect(entries.map(([, fields]) => fields)).toEqual([
      ['id', id(1)],
      ['id', id(2)],
    ])
    const ttl = await raw.pttl('m2m-guard:revoked')
    expect(ttl).toBeGreaterThan(50_000)
    expect(ttl).toBeLessThanOrEqual(60_000)
  })

  it('an instance that starts later knows revocations within the retention', async () => {
    const a = bus()
    await a.ready()
    await a.publish(id(7))
    const late = bus()
    await late.ready()
    expect(late.isRevoked(id(7))).toBe(true)
    expect(late.heard).toEqual([id(7)])
  })

  it('a revocation published while B was disconnected is honoured when B reconnects', async () => {
    const proxy: CuttableProxy = await startProxy(server.port)
    closers.push(proxy)
    const a = bus()
    const b = bus({ url: proxy.url, resyncIntervalMs: 0 })
    await Promise.all([a.ready(), b.ready()])

    proxy.cut()
    await eventually(() => expect(b.events.map((e) => e.type)).toContain('bus_disconnected'))
    await a.publish(id(3))
    await sleep(150)
    expect(b.heard).toEqual([]) // pub/sub lost it: B was away
    proxy.restore()

    await eventually(() => expect(b.heard).toEqual([id(3)]), 10_000)
    expect(b.isRevoked(id(3))).toBe(true)
    expect(b.events).toContainEqual({ type: 'bus_replayed', ids: [id(3)] })
  })

  it('the periodic read catches a message lost without a visible disconnect', async () => {
    const a = bus()
    const b = bus({ resyncIntervalMs: 200 })
    await Promise.all([a.ready(), b.ready()])
    // Recorded but never published: what a lost pub/sub message looks like to B.
    await raw.xadd('m2m-guard:revoked', '*', 'id', id(4))
    await eventually(() => expect(b.heard).toEqual([id(4)]), 2_000)
  })

  it('ignores foreign messages on the channel', async () => {
    const b = bus()
    await b.ready()
    for (const message of ['hello', '{"v":1,"id":"has space"}', '{"v":2,"id":"mt_x"}', '[]']) {
      await raw.publish('m2m-guard:revocations', message)
    }
    await raw.publish('m2m-guard:revocations', JSON.stringify({ v: 1, id: id(5) }))
    await eventually(() => expect(b.heard).toEqual([id(5)]))
  })

  it('publish with Redis down: evicts locally, rejects, and publishes once Redis is back', async () => {
    const proxy = await startProxy(server.port)
    closers.push(proxy)
    const a = bus({ url: proxy.url })
    const b = bus()
    await Promise.all([a.ready(), b.ready()])
    proxy.cut()
    await eventually(() => expect(a.events.map((e) => e.type)).toContain('bus_disconnected'))

    const err = await a.publish(id(6)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RedisTierError)
    expect(a.heard).toEqual([id(6)])
    expect(a.isRevoked(id(6))).toBe(true)
    expect(a.events).toContainEqual(
      expect.objectContaining({ type: 'bus_publish_failed', id: id(6) }),
    )

    proxy.restore()
    await eventually(() => expect(b.heard).toEqual([id(6)]), 10_000)
    // B can hear the message before A has read Redis's reply to its own publish.
    await eventually(() =>
      expect(a.events).toContainEqual({ type: 'bus_pending_flushed', ids: [id(6)] }),
    )
  })

  it('a linked store drops the shared entries of a revoked id and never serves them', async () => {
    const a = bus()
    const b = bus()
    const storeA: RedisCacheStore = redisCacheStore({
      url: server.url,
      commandTimeoutMs: 2_000,
      revocationBus: a,
    })
    const storeB: RedisCacheStore = redisCacheStore({
      url: server.url,
      commandTimeoutMs: 2_000,
      revocationBus: b,
    })
    closers.push(storeA, storeB)
    await Promise.all([a.ready(), b.ready()])
    const key = `ns:${'h'.repeat(43)}`
    await storeA.set(key, { auth: auth(id(8)), expiresAt: Date.now() + 30_000 }, 30_000)
    expect(await storeB.get(key)).toBeDefined()

    await a.publish(id(8))
    // B hears through Redis and the linked stores sweep in the background: poll rather than
    // assume both are done 100 ms later (CI is loaded).
    await eventually(() => expect(b.isRevoked(id(8))).toBe(true))
    expect(await storeB.get(key)).toBeUndefined()
    await eventually(async () => expect(await raw.exists(`m2m-guard:v:${key}`)).toBe(0))
    // Nor can a late writer (a verification that started before the revocation) put it back.
    await storeB.set(key, { auth: auth(id(8)), expiresAt: Date.now() + 30_000 }, 30_000)
    expect(await raw.exists(`m2m-guard:v:${key}`)).toBe(0)
  })

  it('caps a linked store entry at the retention of the record', async () => {
    const a = bus({ retentionMs: 5_000 })
    const store = redisCacheStore({ url: server.url, commandTimeoutMs: 2_000, revocationBus: a })
    closers.push(store)
    await a.ready()
    const key = `ns:${'r'.repeat(43)}`
    await store.set(key, { auth: auth(id(9)), expiresAt: Date.now() + 60_000 }, 60_000)
    const ttl = await raw.pttl(`m2m-guard:v:${key}`)
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(5_000)
  })

  it('with an hmacKey, ignores revocations nobody with the key signed', async () => {
    const secret = 'k'.repeat(40)
    const a = bus({ hmacKey: secret })
    const b = bus({ hmacKey: secret, resyncIntervalMs: 200 })
    const stranger = bus({ hmacKey: 'x'.repeat(40) })
    await Promise.all([a.ready(), b.ready(), stranger.ready()])

    // Forged by someone who can write to Redis: a bare message, a record entry, another key.
    await raw.publish('m2m-guard:revocations', JSON.stringify({ v: 1, id: id(1) }))
    await raw.xadd('m2m-guard:revoked', '*', 'id', id(2))
    await stranger.publish(id(3))
    await a.publish(id(4))

    await eventually(() => expect(b.heard).toEqual([id(4)]))
    await eventually(() =>
      expect(b.events).toContainEqual({ type: 'bus_unauthenticated', source: 'record' }),
    )
    await sleep(300) // a periodic read has gone over the forged record entries too
    expect(b.heard).toEqual([id(4)])
    expect(b.events).toContainEqual({ type: 'bus_unauthenticated', source: 'message' })
    for (const forged of [id(1), id(2), id(3)]) expect(b.isRevoked(forged)).toBe(false)
  })

  it('validates its options and ids', async () => {
    expect(() => redisRevocationBus({ url: server.url, retentionMs: 10 })).toThrow(/retentionMs/)
    expect(() => redisRevocationBus({ url: server.url, channel: 'a b' })).toThrow(/channel/)
    expect(() => redisRevocationBus({ url: server.url, hmacKey: 'short' })).toThrow(/hmacKey/)
    const a = bus()
    await expect(a.publish('not an id')).rejects.toThrow(TypeError)
  })
})
