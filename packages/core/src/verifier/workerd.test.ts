import { fileURLToPath } from 'node:url'
import { Miniflare } from 'miniflare'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { bundleWorker } from '../../../../test/support/bundle-worker.js'
import { type Fixture, startFixture } from './__fixtures__/emulator.js'
import { expectJwtsVerifiedLocally } from './__fixtures__/jwt-scenario.js'

// The verifier inside workerd (through Miniflare), reaching the emulator on the host over HTTP.
let fx: Fixture
let mf: Miniflare
beforeAll(async () => {
  fx = await startFixture()
  const script = await bundleWorker(
    fileURLToPath(new URL('./__fixtures__/worker.ts', import.meta.url)),
  )
  mf = new Miniflare({
    modules: true,
    script,
    compatibilityDate: '2024-09-23',
    bindings: { API_URL: fx.emulator.url, SECRET_KEY: fx.emulator.secretKey, MAX_UPSTREAM: '1' },
  })
  await mf.ready
}, 60_000)
afterAll(async () => {
  await mf?.dispose()
  await fx?.close()
})

async function get(path: string): Promise<Record<string, unknown>> {
  const res = await mf.dispatchFetch(`http://worker.test${path}`)
  const text = await res.text()
  return text === 'started' ? {} : (JSON.parse(text) as Record<string, unknown>)
}

test('verifies and caches inside workerd (WebCrypto hash, fetch transport)', async () => {
  const created = await fx.mint()
  const before = fx.upstreamVerifies()
  expect(await get(`/verify?token=${created.token}`)).toEqual({ id: created.id })
  expect(await get(`/verify?token=${created.token}`)).toEqual({ id: created.id })
  expect(fx.upstreamVerifies() - before).toBe(1)
  expect(await get('/verify?token=nope')).toEqual({ error: 'invalid_token' })
  // No one-shot hash in workerd: the awaited WebCrypto digest keys the cache.
  expect(await get('/hash')).toEqual({ sync: false })
})

test('verifies JWT-format tokens locally inside workerd (jose on WebCrypto, JWKS over fetch)', async () => {
  await expectJwtsVerifiedLocally(fx, get)
})

test('a request joining a call owned by a request that already ended still gets its answer', async () => {
  const created = await fx.mint()
  const other = await fx.mint()
  fx.emulator.setFaults({ latencyMs: 300, operations: ['verifyM2MToken'] })
  try {
    // /start answers before its upstream call does; workerd then drops that call for good.
    await get(`/start?token=${created.token}`)
    expect(await get('/stats')).toMatchObject({ inFlight: 1, coalesced: 0 })
    // Joins the orphaned call, gives up on it after its deadline, and makes its own: a verdict,
    // never a hang or a 503. The orphan held the only upstream slot (maxConcurrentUpstream 1);
    // its lease has expired, so the slot is reclaimed rather than lost.
    expect(await get(`/verify?token=${created.token}`)).toEqual({ id: created.id })
    expect(await get('/stats')).toMatchObject({ coalesced: 1 })
    expect(await get(`/verify?token=${created.token}`)).toEqual({ id: created.id })
    expect(await get(`/verify?token=${other.token}`)).toEqual({ id: other.id })
    expect(await get('/stats')).toMatchObject({ inFlight: 0, queued: 0 })
  } finally {
    fx.emulator.clearFaults()
  }
}, 20_000)
