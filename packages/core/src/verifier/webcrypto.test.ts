import { afterAll, beforeAll, expect, test, vi } from 'vitest'
import { digestSync } from '../cache/hash.js'
import { type Fixture, startFixture } from './__fixtures__/emulator.js'

// Simulates a runtime without Node's one-shot hash (workerd): every verify takes the awaited
// WebCrypto path. The rest is the real verifier against the real emulator.
vi.mock('../cache/hash.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../cache/hash.js')>()
  return {
    ...original,
    digestSync: undefined,
    digest: original.digestViaWebCrypto,
    sha256: original.sha256ViaWebCrypto,
  }
})

let fx: Fixture
beforeAll(async () => {
  fx = await startFixture()
})
afterAll(async () => {
  await fx.close()
})

test('without crypto.hash: same verdicts, same cache behaviour, same coalescing', async () => {
  expect(digestSync).toBeUndefined()
  const { token, id } = await fx.mint({ seconds: 2 })
  const verifier = fx.verifier({ cache: { ttlMs: 60_000 } })
  const before = fx.upstreamVerifies()
  const all = await Promise.all(Array.from({ length: 10 }, () => verifier.verify(token)))
  expect(all.every((a) => a.id === id)).toBe(true)
  // Some of the ten may already hit the cache (their digest resolved after the call returned);
  // what matters is one upstream call, and a later call being a hit.
  const hitsBefore = verifier.stats().hits
  await verifier.verify(token)
  expect(fx.upstreamVerifies() - before).toBe(1)
  expect(verifier.stats().hits - hitsBefore).toBe(1)
  fx.clock.advance(2_000)
  await expect(verifier.verify(token)).rejects.toMatchObject({ code: 'token_expired' })
  expect(fx.upstreamVerifies() - before).toBe(1)
})
