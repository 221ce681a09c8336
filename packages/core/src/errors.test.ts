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

  it('replaces characters a header value cannot hold, so setHeader and Headers never throw', () => {
    const challenge = bearerChallenge(
      'invalid_token',
      'r\u00e9alm',
      'a\r\nSet-Cookie: x\u0000\u65e5\tb',
    )
    expect(challenge).toBe(
      'Bearer realm="r\u00e9alm", error="invalid_token", error_description="a  Set-Cookie: x  \tb"',
    )
    expect(() => new Headers({ 'www-authenticate': challenge as string })).not.toThrow()
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
