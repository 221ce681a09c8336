/**
 * Both stores inside workerd (Miniflare), against its real KV and Cache API. Each store call runs
 * in the Worker with its clock pinned by `now`, so expiry is tested without sleeping; the raw
 * backend is read beside it to show what KV / the Cache API still hold.
 */
import type { CachedVerification, M2MAuth } from '@m2m-guard/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Settled, startWorker, type TestWorker } from './support/harness.js'

type Backend = 'kv' | 'cache'

const T = Date.UTC(2030, 0, 1)
const KEY = 'm2m-guard:v2:0123456789abcdef:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU'
const AUTH: M2MAuth = {
  tokenType: 'm2m_token',
  format: 'opaque',
  id: 'mt_0123456789abcdef0123456789abcdef',
  subject: 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk',
  scopes: ['mch_2yGkLpfCZ7Wm8ExDqeSyVukTf3u'],
  claims: { role: 'reader' },
  expiration: null,
}

/** Where each backend keeps `key` under `prefix`, as the stores document it. */
function rawKey(backend: Backend, key: string, prefix = 'm2m-guard'): string {
  return backend === 'kv'
    ? `${prefix}:${key}`
    : `https://m2m-guard.cache/${prefix}/${encodeURIComponent(key)}`
}

let worker: TestWorker

beforeAll(async () => {
  worker = await startWorker()
}, 60_000)

afterAll(async () => {
  await worker?.dispose()
})

describe.each<Backend>(['kv', 'cache'])('%s store in workerd', (backend) => {
  // Each test uses its own key so a leftover from another test cannot satisfy it.
  let n = 0
  const freshKey = () => `${KEY}:${backend}${++n}`

  async function run(ops: Record<string, unknown>[]): Promise<Settled[]> {
    return worker.post<Settled[]>(
      '/store',
      ops.map((op) => ({ backend, ...op })),
    )
  }
  const get = async (key: string, now: number, prefix?: string) =>
    (await run([{ op: 'get', key, now, prefix }]))[0]!
  const set = async (key: string, value: unknown, ttlMs: number, now: number, prefix?: string) =>
    (await run([{ op: 'set', key, value, ttlMs, now, prefix }]))[0]!
  const raw = async (key: string) =>
    (await worker.post<Settled>('/raw', { backend, op: 'get', key: rawKey(backend, key) })).ok
  const rawPut = (key: string, body: string, extra: Record<string, unknown> = {}) =>
    worker.post('/raw', { backend, op: 'put', key: rawKey(backend, key), body, ...extra })

  it('round-trips set, get and delete under its documented key', async () => {
    const key = freshKey()
    const value: CachedVerification = { auth: AUTH, verifiedAt: T, expiresAt: T + 30_000 }
    expect(await set(key, value, 30_000, T)).toEqual({ ok: null })
    expect(await get(key, T)).toEqual({ ok: value })
    expect(await raw(key)).toBeTruthy()

    expect((await run([{ op: 'delete', key }]))[0]).toEqual({ ok: null })
    expect(await get(key, T)).toEqual({ ok: null })
    expect(await raw(key)).toBeNull()
  })

  it('misses once expiresAt passes, although the backend still holds the value', async () => {
    const key = freshKey()
    // 1.5 s: KV cannot expire a key that soon (it refuses an expirationTtl under 60 s), and
    // the Cache API rounds to whole seconds.
    await set(key, { auth: AUTH, verifiedAt: T, expiresAt: T + 1_500 }, 1_500, T)
    expect(await get(key, T + 1_499)).toEqual({
      ok: { auth: AUTH, verifiedAt: T, expiresAt: T + 1_500 },
    })
    expect(await get(key, T + 1_500)).toEqual({ ok: null })
    expect(await get(key, T + 60_000)).toEqual({ ok: null })
    expect(await raw(key)).toBeTruthy()
  })

  it('misses on a well-formed value whose expiresAt has passed', async () => {
    const key = freshKey()
    const stale = JSON.stringify({ m2mg: 2, verifiedAt: 0, expiresAt: Date.now() - 1, auth: AUTH })
    await rawPut(key, stale, { headers: { 'cache-control': 'max-age=600' } })
    expect(await raw(key)).toBeTruthy()
    expect(await run([{ op: 'get', key }])).toEqual([{ ok: null }])
  })

  it('never keeps an entry past the token expiry or the given TTL', async () => {
    const key = freshKey()
    const auth = { ...AUTH, expiration: T + 2_000 }
    await set(key, { auth, verifiedAt: T, expiresAt: T + 30_000 }, 30_000, T)
    expect(await get(key, T + 1_999)).toEqual({ ok: { auth, verifiedAt: T, expiresAt: T + 2_000 } })
    expect(await get(key, T + 2_000)).toEqual({ ok: null })

    const short = freshKey()
    await set(short, { auth: AUTH, verifiedAt: T, expiresAt: T + 30_000 }, 1_000, T)
    expect(await get(short, T + 999)).toEqual({
      ok: { auth: AUTH, verifiedAt: T, expiresAt: T + 1_000 },
    })
    expect(await get(short, T + 1_000)).toEqual({ ok: null })
  })

  it('writes nothing when nothing of the entry is left', async () => {
    const cases = [
      { value: { auth: AUTH, verifiedAt: T, expiresAt: T + 30_000 }, ttlMs: 0 },
      { value: { auth: AUTH, verifiedAt: T, expiresAt: T + 30_000 }, ttlMs: -5 },
      { value: { auth: AUTH, verifiedAt: T, expiresAt: T }, ttlMs: 30_000 },
      {
        value: { auth: { ...AUTH, expiration: T - 1 }, verifiedAt: T, expiresAt: T + 30_000 },
        ttlMs: 30_000,
      },
    ]
    for (const { value, ttlMs } of cases) {
      const key = freshKey()
      expect(await set(key, value, ttlMs, T)).toEqual({ ok: null })
      expect(await raw(key)).toBeNull()
    }
  })

  it.each([
    ['not JSON', '{"m2mg":1,'],
    ['empty', ''],
    ['a foreign shape', JSON.stringify({ user: 'alice', admin: true })],
    ['another version', JSON.stringify({ m2mg: 3, verifiedAt: 0, expiresAt: 9e15, auth: AUTH })],
    ['no version', JSON.stringify({ expiresAt: 9e15, auth: AUTH })],
    [
      'expiresAt as a string',
      JSON.stringify({ m2mg: 2, verifiedAt: 0, expiresAt: '9e15', auth: AUTH }),
    ],
    [
      'a wrong tokenType',
      JSON.stringify({
        m2mg: 2,
        verifiedAt: 0,
        expiresAt: 9e15,
        auth: { ...AUTH, tokenType: 'session' },
      }),
    ],
    [
      'scopes as a string',
      JSON.stringify({
        m2mg: 2,
        verifiedAt: 0,
        expiresAt: 9e15,
        auth: { ...AUTH, scopes: 'mch_x' },
      }),
    ],
    [
      'an empty subject',
      JSON.stringify({ m2mg: 2, verifiedAt: 0, expiresAt: 9e15, auth: { ...AUTH, subject: '' } }),
    ],
    [
      // Any JSON value is a valid claims value (the API allows it), but it must be there.
      'claims missing',
      JSON.stringify({
        m2mg: 2,
        verifiedAt: 0,
        expiresAt: 9e15,
        auth: { ...AUTH, claims: undefined },
      }),
    ],
    ['no identity', JSON.stringify({ m2mg: 2, verifiedAt: 0, expiresAt: 9e15 })],
    ['no verifiedAt', JSON.stringify({ m2mg: 2, expiresAt: 9e15, auth: AUTH })],
    // The format before verifiedAt: an entry of unknown age cannot be held to a ttlMs.
    ['the previous format', JSON.stringify({ m2mg: 1, expiresAt: 9e15, auth: AUTH })],
    [
      'an oversized value',
      JSON.stringify({
        m2mg: 2,
        verifiedAt: 0,
        expiresAt: 9e15,
        auth: { ...AUTH, claims: { pad: 'x'.repeat(40_000) } },
      }),
    ],
  ])('rejects a stored value that is %s as invalid_value, never an identity', async (_, body) => {
    const key = freshKey()
    await rawPut(key, body, { headers: { 'cache-control': 'max-age=600' } })
    const [result] = await run([{ op: 'get', key }])
    expect(result).toEqual({
      error: {
        name: 'CloudflareStoreError',
        code: 'invalid_value',
        message: expect.stringMatching(/get: stored value .*; treated as a miss$/),
      },
    })
  })

  it('rebuilds the identity field by field, dropping anything extra', async () => {
    const key = freshKey()
    const planted = { ...AUTH, isAdmin: true, __proto__: { polluted: true } }
    await rawPut(
      key,
      JSON.stringify({ m2mg: 2, verifiedAt: 0, expiresAt: 9e15, auth: planted, extra: 1 }),
      {
        headers: { 'cache-control': 'max-age=600' },
      },
    )
    expect(await run([{ op: 'get', key }])).toEqual([
      { ok: { auth: AUTH, verifiedAt: 0, expiresAt: 9e15 } },
    ])
  })

  it('refuses a value too large to share, and stores nothing', async () => {
    const key = freshKey()
    const auth = { ...AUTH, claims: { pad: 'x'.repeat(40_000) } }
    const result = await set(key, { auth, verifiedAt: T, expiresAt: T + 30_000 }, 30_000, T)
    expect(result.error).toMatchObject({ name: 'CloudflareStoreError', code: 'value_too_large' })
    expect(await raw(key)).toBeNull()
  })

  it('refuses keys that hold a raw token, without repeating them', async () => {
    const token = `mt_${'A1b2C3d4'.repeat(6)}`
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtY2hfMSJ9.c2lnbmF0dXJl'
    for (const key of [token, `m2m-guard:v2:x:${token}`, jwt, 'x'.repeat(401), 'has space']) {
      const results = await run([
        {
          op: 'set',
          key,
          value: { auth: AUTH, verifiedAt: T, expiresAt: T + 30_000 },
          ttlMs: 30_000,
          now: T,
        },
        { op: 'get', key, now: T },
        { op: 'delete', key },
      ])
      for (const result of results) {
        expect(result.error).toMatchObject({ name: 'CloudflareStoreError', code: 'invalid_key' })
        expect(result.error!.message).not.toContain(key.slice(3, 20))
      }
    }
    expect(await raw(token)).toBeNull()
  })

  it('keeps prefixes apart', async () => {
    const key = freshKey()
    await set(key, { auth: AUTH, verifiedAt: T, expiresAt: T + 30_000 }, 30_000, T, 'orders-api')
    expect(await get(key, T, 'orders-api')).toEqual({
      ok: { auth: AUTH, verifiedAt: T, expiresAt: T + 30_000 },
    })
    expect(await get(key, T, 'billing-api')).toEqual({ ok: null })
    expect(await get(key, T)).toEqual({ ok: null })
  })
})

describe('backend specifics in workerd', () => {
  it('KV: writes a 60 s expirationTtl for a short entry, which KV accepts', async () => {
    const key = `${KEY}:kv-ttl`
    const [result] = await worker.post<Settled[]>('/store', [
      {
        backend: 'kv',
        op: 'set',
        key,
        value: { auth: AUTH, verifiedAt: T, expiresAt: T + 1_000 },
        ttlMs: 1_000,
        now: T,
      },
    ])
    expect(result).toEqual({ ok: null })
    // KV itself refuses anything shorter, which is why the store clamps:
    const direct = await worker.post<Settled>('/raw', {
      backend: 'kv',
      op: 'put',
      key: `${key}:direct`,
      body: 'x',
      expirationTtl: 1,
    })
    expect(direct.error?.message).toMatch(/expiration/i)
  })

  it('Cache API: stores a max-age response and treats another status as invalid', async () => {
    const key = `${KEY}:cache-status`
    const now = Date.now()
    await worker.post('/store', [
      {
        backend: 'cache',
        op: 'set',
        key,
        value: { auth: AUTH, verifiedAt: T, expiresAt: now + 5_000 },
        ttlMs: 5_000,
        now,
      },
    ])
    const stored = await worker.post<Settled<{ status: number; cacheControl: string }>>('/raw', {
      backend: 'cache',
      op: 'get',
      key: rawKey('cache', key),
    })
    expect(stored.ok).toMatchObject({
      status: 200,
      cacheControl: expect.stringMatching(/^max-age=[1-5]$/),
    })

    const other = `${KEY}:cache-404`
    await worker.post('/raw', {
      backend: 'cache',
      op: 'put',
      key: rawKey('cache', other),
      body: JSON.stringify({ m2mg: 2, verifiedAt: 0, expiresAt: 9e15, auth: AUTH }),
      status: 404,
      headers: { 'cache-control': 'max-age=600' },
    })
    const [result] = await worker.post<Settled[]>('/store', [
      { backend: 'cache', op: 'get', key: other },
    ])
    expect(result!.error).toMatchObject({
      code: 'invalid_value',
      message: expect.stringContaining('status 404'),
    })
  })
})
