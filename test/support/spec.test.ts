import { describe, expect, it } from 'vitest'
import {
  assertClerkErrors,
  assertRequestMatchesSpec,
  assertResponseMatchesSpec,
  operations,
} from './spec.js'

const token = {
  object: 'machine_to_machine_token',
  id: 'mt_f7f0ba8c3b4843ce7d85fcdd5e71853e',
  subject: 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk',
  claims: null,
  scopes: [],
  revoked: false,
  revocation_reason: null,
  expired: false,
  expiration: 1716883200000,
  last_used_at: null,
  created_at: 1716883200000,
  updated_at: 1716883200000,
}

describe('spec validator', () => {
  it('knows the four M2M operations', () => {
    for (const id of ['createM2MToken', 'getM2MTokens', 'revokeM2MToken', 'verifyM2MToken']) {
      expect(operations.has(id)).toBe(true)
    }
  })

  it('accepts a valid verify response and rejects extra properties', () => {
    expect(() => assertResponseMatchesSpec('verifyM2MToken', 200, token)).not.toThrow()
    expect(() => assertResponseMatchesSpec('verifyM2MToken', 200, { ...token, extra: 1 })).toThrow(
      /additional/,
    )
  })

  it('holds request bodies to additionalProperties: false and exclusiveMinimum', () => {
    expect(() =>
      assertRequestMatchesSpec('createM2MToken', { seconds_until_expiration: 60 }),
    ).not.toThrow()
    expect(() =>
      assertRequestMatchesSpec('createM2MToken', { seconds_until_expiration: 0 }),
    ).toThrow()
    expect(() => assertRequestMatchesSpec('verifyM2MToken', { token: 'x', other: 1 })).toThrow()
  })

  it('validates Clerk error bodies and the Machines responses through $ref', () => {
    expect(() =>
      assertClerkErrors({ errors: [{ code: 'x', message: 'y', long_message: 'z' }] }),
    ).not.toThrow()
    expect(() => assertClerkErrors({ errors: [{ code: 'x' }] })).toThrow()
    expect(() =>
      assertResponseMatchesSpec('GetMachineSecretKey', 200, {
        object: 'machine_secret_key',
        secret: 'ak_x',
      }),
    ).not.toThrow()
  })
})
