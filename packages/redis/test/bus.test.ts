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

/** Rejects when `promise` has not settled within `ms` (a hung `ready()` fails, not times out). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

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
    // The "Redis down" tests kill the server under it: that is expected, not noise to print.
    raw.on('error', () => {})
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
    await storeA.set(
      key,
      { auth: auth(id(8)), verifiedAt: Date.now(), expiresAt: Date.now() + 30_000 },
      30_000,
    )
    expect(await storeB.get(key)).toBeDefined()

    await a.publish(id(8))
    // B hears through Redis and the linked stores sweep in the background: poll rather than
    // assume both are done 100 ms later (CI is loaded).
    await eventually(() => expect(b.isRevoked(id(8))).toBe(true))
    expect(await storeB.get(key)).toBeUndefined()
    await eventually(async () => expect(await raw.exists(`m2m-guard:v:${key}`)).toBe(0))
    // Nor can a late writer (a verification that started before the revocation) put it back.
    await storeB.set(
      key,
      { auth: auth(id(8)), verifiedAt: Date.now(), expiresAt: Date.now() + 30_000 },
      30_000,
    )
    expect(await raw.exists(`m2m-guard:v:${key}`)).toBe(0)
  })

  it('caps a linked store entry at the retention of the record', async () => {
    const a = bus({ retentionMs: 5_000 })
    const store = redisCacheStore({ url: server.url, commandTimeoutMs: 2_000, revocationBus: a })
    closers.push(store)
    await a.ready()
    const key = `ns:${'r'.repeat(43)}`
    await store.set(
      key,
      { auth: auth(id(9)), verifiedAt: Date.now(), expiresAt: Date.now() + 60_000 },
      60_000,
    )
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

  /**
   * What someone who can PUBLISH but has no hmacKey can do: replay an authentic (id, mac) pair,
   * readable in the record, under every stream id `<ms>-0` of the next `spanMs` of Redis's clock.
   * Returns those stream ids.
   */
  const forgeFutureStreamIds = async (spanMs: number): Promise<Set<string>> => {
    const [first] = await raw.xrange('m2m-guard:revoked', '-', '+', 'COUNT', 1)
    const fields = first?.[1] ?? []
    const replayed = fields[fields.indexOf('id') + 1]
    const mac = fields[fields.indexOf('mac') + 1]
    const [seconds, micros] = await raw.time()
    const start = Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000)
    const sids = new Set<string>()
    const pipeline = raw.pipeline()
    for (let ms = start; ms < start + spanMs; ms++) {
      const sid = `${ms}-0`
      sids.add(sid)
      pipeline.publish('m2m-guard:revocations', JSON.stringify({ v: 1, sid, id: replayed, mac }))
    }
    await pipeline.exec()
    return sids
  }
  const newestStreamId = async (): Promise<string | undefined> =>
    (await raw.xrevrange('m2m-guard:revoked', '+', '-', 'COUNT', 1))[0]?.[0]

  it('with an hmacKey, replayed messages under future stream ids do not hide a revocation', async () => {
    const secret = 'k'.repeat(40)
    const a = bus({ hmacKey: secret })
    const b = bus({ hmacKey: secret, resyncIntervalMs: 0 })
    await Promise.all([a.ready(), b.ready()])
    await a.publish(id(1)) // a legitimate revocation whose (id, mac) the record now shows
    await eventually(() => expect(b.heard).toContain(id(1)))
    const forged = await forgeFutureStreamIds(3_000)

    await a.publish(id(2))
    // The real revocation got a stream id the forger had already used (else the test proves nothing).
    expect(forged.has((await newestStreamId()) ?? '')).toBe(true)
    await eventually(() => expect(b.isRevoked(id(2))).toBe(true), 2_000)
    expect(b.heard).toContain(id(2))
  })

  it('with an hmacKey, replayed messages under future stream ids do not hide a record entry', async () => {
    const secret = 'k'.repeat(40)
    const proxy = await startProxy(server.port)
    closers.push(proxy)
    const a = bus({ hmacKey: secret })
    const b = bus({ hmacKey: secret, url: proxy.url, resyncIntervalMs: 0 })
    await Promise.all([a.ready(), b.ready()])
    await a.publish(id(1))
    await eventually(() => expect(b.heard).toContain(id(1)))
    const forged = await forgeFutureStreamIds(5_000)
    await sleep(100) // B has taken in the forged messages

    // B is away when the real revocation goes out: only the record can tell it.
    proxy.cut()
    await eventually(() => expect(b.events.map((e) => e.type)).toContain('bus_disconnected'))
    await a.publish(id(2))
    expect(forged.has((await newestStreamId()) ?? '')).toBe(true)
    proxy.restore()
    await eventually(() => expect(b.isRevoked(id(2))).toBe(true), 10_000)
    expect(b.events).toContainEqual({ type: 'bus_replayed', ids: [id(2)] })
  })

  it('an async onEvent or listener that rejects neither crashes the process nor stops the others', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const a = redisRevocationBus({
        url: server.url,
        commandTimeoutMs: 2_000,
        onEvent: async (event) => {
          throw new Error(`observer failed on ${event.type}`)
        },
      })
      closers.push(a)
      const heard: string[] = []
      a.subscribe(async () => {
        throw new Error('listener failed')
      })
      a.subscribe((m2mTokenId) => heard.push(m2mTokenId))
      await a.ready() // emitted bus_subscribed
      await a.publish(id(1)) // called both listeners
      await sleep(50) // Node reports an unhandled rejection once the microtasks have run
      expect(heard).toEqual([id(1)])
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })

  it('a SUBSCRIBE that times out while the connection stays up is retried', async () => {
    const proxy = await startProxy(server.port, { holdAfterFirstSubscribeMs: 1_500 })
    closers.push(proxy)
    // ioredis's own deadline (300 + 100 ms) rejects the SUBSCRIBE; the socket stays up.
    const b = bus({ url: proxy.url, commandTimeoutMs: 300, resyncIntervalMs: 200 })
    await within(b.ready(), 10_000, 'ready()')
    expect(b.events[0]).toMatchObject({ type: 'bus_resync_failed', message: 'Command timed out' })
    expect(b.events).toContainEqual({ type: 'bus_subscribed', replayed: 0 })
    // Subscribed for real: the periodic read runs and catches a message pub/sub never carried.
    await raw.xadd('m2m-guard:revoked', '*', 'id', id(1))
    await eventually(() => expect(b.heard).toEqual([id(1)]), 3_000)
  })

  it("trims the record on Redis's clock: a publisher clock ahead by the retention keeps it", async () => {
    const retentionMs = 5_000
    const ahead = () => Date.now() + 2 * retentionMs
    const a = bus({ retentionMs, now: ahead })
    const b = bus({ retentionMs })
    await Promise.all([a.ready(), b.ready()])
    await b.publish(id(1))
    await a.publish(id(2))
    const entries = await raw.xrange('m2m-guard:revoked', '-', '+')
    expect(entries.map(([, fields]) => fields)).toEqual([
      ['id', id(1)],
      ['id', id(2)],
    ])
    // A new instance whose clock is as far ahead still reads the retained window.
    const late = bus({ retentionMs, now: ahead })
    await late.ready()
    expect(late.heard).toEqual([id(1), id(2)])
  })

  it('forgets the stream ids it published once the retention is over', async () => {
    // An instance that only publishes never hears a new entry; it must still prune.
    let clock = Date.now()
    const a = bus({ retentionMs: 1_000, resyncIntervalMs: 100, now: () => clock })
    await a.ready()
    await a.publish(id(1))
    const sid = await newestStreamId()
    await sleep(100)
    const echo = JSON.stringify({ v: 1, sid, id: id(1) })
    await raw.publish('m2m-guard:revocations', echo)
    // Pub/sub keeps order: once this marker is heard, the echo before it has been handled.
    await raw.publish('m2m-guard:revocations', JSON.stringify({ v: 1, id: id(2) }))
    await eventually(() => expect(a.heard).toContain(id(2)))
    expect(a.heard).toEqual([id(1), id(2)]) // its own entry, still remembered

    clock += 2_000
    await sleep(300) // a periodic read has run
    await raw.publish('m2m-guard:revocations', echo)
    // Forgotten: the same entry is news again (what memory holds past the retention is a leak).
    await eventually(() => expect(a.heard).toEqual([id(1), id(2), id(1)]))
  })

  it('connects its own subscriber connection, and leaves a lazyConnect client to its owner', async () => {
    const client = new Redis(server.url, { lazyConnect: true })
    client.on('error', () => {})
    try {
      const a = bus({ client })
      await new Promise((resolve) => setTimeout(resolve, 200))
      // Not connected for you: your own `await client.connect()` must still work.
      expect(client.status).toBe('wait')
      await client.connect()
      await within(a.ready(), 5_000, 'ready()')
      const b = bus()
      await b.ready()
      await eventually(() => a.publish(id(1)))
      await eventually(() => expect(b.heard).toEqual([id(1)]))
      await a.close()
    } finally {
      client.disconnect()
    }
  })

  it('validates its options and ids', async () => {
    expect(() => redisRevocationBus({ url: server.url, retentionMs: 10 })).toThrow(/retentionMs/)
    expect(() => redisRevocationBus({ url: server.url, channel: 'a b' })).toThrow(/channel/)
    expect(() => redisRevocationBus({ url: server.url, hmacKey: 'short' })).toThrow(/hmacKey/)
    const a = bus()
    await expect(a.publish('not an id')).rejects.toThrow(TypeError)
  })
})
