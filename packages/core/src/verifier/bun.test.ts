import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type BunServerProcess, startBunServer } from '../../../../test/support/bun.js'
import { type Fixture, startFixture } from './__fixtures__/emulator.js'
import { expectJwtsVerifiedLocally } from './__fixtures__/jwt-scenario.js'

// The verifier under Bun (the workerd test worker, served by Bun.serve), reaching the emulator
// over HTTP through Bun's fetch.
let fx: Fixture
let bun: BunServerProcess
beforeAll(async () => {
  fx = await startFixture()
  bun = await startBunServer(
    fileURLToPath(new URL('./__fixtures__/bun-server.ts', import.meta.url)),
    { API_URL: fx.emulator.url, SECRET_KEY: fx.emulator.secretKey, MAX_UPSTREAM: '4' },
  )
}, 60_000)
afterAll(async () => {
  await bun?.close()
  await fx?.close()
})

async function get(path: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${bun.url}${path}`)
  return (await res.json()) as Record<string, unknown>
}

test('verifies and caches on Bun (crypto.hash, fetch transport)', async () => {
  const created = await fx.mint()
  const before = fx.upstreamVerifies()
  expect(await get(`/verify?token=${created.token}`)).toEqual({ id: created.id })
  expect(await get(`/verify?token=${created.token}`)).toEqual({ id: created.id })
  expect(fx.upstreamVerifies() - before).toBe(1)
  expect(await get('/stats')).toMatchObject({ hits: 1, misses: 1, upstreamCalls: 1 })
  expect(await get('/hash')).toEqual({ sync: true })
  // Not an M2M token's shape: refused without asking.
  expect(await get('/verify?token=nope')).toEqual({ error: 'invalid_token' })
  expect(fx.upstreamVerifies() - before).toBe(1)
})

test('refuses revoked and unknown tokens on Bun', async () => {
  const created = await fx.mint()
  await fx.callerClient.revokeToken({ m2mTokenId: created.id })
  expect(await get(`/verify?token=${created.token}`)).toEqual({ error: 'token_revoked' })
  expect(await get(`/verify?token=mt_${'x'.repeat(32)}`)).toEqual({ error: 'invalid_token' })
})

test('verifies JWT-format tokens locally on Bun (jose on WebCrypto, JWKS over fetch)', async () => {
  await expectJwtsVerifiedLocally(fx, get)
})
