import { describe, expect, it } from 'vitest'
import { bearerChallenge, M2MAuthError } from './errors.js'

describe('bearerChallenge', () => {
  it('omits the error attribute when credentials are missing (RFC 6750 §3.1)', () => {
    expect(bearerChallenge('missing_token', 'api')).toBe('Bearer realm="api"')
  })

  it('escapes quotes and backslashes inside quoted values', () => {
    expect(bearerChallenge('invalid_token', 'a"b\\c', 'say "hi"')).toBe(
      'Bearer realm="a\\"b\\\\c", error="invalid_token", error_description="say \\"hi\\""',
    )
  })

  it('gives no challenge for 500 and 503', () => {
    expect(bearerChallenge('verification_unavailable')).toBeUndefined()
    expect(bearerChallenge('verifier_misconfigured')).toBeUndefined()
  })
})

describe('M2MAuthError', () => {
  it('carries status and challenge for its code', () => {
    const err = new M2MAuthError('insufficient_scope', 'Not allowed')
    expect(err.status).toBe(403)
    expect(err.wwwAuthenticate).toBe(
      'Bearer realm="api", error="insufficient_scope", error_description="Not allowed"',
    )
  })
})
