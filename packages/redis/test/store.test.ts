import { type CachedVerification, type M2MAuth, memoryRevocationBus } from '@m2m-guard/core'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  type RedisCacheStore,
  type RedisRevocationBus,
  RedisTierError,
  redisCacheStore,
} from '../src/index.js'
import { authOf } from './support/fixtures.js'
import {
  eventually,
  type RedisServer,
  skipRedis,
  startRedisServer,
} from './support/redis-server.js'

const HOUR = 3_600_000

function auth(overrides: Partial<M2MAuth> = {}): M2MAuth {
  return authOf(`mt_${'a'.repeat(32)}`, {
    scopes: ['mch_service'],
    claims: { job: 'nightly' },
    expiration: Date.now() + HOUR,
    ...overrides,
  })
}

function entry(overrides: Partial<M2MAuth> = {}, expiresIn = 30_000): CachedVerification {
  const now = Date.now()
  return { auth: auth(overrides), verifiedAt: now, expiresAt: now + expiresIn }
}

/** A verifier-shaped key: namespace plus a base64url SHA-256, never a token. */
const key = (n: number | string): string => `ns1:${String(n).padStart(43, 'k')}`

async function rejection(promise: Promise<unknown>): Promise<RedisTierError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(RedisTierError)
  return err as RedisTierError
}

describe.skipIf(skipRedis)('redisCacheStore against redis-server', () => {
  let server: RedisServer
  let raw: Redis
  const stores: RedisCacheStore[] = []
  const open = (options: Parameters<typeof redisCacheStore>[0] = {}): RedisCacheStore => {
    // A generous deadline: CI runs every suite at once on two cores. The timeout test sets its own.
    const base = { commandTimeoutMs: 2_000, ...options }
    const store = redisCacheStore(options.client ? base : { url: server.url, ...base })
    stores.push(store)
    return store
  }

  beforeAll(async () => {
    server = await startRedisServer()
    raw = new Redis(server.url, { lazyConnect: true })
    // The "Redis down" tests kill the server under it: that is expected, not noise to print.
    raw.on('error', () => {})
    await raw.connect()
  })
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()))
    if (raw.status === 'ready') await raw.flushall()
  })
  afterAll(async () => {
    raw.disconnect()
    await server.stop()
  })

  it('shares an entry: what one store sets, another reads back exactly', async () => {
    const a = open()
    const b = open()
    await eventually(() => a.get(key(1)))
    const value = entry()
    await a.set(key(1), value, 30_000)
    expect(await b.get(key(1))).toEqual(value)
    expect(await b.get(key(2))).toBeUndefined()
  })

  it('lays keys out under the prefix, by hashed key and by token id, without hash tags', async () => {
    const store = open({ prefix: 'orders' })
    await eventually(() => store.get(key(1)))
    await store.set(key(1), entry(), 30_000)
    const keys = (await raw.keys('*')).sort()
    expect(keys).toEqual([`orders:id:mt_${'a'.repeat(32)}`, `orders:v:${key(1)}`])
    expect(keys.join('')).not.toMatch(/[{}]/)
    expect(await raw.smembers(`orders:id:mt_${'a'.repeat(32)}`)).toEqual([`orders:v:${key(1)}`])
  })

  it('sets PX to the smallest of ttlMs, the entry expiry and the token expiry', async () => {
    const store = open()
    await eventually(() => store.get(key(1)))
    await store.set(key(1), entry({}, 60_000), 20_000)
    await store.set(key(2), entry({}, 5_000), 20_000)
    await store.set(key(3), entry({ expiration: Date.now() + 2_000 }, 60_000), 20_000)
    const ttl = (n: number) => raw.pttl(`m2m-guard:v:${key(n)}`)
    expect(await ttl(1)).toBeGreaterThan(15_000)
    expect(await ttl(1)).toBeLessThanOrEqual(20_000)
    expect(await ttl(2)).toBeGreaterThan(3_000)
    expect(await ttl(2)).toBeLessThanOrEqual(5_000)
    expect(await ttl(3)).toBeGreaterThan(0)
    expect(await ttl(3)).toBeLessThanOrEqual(2_000)
  })

  it('shared entries expire with the token', async () => {
    const store = open()
    await eventually(() => store.get(key(1)))
    // 2 s of life: set and get must both land before the token expires; 300 ms is too tight on a
    // loaded CI machine.
    await store.set(key(1), entry({ expiration: Date.now() + 2_000 }, 30_000), 30_000)
    expect(await store.get(key(1))).toBeDefined()
    await new Promise((resolve) => setTimeout(resolve, 2_100))
    expect(await store.get(key(1))).toBeUndefined()
    // Gone from Redis itself, not only filtered on read.
    expect(await raw.exists(`m2m-guard:v:${key(1)}`)).toBe(0)
  })

  it('does not store an entry that has no life left, and treats a stale one as a miss', async () => {
    const store = open()
    await eventually(() => store.get(key(1)))
    await store.set(key(1), entry({ expiration: Date.now() - 1 }), 30_000)
    await store.set(key(2), entry({}, -5), 30_000)
    await store.set(key(3), entry(), 0)
    expect(await raw.dbsize()).toBe(0)

    // A value whose own expiry passed (clock skew between instances) is a miss, not an admit.
    let clock = Date.now()
    const skewed = open({ now: () => clock })
    await eventually(() => skewed.get(key(4)))
    await skewed.set(key(4), entry({}, 10_000), 30_000)
    expect(await skewed.get(key(4))).toBeDefined()
    clock += 11_000
    expect(await skewed.get(key(4))).toBeUndefined()
  })

  it.each([
    ['garbage', 'not a value'],
    [
      'unknown version',
      `m2mg9.-.${JSON.stringify({ auth: auth(), verifiedAt: Date.now(), expiresAt: Date.now() + 1e4 })}`,
    ],
    ['broken JSON', 'm2mg2.-.{"auth":'],
    ['foreign JSON', 'm2mg2.-.{"user":"admin","admin":true}'],
    [
      'wrong token type',
      `m2mg2.-.${JSON.stringify({ auth: { ...auth(), tokenType: 'session' }, verifiedAt: Date.now(), expiresAt: Date.now() + 1e4 })}`,
    ],
    [
      'scopes not a list',
      `m2mg2.-.${JSON.stringify({ auth: { ...auth(), scopes: 'mch_service' }, verifiedAt: Date.now(), expiresAt: Date.now() + 1e4 })}`,
    ],
    [
      // Any JSON value is a valid claims value (the API allows it), but it must be there.
      'claims missing',
      `m2mg2.-.${JSON.stringify({ auth: { ...auth(), claims: undefined }, verifiedAt: Date.now(), expiresAt: Date.now() + 1e4 })}`,
    ],
    ['no expiresAt', `m2mg2.-.${JSON.stringify({ auth: auth(), verifiedAt: Date.now() })}`],
    ['no verifiedAt', `m2mg2.-.${JSON.stringify({ auth: auth(), expiresAt: Date.now() + 1e4 })}`],
    [
      // The format before verifiedAt: its age is unknown, so it cannot be trusted.
      'the previous format',
      `m2mg1.-.${JSON.stringify({ auth: auth(), expiresAt: Date.now() + 1e4 })}`,
    ],
    [
      'oversized',
      `m2mg2.-.${JSON.stringify({ auth: { ...auth(), claims: { blob: 'x'.repeat(40_000) } }, verifiedAt: Date.now(), expiresAt: Date.now() + 1e4 })}`,
    ],
  ])(
    'a corrupted or foreign value (%s) is an invalid_value miss, never an identity',
    async (_, value) => {
      const store = open()
      await eventually(() => store.get(key(1)))
      await raw.set(`m2m-guard:v:${key(1)}`, value)
      const err = await rejection(store.get(key(1)))
      expect(err.code).toBe('invalid_value')
      expect(err.message).not.toContain(key(1))
    },
  )

  it('drops unknown fields of a stored identity', async () => {
    const store = open()
    await eventually(() => store.get(key(1)))
    const value = {
      auth: { ...auth(), isAdmin: true },
      verifiedAt: Date.now(),
      expiresAt: Date.now() + 10_000,
    }
    await raw.set(`m2m-guard:v:${key(1)}`, `m2mg2.-.${JSON.stringify(value)}`)
    const got = await store.get(key(1))
    expect(got?.auth).not.toHaveProperty('isAdmin')
    expect(got?.auth.subject).toBe('mch_caller')
  })

  it('with an hmacKey, refuses planted, foreign-keyed and moved values', async () => {
    const secret = 's'.repeat(40)
    const store = open({ hmacKey: secret })
    const other = open({ hmacKey: 'o'.repeat(40) })
    const plain = open()
    await eventually(() => store.get(key(1)))
    await store.set(key(1), entry(), 30_000)
    expect(await store.get(key(1))).toBeDefined()

    // Written without the key (someone with Redis access, or a misconfigured instance).
    await plain.set(key(2), entry(), 30_000)
    expect((await rejection(store.get(key(2)))).code).toBe('invalid_value')
    // Written with another key.
    await other.set(key(3), entry(), 30_000)
    expect((await rejection(store.get(key(3)))).code).toBe('invalid_value')
    // A valid value copied under the hash of another token.
    const valid = await raw.get(`m2m-guard:v:${key(1)}`)
    await raw.set(`m2m-guard:v:${key(4)}`, valid ?? '')
    expect((await rejection(store.get(key(4)))).code).toBe('invalid_value')
  })

  it('refuses values over maxValueBytes and keys that hold a raw token', async () => {
    const store = open({ maxValueBytes: 1_024 })
    await eventually(() => store.get(key(1)))
    const big = entry({ claims: { blob: 'x'.repeat(2_000) } })
    expect((await rejection(store.set(key(1), big, 30_000))).code).toBe('value_too_large')
    const token = `mt_${'Ab1'.repeat(16)}`
    const err = await rejection(store.set(`ns1:${token}`, entry(), 30_000))
    expect(err.code).toBe('invalid_value')
    expect(err.message).not.toContain(token)
    expect(await raw.dbsize()).toBe(0)
  })

  it('deleteById removes every shared entry of a token id', async () => {
    const store = open()
    await eventually(() => store.get(key(1)))
    await store.set(key(1), entry(), 30_000)
    await store.set(key(2), entry(), 30_000)
    await store.set(key(3), entry({ id: `mt_${'b'.repeat(32)}` }), 30_000)
    expect(await store.deleteById(`mt_${'a'.repeat(32)}`)).toBe(2)
    expect(await store.get(key(1))).toBeUndefined()
    expect(await store.get(key(2))).toBeUndefined()
    expect(await store.get(key(3))).toBeDefined()
  })

  it('validates its options with messages that name them', () => {
    expect(() => redisCacheStore({})).toThrow(/client or a redis:\/\/ url/)
    expect(() => redisCacheStore({ url: 'http://x' })).toThrow(/redis:\/\//)
    expect(() => redisCacheStore({ url: server.url, prefix: 'a{b}' })).toThrow(/prefix/)
    expect(() => redisCacheStore({ url: server.url, hmacKey: 'short' })).toThrow(/hmacKey/)
    expect(() => redisCacheStore({ url: server.url, maxValueBytes: 1 })).toThrow(/maxValueBytes/)
    expect(() => redisCacheStore({ url: server.url, commandTimeoutMs: 0 })).toThrow(
      /commandTimeoutMs/,
    )
  })

  it('refuses a revocationBus that is not a redisRevocationBus', () => {
    // Core's memory bus has no retentionMs: every write would be skipped without a word.
    const memory = memoryRevocationBus() as unknown as RedisRevocationBus
    expect(() => redisCacheStore({ url: server.url, revocationBus: memory })).toThrow(
      /revocationBus/,
    )
    const noRetention = { ...memory, isRevoked: () => false, retentionMs: Number.NaN }
    expect(() => redisCacheStore({ url: server.url, revocationBus: noRetention })).toThrow(
      /revocationBus/,
    )
  })

  it('does not share an identity without a token id (a JWT without jti)', async () => {
    const store = open()
    await eventually(() => store.get(key(1)))
    await store.set(key(1), entry({ format: 'jwt', id: '' }), 30_000)
    await store.set(key(2), entry({ format: 'jwt', id: '' }), 30_000)
    // Neither an undecodable value nor one index set `m2m-guard:id:` shared by every such key.
    expect(await raw.dbsize()).toBe(0)
    await store.set(key(3), entry(), 30_000)
    expect(await store.get(key(3))).toBeDefined()
  })

  it('connects a lazyConnect connection it opened, and leaves one you pass to you', async () => {
    const client = new Redis(server.url, { lazyConnect: true })
    client.on('error', () => {})
    try {
      const shared = open({ client })
      const owned = open({ redisOptions: { lazyConnect: true } })
      // Yours: a miss, and not connected behind your back (your own connect() must still work).
      await expect(shared.get(key(1))).rejects.toMatchObject({ code: 'unavailable' })
      expect(client.status).toBe('wait')
      await client.connect()
      // Its own: the first command answers unavailable and starts connecting; later ones go
      // through.
      for (const store of [shared, owned]) {
        await eventually(() => store.set(key(1), entry(), 30_000))
        expect(await store.get(key(1))).toBeDefined()
      }
    } finally {
      await Promise.all(stores.splice(0).map((s) => s.close()))
      client.disconnect()
    }
  })

  it('a Redis that stops answering times out, then fails fast while cooling down', async () => {
    const store = open({ commandTimeoutMs: 100 })
    await eventually(() => store.get(key(1)))
    const blocker = new Redis(server.url)
    try {
      // CLIENT PAUSE holds every client's commands, as a stalled server would.
      await blocker.call('CLIENT', 'PAUSE', '600', 'ALL')
      expect((await rejection(store.get(key(1)))).code).toBe('timeout')
      expect((await rejection(store.get(key(1)))).code).toBe('unavailable')
      await eventually(async () => expect(await store.get(key(1))).toBeUndefined(), 3_000)
    } finally {
      blocker.disconnect()
    }
  })

  it('Redis down: fails fast as unavailable, queues nothing, resumes on restart', async () => {
    // A user client with ioredis's defaults (offline queue on) must not pile commands up either.
    const userClient = new Redis(server.url)
    userClient.on('error', () => {})
    const owned = open()
    const shared = open({ client: userClient })
    await eventually(() => owned.get(key(1)))
    await eventually(() => shared.get(key(1)))
    await owned.set(key(1), entry(), 30_000)

    await server.kill()
    await eventually(async () => {
      expect((await rejection(owned.get(key(1)))).code).toBe('unavailable')
      expect((await rejection(shared.get(key(1)))).code).toBe('unavailable')
      expect((await rejection(shared.set(key(2), entry(), 30_000))).code).toBe('unavailable')
    })
    // 'unavailable' rather than 'timeout': the commands were refused, not left in ioredis's
    // offline queue to fire on reconnect.

    await server.start()
    // Reconnects by itself; the restarted Redis is empty.
    await eventually(async () => expect(await owned.get(key(1))).toBeUndefined(), 10_000)
    await owned.set(key(1), entry(), 30_000)
    await eventually(async () => expect(await shared.get(key(1))).toBeDefined(), 10_000)
    await shared.close()
    // The user's client stays open: the store never closes what it did not open.
    expect(userClient.status).toBe('ready')
    userClient.disconnect()
    await eventually(() => expect(raw.status).toBe('ready'), 10_000)
  })
})
