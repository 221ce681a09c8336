import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  authorizationOfNodeRequest,
  MAX_AUTHORIZATION_LENGTH,
  parseAuthorization,
  parseBearerToken,
} from './authorization.js'

const TOKEN = 'mt_0123456789abcdef0123456789abcdef'

function invalid(value: Parameters<typeof parseAuthorization>[0]) {
  const parsed = parseAuthorization(value)
  if (parsed.kind !== 'error') throw new Error(`expected an error, got ${parsed.kind}`)
  return parsed.error
}

describe('parseAuthorization', () => {
  it.each([
    ['Bearer', `Bearer ${TOKEN}`],
    ['lower-case scheme', `bearer ${TOKEN}`],
    ['upper-case scheme', `BEARER ${TOKEN}`],
    ['mixed-case scheme', `bEaReR ${TOKEN}`],
    ['a single-element array', [`Bearer ${TOKEN}`]],
  ])('reads a token: %s', (_name, value) => {
    expect(parseAuthorization(value)).toEqual({ kind: 'token', token: TOKEN })
  })

  it('accepts every b64token character and trailing padding (RFC 6750 §2.1)', () => {
    const jwtish = 'eyJhbGciOi.JIUzI1-NiJ9_~+/abc=='
    expect(parseAuthorization(`Bearer ${jwtish}`)).toEqual({ kind: 'token', token: jwtish })
  })

  it('accepts a value of exactly the maximum length', () => {
    const token = 'a'.repeat(MAX_AUTHORIZATION_LENGTH - 'Bearer '.length)
    expect(parseAuthorization(`Bearer ${token}`)).toEqual({ kind: 'token', token })
  })

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['an empty array', []],
    ['a Basic credential', 'Basic dXNlcjpwYXNz'],
    ['a Digest credential', 'Digest username="a", realm="b"'],
    ['a scheme alone', 'Negotiate'],
    ['a scheme that starts like Bearer', `Bearerx ${TOKEN}`],
  ])('is no Bearer credentials (missing_token, RFC 6750 §3.1): %s', (_name, value) => {
    expect(parseAuthorization(value)).toEqual({ kind: 'none' })
  })

  it.each([
    ['an empty value', '', 'The Authorization header is empty'],
    ['Bearer without a token', 'Bearer', 'The Bearer credentials are missing a token'],
    ['Bearer and a space', 'Bearer ', 'The Bearer credentials are missing a token'],
    [
      'two spaces',
      `Bearer  ${TOKEN}`,
      'Expected exactly one space after "Bearer" and a single token',
    ],
    [
      'a tab',
      `Bearer\t${TOKEN}`,
      'The Authorization header does not start with an authentication scheme',
    ],
    [
      'two tokens',
      `Bearer ${TOKEN} ${TOKEN}`,
      'Expected exactly one space after "Bearer" and a single token',
    ],
    [
      'a trailing space',
      `Bearer ${TOKEN} `,
      'Expected exactly one space after "Bearer" and a single token',
    ],
    [
      'a leading space',
      ` Bearer ${TOKEN}`,
      'The Authorization header does not start with an authentication scheme',
    ],
    ['a quote', `Bearer ${TOKEN}"`, 'The Bearer token contains characters not allowed by RFC 6750'],
    [
      'a non-ASCII letter',
      `Bearer ${TOKEN}é`,
      'The Bearer token contains characters not allowed by RFC 6750',
    ],
    [
      'padding in the middle',
      'Bearer abc=def',
      'The Bearer token contains characters not allowed by RFC 6750',
    ],
    ['only padding', 'Bearer ==', 'The Bearer token contains characters not allowed by RFC 6750'],
    [
      'a NUL byte',
      `Bearer ${TOKEN}\0`,
      'The Bearer token contains characters not allowed by RFC 6750',
    ],
    [
      'a newline',
      `Bearer ${TOKEN}\nX: y`,
      'Expected exactly one space after "Bearer" and a single token',
    ],
    [
      'duplicates joined by Node or fetch',
      `Bearer ${TOKEN}, Bearer ${TOKEN}`,
      'The Authorization header was sent more than once',
    ],
    [
      'duplicates of two schemes joined',
      `Basic abc, Bearer ${TOKEN}`,
      'The Authorization header was sent more than once',
    ],
    [
      'a repeated header (array)',
      [`Bearer ${TOKEN}`, `Bearer ${TOKEN}`],
      'The Authorization header was sent more than once',
    ],
    [
      'over the maximum length',
      `Bearer ${'a'.repeat(MAX_AUTHORIZATION_LENGTH)}`,
      `The Authorization header is longer than ${MAX_AUTHORIZATION_LENGTH} characters`,
    ],
  ])('is invalid_request (400): %s', (_name, value, description) => {
    const error = invalid(value)
    expect(error.code).toBe('invalid_request')
    expect(error.status).toBe(400)
    expect(error.description).toBe(description)
  })

  it('never puts the token (or any part of it) in the description', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 6, maxLength: 200 }), (junk) => {
        const secret = `mt_${junk}`
        const parsed = parseAuthorization(`Bearer ${secret}`)
        if (parsed.kind === 'error') {
          expect(parsed.error.description).not.toContain(secret)
          expect(parsed.error.message).not.toContain(secret)
        }
      }),
    )
  })

  it('reads back every RFC 6750 b64token, whatever the scheme casing', () => {
    const b64token = fc.stringMatching(/^[A-Za-z0-9\-._~+/]{1,300}={0,2}$/)
    const scheme = fc.constantFrom('Bearer', 'bearer', 'BEARER', 'BeArEr')
    fc.assert(
      fc.property(scheme, b64token, (s, token) => {
        expect(parseAuthorization(`${s} ${token}`)).toEqual({ kind: 'token', token })
      }),
    )
  })

  it('never throws, whatever the header', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(fc.string())), (value) => {
        expect(['none', 'token', 'error']).toContain(parseAuthorization(value).kind)
      }),
    )
  })
})

describe('parseBearerToken', () => {
  it('reads a token and treats null/undefined as no credentials', () => {
    expect(parseBearerToken(TOKEN)).toEqual({ kind: 'token', token: TOKEN })
    expect(parseBearerToken(undefined)).toEqual({ kind: 'none' })
    expect(parseBearerToken(null)).toEqual({ kind: 'none' })
  })

  it.each([
    ['', 'The Bearer token is empty'],
    ['a b', 'The Bearer token contains characters not allowed by RFC 6750'],
    ['a'.repeat(MAX_AUTHORIZATION_LENGTH + 1), 'The Bearer token is longer than 4096 characters'],
  ])('rejects a bad token as invalid_request: %#', (token, description) => {
    const parsed = parseBearerToken(token)
    expect(parsed.kind === 'error' && parsed.error.code).toBe('invalid_request')
    expect(parsed.kind === 'error' && parsed.error.description).toBe(description)
  })
})

describe('authorizationOfNodeRequest', () => {
  it('returns every raw value, because req.headers keeps only the first duplicate', () => {
    expect(
      authorizationOfNodeRequest({
        headers: { authorization: 'Bearer a' },
        rawHeaders: ['Host', 'x', 'Authorization', 'Bearer a', 'authorization', 'Bearer b'],
      }),
    ).toEqual(['Bearer a', 'Bearer b'])
  })

  it('returns a single value as a one-element list', () => {
    expect(
      authorizationOfNodeRequest({
        headers: { authorization: 'Bearer a' },
        rawHeaders: ['AUTHORIZATION', 'Bearer a'],
      }),
    ).toEqual(['Bearer a'])
  })

  it('falls back to headers without rawHeaders, and to undefined without either', () => {
    expect(authorizationOfNodeRequest({ headers: { authorization: 'Bearer a' } })).toBe('Bearer a')
    expect(authorizationOfNodeRequest({ headers: {}, rawHeaders: ['Host', 'x'] })).toBeUndefined()
  })
})
