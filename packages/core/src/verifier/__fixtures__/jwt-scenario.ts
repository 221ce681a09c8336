/**
 * One scenario for every runtime that serves the test worker (workerd, Bun): JWT-format tokens
 * are verified locally, with one JWKS fetch for both tokens and none to the verify endpoint, and
 * a tampered signature is refused.
 */
import { expect } from 'vitest'
import type { Fixture } from './emulator.js'

/**
 * Sends `GET path` to the worker under test and returns its JSON answer.
 *
 * @example
 * const get: WorkerGet = async (path) => (await fetch(`${url}${path}`)).json()
 */
export type WorkerGet = (path: string) => Promise<Record<string, unknown>>

/**
 * Plays the JWT scenario against one runtime's worker.
 *
 * @example
 * test('verifies JWT-format tokens locally', () => expectJwtsVerifiedLocally(fx, get))
 */
export async function expectJwtsVerifiedLocally(fx: Fixture, get: WorkerGet): Promise<void> {
  const a = await fx.mint({ jwt: true })
  const b = await fx.mint({ jwt: true })
  const verifiesBefore = fx.upstreamVerifies()
  const jwksBefore = fx.jwksFetches()
  expect(await get(`/verify?token=${a.token}`)).toEqual({ id: a.id })
  expect(await get(`/verify?token=${b.token}`)).toEqual({ id: b.id })
  expect(await get(`/verify?token=${a.token}`)).toEqual({ id: a.id })
  // One JWKS fetch serves both tokens; no token went to the verify endpoint.
  expect(fx.jwksFetches() - jwksBefore).toBe(1)
  expect(fx.upstreamVerifies()).toBe(verifiesBefore)
  const [h, p, sig] = a.token.split('.') as [string, string, string]
  const tampered = `${h}.${p}.${sig.slice(0, -4)}${sig.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`
  expect(await get(`/verify?token=${tampered}`)).toEqual({ error: 'invalid_token' })
}
