import fc from 'fast-check'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { memoryRevocationBus } from '../cache/memory.js'
import type { M2MAuthError } from '../errors.js'
import { type Fixture, startFixture, unknownToken } from './__fixtures__/emulator.js'

/**
 * Safety properties over random sequences of verify / revoke / invalidate / clock steps /
 * upstream faults, against the real emulator:
 * - never a valid result for a token revoked through a verifier, an expired token, or a token
 *   that was never issued; a token revoked upstream behind the verifiers' back is accepted at
 *   most ttlMs (+ staleIfErrorMs) after its revocation;
 * - the caches never exceed their bounds.
 */

let fx: Fixture
beforeAll(async () => {
  fx = await startFixture()
})
afterAll(async () => {
  await fx.close()
})

// A seed-fixed run in `npm test`; PROPERTY_RUNS and PROPERTY_SEED make a longer hunt
// (`PROPERTY_RUNS=2000 PROPERTY_SEED=$RANDOM npx vitest run --project core verifier.property`).
const RUNS = Number(process.env['PROPERTY_RUNS'] ?? 60)
const SEED = Number(process.env['PROPERTY_SEED'] ?? 20261122)

const TTL_MS = 4_000
const MAX_ENTRIES = 3
const NEGATIVE_MAX = 3

type Step =
  | { kind: 'verify'; token: number; via: number }
  | { kind: 'revoke'; token: number; via: number }
  | { kind: 'revokeUpstream'; token: number }
  | { kind: 'invalidate'; token: number; via: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'fault'; fault: 'none' | 'error' | 'down' | 'drop' | 'rateLimit' }

// Tokens 0–2 opaque (lifetimes 2 s, 8 s, 1 h), 3 a JWT (6 s), 4–5 never issued.
const TOKEN_COUNT = 6
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('verify' as const),
      token: fc.nat(TOKEN_COUNT - 1),
      via: fc.nat(1),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('revoke' as const),
      token: fc.nat(2),
      via: fc.nat(1),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('revokeUpstream' as const), token: fc.nat(2) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('invalidate' as const),
      token: fc.nat(TOKEN_COUNT - 1),
      via: fc.nat(1),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.constantFrom(100, 999, 1_000, 2_500, 5_000),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('fault' as const),
      fault: fc.constantFrom(
        'none' as const,
        'error' as const,
        'down' as const,
        'drop' as const,
        'rateLimit' as const,
      ),
    }),
  },
)

const FAULTS = {
  none: {},
  error: { errorRate: 1 },
  down: { down: true },
  drop: { dropRate: 1 },
  rateLimit: { rateLimit: { rate: 1, retryAfterSeconds: 1 } },
} as const

let unknownSeq = 0

test(
  'no step sequence yields a valid result for a revoked, expired or never-issued token',
  async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 5, maxLength: 30, size: 'max' }),
        fc.constantFrom(0, 3_000),
        async (steps, staleIfErrorMs) => {
          fx.emulator.clearFaults()
          const minted = await Promise.all([
            fx.mint({ seconds: 2 }),
            fx.mint({ seconds: 8 }),
            fx.mint({ seconds: 3600 }),
            fx.mint({ seconds: 6, jwt: true }),
          ])
          const tokens = [
            ...minted.map((m) => m.token),
            unknownToken(++unknownSeq),
            unknownToken(++unknownSeq),
          ]
          const bus = memoryRevocationBus()
          const options = {
            cache: {
              ttlMs: TTL_MS,
              maxEntries: MAX_ENTRIES,
              negativeTtlMs: 3_000,
              negativeMaxEntries: NEGATIVE_MAX,
            },
            staleIfErrorMs,
            timeoutMs: 500,
            breaker: { failureThreshold: 2, openMs: 1_500 },
            revocationBus: bus,
            jwt: { jwtKey: await fx.emulator.jwtPublicKey(), clockSkewMs: 0 },
          }
          // Two instances sharing a bus: a revoke through either must hold on both.
          const verifiers = [fx.verifier(options), fx.verifier(options)]
          const revokedViaVerifier = new Set<number>()
          const revokedUpstreamAt = new Map<number, number>()
          const seenRevoked = new Set<string>()

          try {
            for (const s of steps) {
              switch (s.kind) {
                case 'verify': {
                  const t = fx.clock.t
                  const result = await verifiers[s.via]!.verify(tokens[s.token]!).then(
                    (auth) => ({ ok: true as const, auth }),
                    (err: M2MAuthError) => ({ ok: false as const, err }),
                  )
                  if (!result.ok) {
                    expect(result.err.name).toBe('M2MAuthError')
                    if (result.err.code === 'token_revoked') seenRevoked.add(`${s.via}:${s.token}`)
                    break
                  }
                  // Once a verifier has answered "revoked", it may never answer "valid" again.
                  expect(seenRevoked.has(`${s.via}:${s.token}`), 'valid after token_revoked').toBe(
                    false,
                  )
                  const issued = minted[s.token]
                  expect(issued, `never-issued token ${s.token} verified`).toBeDefined()
                  expect(revokedViaVerifier.has(s.token), 'revoked token verified').toBe(false)
                  expect(
                    t < (issued!.expiration ?? Number.POSITIVE_INFINITY),
                    'expired token verified',
                  ).toBe(true)
                  const revokedAt = revokedUpstreamAt.get(s.token)
                  if (revokedAt !== undefined) {
                    expect(
                      t < revokedAt + TTL_MS + staleIfErrorMs,
                      'upstream revocation outlived the bound',
                    ).toBe(true)
                  }
                  expect(result.auth.id).toBe(issued!.id)
                  break
                }
                case 'revoke':
                  await verifiers[s.via]!.revoke(minted[s.token]!.id).then(
                    () => revokedViaVerifier.add(s.token),
                    () => {},
                  )
                  break
                case 'revokeUpstream':
                  if (!revokedUpstreamAt.has(s.token) && !revokedViaVerifier.has(s.token)) {
                    const saved = fx.emulator.faults()
                    fx.emulator.clearFaults()
                    await fx.callerClient.revokeToken({ m2mTokenId: minted[s.token]!.id })
                    fx.emulator.setFaults(saved)
                    revokedUpstreamAt.set(s.token, fx.clock.t)
                  }
                  break
                case 'invalidate':
                  await verifiers[s.via]!.invalidate(tokens[s.token]!)
                  break
                case 'advance':
                  fx.clock.advance(s.ms)
                  break
                case 'fault':
                  fx.emulator.clearFaults()
                  fx.emulator.setFaults(FAULTS[s.fault])
                  break
              }
              for (const v of verifiers) {
                const stats = v.stats()
                expect(stats.entries).toBeLessThanOrEqual(MAX_ENTRIES)
                expect(stats.negativeEntries).toBeLessThanOrEqual(NEGATIVE_MAX)
                expect(stats.inFlight).toBe(0)
              }
            }
          } finally {
            fx.emulator.clearFaults()
            await Promise.all(verifiers.map((v) => fx.release(v)))
            // Nothing here reads the fixture's event log; a long hunt must not keep it all.
            fx.events.length = 0
          }
        },
      ),
      { seed: SEED, numRuns: RUNS },
    )
  },
  2_000 * RUNS,
)
