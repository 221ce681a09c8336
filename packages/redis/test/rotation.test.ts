/**
 * Rotating `hmacKey` across a fleet that keeps running: instances on different steps of the
 * rotation share Redis, and each must accept what the others sign (store values, bus messages
 * and record entries) while refusing what none of its secrets signed.
 */
import type { CachedVerification } from '@m2m-guard/core'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  type RedisBusEvent,
  type RedisCacheStore,
  type RedisRevocationBus,
  RedisTierError,
  redisCacheStore,
  redisRevocationBus,
} from '../src/index.js'
import { authOf, tokenId } from './support/fixtures.js'
import {
  eventually,
  type RedisServer,
  skipRedis,
  startRedisServer,
} from './support/redis-server.js'

type HmacKey = string | readonly string[]

const OLD = 'old-rotation-secret-'.padEnd(40, 'o')
const NEW = 'new-rotation-secret-'.padEnd(40, 'n')
const SHORT = 'tooShort-9f3a'

const id = tokenId
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** A verifier-shaped key: namespace plus a base64url SHA-256, never a token. */
const key = (n: number): string => `ns1:${String(n).padStart(43, 'k')}`
const entry = (n: number): CachedVerification => {
  const now = Date.now()
  return { auth: authOf(id(n)), verifiedAt: now, expiresAt: now + 30_000 }
}
const unauthenticated = (events: RedisBusEvent[]) =>
  events.filter((e) => e.type === 'bus_unauthenticated')

async function rejection(promise: Promise<unknown>): Promise<RedisTierError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(RedisTierError)
  return err as RedisTierError
}

/** The rolling rotation the README documents: at each step, two neighbouring configurations. */
const STEPS: Array<[string, HmacKey, HmacKey]> = [
  ['1: [old] and [old, new]', OLD, [OLD, NEW]],
  ['2: [old, new] and [new, old]', [OLD, NEW], [NEW, OLD]],
  ['3: [new, old] and [new]', [NEW, OLD], NEW],
]

describe.skipIf(skipRedis)('hmacKey rotation against redis-server', () => {
  let server: RedisServer
  let raw: Redis
  const closers: Array<{ close(): Promise<void> }> = []

  const store = async (hmacKey: HmacKey): Promise<RedisCacheStore> => {
    // A generous deadline: CI runs every suite at once on two cores.
    const created = redisCacheStore({ url: server.url, commandTimeoutMs: 2_000, hmacKey })
    closers.push(created)
    // A miss once the connection is ready; before that, `unavailable`.
    await eventually(() => created.get(key(999)))
    return created
  }

  const bus = async (
    hmacKey: HmacKey,
  ): Promise<RedisRevocationBus & { events: RedisBusEvent[]; heard: string[] }> => {
    const events: RedisBusEvent[] = []
    const heard: string[] = []
    const created = redisRevocationBus({
      url: server.url,
      commandTimeoutMs: 2_000,
      // Only pub/sub and the catch-up read on subscribe: each test says which path it checks.
      resyncIntervalMs: 0,
      hmacKey,
      onEvent: (e) => events.push(e),
    })
    created.subscribe((m2mTokenId) => heard.push(m2mTokenId))
    closers.push(created)
    await created.ready()
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

  describe('store', () => {
    it('[old, new] reads values written with [old] and with [new]; [new] refuses [old] ones', async () => {
      const writerOld = await store([OLD])
      const writerNew = await store([NEW])
      const both = await store([OLD, NEW])
      const newOnly = await store([NEW])
      await writerOld.set(key(1), entry(1), 30_000)
      await writerNew.set(key(2), entry(2), 30_000)

      expect((await both.get(key(1)))?.auth.id).toBe(id(1))
      expect((await both.get(key(2)))?.auth.id).toBe(id(2))
      expect((await newOnly.get(key(2)))?.auth.id).toBe(id(2))
      expect((await rejection(newOnly.get(key(1)))).code).toBe('invalid_value')
    })

    it('a list signs with its first secret, in the format a single string writes', async () => {
      const single = await store(OLD)
      const list = await store([OLD, NEW])
      const value = entry(1)
      await single.set(key(1), value, 30_000)
      const fromString = await raw.get(`m2m-guard:v:${key(1)}`)
      await list.set(key(1), value, 30_000)
      expect(await raw.get(`m2m-guard:v:${key(1)}`)).toBe(fromString)
      // [new, old] signs with new: an instance that only knows old refuses it.
      const flipped = await store([NEW, OLD])
      await flipped.set(key(2), entry(2), 30_000)
      expect((await rejection(single.get(key(2)))).code).toBe('invalid_value')
      expect((await (await store(NEW)).get(key(2)))?.auth.id).toBe(id(2))
    })

    it.each(STEPS)(
      'rolling rotation, step %s: each reads what the other wrote',
      async (_, x, y) => {
        const a = await store(x)
        const b = await store(y)
        await a.set(key(1), entry(1), 30_000)
        await b.set(key(2), entry(2), 30_000)
        expect((await b.get(key(1)))?.auth.id).toBe(id(1))
        expect((await a.get(key(2)))?.auth.id).toBe(id(2))
      },
    )

    it('skipping step 1 ([old] next to [new, old]) is what refuses values', async () => {
      const a = await store(OLD)
      const b = await store([NEW, OLD])
      await a.set(key(1), entry(1), 30_000)
      await b.set(key(2), entry(2), 30_000)
      expect((await b.get(key(1)))?.auth.id).toBe(id(1))
      expect((await rejection(a.get(key(2)))).code).toBe('invalid_value')
    })
  })

  describe('bus', () => {
    it('[old, new] hears revocations published with [old] and with [new]; [new] refuses [old] ones', async () => {
      const both = await bus([OLD, NEW])
      const newOnly = await bus([NEW])
      const publisherOld = await bus([OLD])
      const publisherNew = await bus([NEW])
      // In this order: once a subscriber has heard id(2), it has been handed id(1) too.
      await publisherOld.publish(id(1))
      await publisherNew.publish(id(2))

      await eventually(() => expect([...both.heard].sort()).toEqual([id(1), id(2)]))
      expect(both.isRevoked(id(1)) && both.isRevoked(id(2))).toBe(true)
      expect(unauthenticated(both.events)).toEqual([])

      await eventually(() => expect(newOnly.heard).toEqual([id(2)]))
      expect(newOnly.isRevoked(id(1))).toBe(false)
      expect(unauthenticated(newOnly.events)).toEqual([
        { type: 'bus_unauthenticated', source: 'message' },
      ])
    })

    it('an instance that starts later reads the record the same way', async () => {
      const publisherOld = await bus([OLD])
      const publisherNew = await bus([NEW])
      await publisherOld.publish(id(1))
      await publisherNew.publish(id(2))

      // ready() resolves once the record has been read.
      const both = await bus([OLD, NEW])
      expect(both.isRevoked(id(1))).toBe(true)
      expect(both.isRevoked(id(2))).toBe(true)
      expect(unauthenticated(both.events)).toEqual([])
      expect(both.events).toContainEqual({ type: 'bus_subscribed', replayed: 2 })

      const newOnly = await bus([NEW])
      expect(newOnly.isRevoked(id(2))).toBe(true)
      expect(newOnly.isRevoked(id(1))).toBe(false)
      expect(unauthenticated(newOnly.events)).toEqual([
        { type: 'bus_unauthenticated', source: 'record' },
      ])
    })

    it.each(STEPS)('rolling rotation, step %s: each hears the other', async (_, x, y) => {
      const a = await bus(x)
      const b = await bus(y)
      await a.publish(id(1))
      await b.publish(id(2))
      await eventually(() => expect(a.heard).toEqual([id(1), id(2)]))
      // b may hear id(1) before or after its own id(2): only the set matters.
      await eventually(() => expect([...b.heard].sort()).toEqual([id(1), id(2)]))
      // And so does an instance of either configuration that starts now, from the record.
      for (const late of [await bus(x), await bus(y)]) {
        expect(late.isRevoked(id(1)) && late.isRevoked(id(2))).toBe(true)
      }
      await sleep(50)
      expect(unauthenticated([...a.events, ...b.events])).toEqual([])
    })

    it('skipping step 1 ([old] next to [new, old]) is what refuses revocations', async () => {
      const a = await bus(OLD)
      const b = await bus([NEW, OLD])
      await b.publish(id(2))
      await a.publish(id(1))
      await eventually(() => expect(b.heard).toEqual([id(2), id(1)]))
      // a's own id(1) went out after b's id(2): a has been handed both.
      await eventually(() =>
        expect(a.events).toContainEqual({ type: 'bus_unauthenticated', source: 'message' }),
      )
      expect(a.heard).toEqual([id(1)])
      expect(a.isRevoked(id(2))).toBe(false)
    })
  })

  describe('option validation', () => {
    const constructors: Array<[string, (hmacKey: unknown) => { close(): Promise<void> }]> = [
      [
        'redisCacheStore',
        (hmacKey) => redisCacheStore({ url: server.url, hmacKey: hmacKey as HmacKey }),
      ],
      [
        'redisRevocationBus',
        (hmacKey) => redisRevocationBus({ url: server.url, hmacKey: hmacKey as HmacKey }),
      ],
    ]

    it.each(constructors)(
      '%s takes a list of secrets, and refuses a bad one without echoing it',
      (who, create) => {
        for (const good of [[NEW, OLD], [NEW], NEW]) closers.push(create(good))

        const refused = (value: unknown): string => {
          let thrown: unknown
          try {
            closers.push(create(value))
          } catch (err) {
            thrown = err
          }
          expect(thrown, JSON.stringify(value)).toBeInstanceOf(TypeError)
          const { message } = thrown as TypeError
          expect(message.startsWith(`${who}: hmacKey`)).toBe(true)
          for (const secret of [OLD, NEW, SHORT]) expect(message).not.toContain(secret)
          return message
        }
        expect(refused([])).toMatch(/non-empty array/)
        expect(refused([SHORT])).toMatch(/hmacKey\[0\] must be a secret of at least 32 characters/)
        expect(refused([NEW, SHORT])).toMatch(/hmacKey\[1\]/)
        expect(refused([NEW, 42])).toMatch(/hmacKey\[1\]/)
        expect(refused([NEW, undefined])).toMatch(/hmacKey\[1\]/)
        expect(refused([NEW, [OLD]])).toMatch(/hmacKey\[1\]/)
        // biome-ignore lint/suspicious/noSparseArray: a hole is refused, not skipped
        expect(refused([NEW, , OLD])).toMatch(/hmacKey\[1\]/)
        expect(refused(SHORT)).toMatch(/at least 32 characters/)
        expect(refused(42)).toMatch(/at least 32 characters/)
        expect(refused({ 0: NEW, length: 1 })).toMatch(/array/)
      },
    )
  })
})
