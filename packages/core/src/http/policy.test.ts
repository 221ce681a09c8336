import { describe, expect, it } from 'vitest'
import { unhandledRejectionsOf } from '../../test/support/unhandled.js'
import type { M2MAuth } from '../verifier/types.js'
import { assertValidPolicy, checkPolicy } from './policy.js'

const auth: M2MAuth = {
  tokenType: 'm2m_token',
  format: 'opaque',
  id: 'mt_00000000000000000000000000000001',
  subject: 'mch_caller',
  scopes: ['mch_receiver'],
  claims: { tenant: 'acme', roles: ['read', 'write'], meta: { tier: 'gold' }, zero: 0 },
  expiration: null,
}

describe('checkPolicy', () => {
  it('allows when there is no policy', () => {
    expect(checkPolicy(auth, {})).toBeNull()
  })

  it('allowedSubjects: allows a listed subject, denies others with insufficient_scope', () => {
    expect(checkPolicy(auth, { allowedSubjects: ['mch_other', 'mch_caller'] })).toBeNull()
    const denied = checkPolicy(auth, { allowedSubjects: ['mch_other'] })
    expect(denied).toMatchObject({
      code: 'insufficient_scope',
      status: 403,
      description: 'Machine mch_caller is not allowed to call this resource',
    })
  })

  it.each([
    [{ tenant: 'acme' }],
    [{ tenant: 'acme', zero: 0 }],
    [{ roles: ['read', 'write'] }],
    [{ meta: { tier: 'gold' } }],
  ])('requireClaims object: allows %j', (requireClaims) => {
    expect(checkPolicy(auth, { requireClaims })).toBeNull()
  })

  it.each([
    [{ tenant: 'other' }],
    [{ tenant: 'acme', missing: 'x' }],
    [{ missing: undefined }],
    [{ zero: false }],
    [{ zero: '0' }],
    [{ roles: ['read'] }],
    [{ roles: ['write', 'read'] }],
    [{ meta: { tier: 'gold', extra: 1 } }],
    [{ meta: {} }],
    [{ toString: Object.prototype.toString }],
  ])('requireClaims object: denies %j', (requireClaims) => {
    expect(checkPolicy(auth, { requireClaims })?.code).toBe('insufficient_scope')
  })

  it('requireClaims object: denies a token without claims', () => {
    expect(
      checkPolicy({ ...auth, claims: null }, { requireClaims: { tenant: 'acme' } }),
    ).toMatchObject({
      code: 'insufficient_scope',
      description: "The token's claims do not meet the requirements of this resource",
    })
  })

  it('requireClaims predicate: receives claims and auth; only `true` allows', () => {
    const seen: unknown[] = []
    expect(
      checkPolicy(auth, {
        requireClaims: (claims, a) => {
          seen.push(claims, a)
          return claims?.tenant === 'acme'
        },
      }),
    ).toBeNull()
    expect(seen).toEqual([auth.claims, auth])
    expect(checkPolicy(auth, { requireClaims: () => false })?.code).toBe('insufficient_scope')
    // A truthy non-boolean must not open the door.
    const truthy = (() => 'yes') as unknown as () => boolean
    expect(checkPolicy(auth, { requireClaims: truthy })?.code).toBe('insufficient_scope')
  })

  it('an async predicate is a server bug: it throws (the guard answers 500), never allows', async () => {
    const asyncTrue = (async () => true) as unknown as () => boolean
    const asyncThrows = (async () => {
      throw new Error('lookup failed')
    }) as unknown as () => boolean
    const unhandled = await unhandledRejectionsOf(async () => {
      expect(() => checkPolicy(auth, { requireClaims: asyncTrue })).toThrow(
        new TypeError('requireClaims returned a promise; the predicate must be synchronous'),
      )
      expect(() => checkPolicy(auth, { requireClaims: asyncThrows })).toThrow(TypeError)
    })
    expect(unhandled).toEqual([])
  })

  it('checks subjects before claims', () => {
    expect(
      checkPolicy(auth, { allowedSubjects: ['mch_x'], requireClaims: { tenant: 'x' } })
        ?.description,
    ).toBe('Machine mch_caller is not allowed to call this resource')
  })
})

describe('assertValidPolicy', () => {
  it.each([
    [null, 'where: the policy must be an object'],
    [
      { allowedSubjects: 'mch_a' },
      'where: allowedSubjects must be an array of machine ids (mch_…)',
    ],
    [
      { allowedSubjects: [] },
      'where: allowedSubjects is empty, so no caller could pass; omit it to allow every machine',
    ],
    [
      { allowedSubjects: ['mch_a', ''] },
      'where: allowedSubjects must contain only non-empty strings',
    ],
    [
      { requireClaims: 5 },
      'where: requireClaims must be an object of expected claim values or a predicate function',
    ],
    [
      { requireClaims: ['a'] },
      'where: requireClaims must be an object of expected claim values or a predicate function',
    ],
    [{ optional: 'yes' }, 'where: optional must be a boolean'],
  ])('rejects %j', (policy, message) => {
    expect(() => assertValidPolicy(policy, 'where')).toThrow(new TypeError(message))
  })

  it('accepts a valid policy', () => {
    expect(() =>
      assertValidPolicy({ allowedSubjects: ['mch_a'], requireClaims: () => true, optional: true }),
    ).not.toThrow()
  })
})
