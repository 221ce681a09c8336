import { describe, expect, it } from 'vitest'
import { M2MApiError, M2MAuthError, M2MConnectionError } from '../errors.js'
import { renderAuthError, toM2MAuthError } from './render.js'

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
}

describe('renderAuthError', () => {
  it('missing_token: 401, a challenge without an error attribute', () => {
    const rendered = renderAuthError(new M2MAuthError('missing_token', 'No token'), {
      realm: 'api',
    })
    expect(rendered).toEqual({
      status: 401,
      headers: { ...JSON_HEADERS, 'www-authenticate': 'Bearer realm="api"' },
      body: { error: 'missing_token', error_description: 'No token' },
      bodyText: '{"error":"missing_token","error_description":"No token"}',
    })
  })

  it.each([
    ['invalid_request', 400, 'invalid_request'],
    ['invalid_token', 401, 'invalid_token'],
    ['token_expired', 401, 'invalid_token'],
    ['token_revoked', 401, 'invalid_token'],
    ['insufficient_scope', 403, 'insufficient_scope'],
  ] as const)('%s: %i with error="%s" and the description', (code, status, attribute) => {
    const rendered = renderAuthError(new M2MAuthError(code, 'Why'), { realm: 'reports' })
    expect(rendered.status).toBe(status)
    expect(rendered.headers).toEqual({
      ...JSON_HEADERS,
      'www-authenticate': `Bearer realm="reports", error="${attribute}", error_description="Why"`,
    })
    expect(rendered.body).toEqual({ error: code, error_description: 'Why' })
  })

  it('verification_unavailable: 503, Retry-After in whole seconds rounded up, no challenge', () => {
    const rendered = renderAuthError(
      new M2MAuthError('verification_unavailable', 'Down', { retryAfterMs: 2100 }),
    )
    expect(rendered.status).toBe(503)
    expect(rendered.headers).toEqual({ ...JSON_HEADERS, 'retry-after': '3' })
    expect(rendered.bodyText).toBe(
      '{"error":"verification_unavailable","error_description":"Down"}',
    )
  })

  it.each([
    [undefined, '1'],
    [0, '1'],
    [1, '1'],
    [-5, '1'],
    [Number.NaN, '1'],
    [60_000, '60'],
    [1500.5, '2'],
    [86_400_000, '86400'],
    [86_400_001, '86400'],
    [1e26, '86400'],
    [Number.MAX_VALUE, '86400'],
    [Number.POSITIVE_INFINITY, '86400'],
    [Number.NEGATIVE_INFINITY, '1'],
  ])('Retry-After for retryAfterMs=%s is %s', (retryAfterMs, header) => {
    const rendered = renderAuthError(
      new M2MAuthError('verification_unavailable', 'Down', { retryAfterMs }),
    )
    expect(rendered.headers['retry-after']).toBe(header)
  })

  it('Retry-After is always delay-seconds: a non-negative integer, at most a day', () => {
    for (const retryAfterMs of [1e-300, 0.4, 999.9, 7e9, 1e21, 1e23, 2 ** 60, 1e308]) {
      const value = renderAuthError(
        new M2MAuthError('verification_unavailable', 'Down', { retryAfterMs }),
      ).headers['retry-after']!
      expect(value).toMatch(/^\d+$/)
      expect(Number(value)).toBeGreaterThanOrEqual(1)
      expect(Number(value)).toBeLessThanOrEqual(86_400)
    }
  })

  it('verifier_misconfigured: 500, no challenge, no Retry-After', () => {
    const rendered = renderAuthError(new M2MAuthError('verifier_misconfigured', 'Bad key'))
    expect(rendered.status).toBe(500)
    expect(rendered.headers).toEqual(JSON_HEADERS)
  })

  it('uses the default realm "api" and escapes quotes, backslashes and line breaks', () => {
    expect(
      renderAuthError(new M2MAuthError('missing_token', 'x')).headers['www-authenticate'],
    ).toBe('Bearer realm="api"')
    const rendered = renderAuthError(
      new M2MAuthError('invalid_token', 'bad "x"\r\nSet-Cookie: a'),
      {
        realm: 'a"b\\c',
      },
    )
    expect(rendered.headers['www-authenticate']).toBe(
      'Bearer realm="a\\"b\\\\c", error="invalid_token", error_description="bad \\"x\\"  Set-Cookie: a"',
    )
    expect(JSON.parse(rendered.bodyText)).toEqual(rendered.body)
  })

  it('fails closed on anything that is not an M2MAuthError: 500, with no internal detail', () => {
    const rendered = renderAuthError(new TypeError('secret internals mt_abc'))
    expect(rendered.status).toBe(500)
    expect(rendered.body).toEqual({
      error: 'verifier_misconfigured',
      error_description:
        'The request could not be authenticated because of an internal error in the server',
    })
    expect(rendered.bodyText).not.toContain('mt_abc')
    expect(renderAuthError('a string').status).toBe(500)
    expect(renderAuthError(undefined).status).toBe(500)
  })
})

describe('toM2MAuthError', () => {
  it('returns an M2MAuthError as is', () => {
    const error = new M2MAuthError('token_revoked', 'Revoked')
    expect(toM2MAuthError(error)).toBe(error)
  })

  it('maps transport failures and 429/5xx to verification_unavailable, keeping the cause', () => {
    const connection = new M2MConnectionError('timeout', 'timed out')
    expect(toM2MAuthError(connection)).toMatchObject({
      code: 'verification_unavailable',
      status: 503,
      cause: connection,
    })
    const limited = new M2MApiError({ status: 429, errors: [], retryAfterMs: 4000 })
    expect(toM2MAuthError(limited)).toMatchObject({
      code: 'verification_unavailable',
      retryAfterMs: 4000,
      cause: limited,
    })
  })

  it('maps other API errors and bugs to verifier_misconfigured (500), keeping the cause', () => {
    const forbidden = new M2MApiError({ status: 401, errors: [] })
    expect(toM2MAuthError(forbidden)).toMatchObject({
      code: 'verifier_misconfigured',
      status: 500,
      cause: forbidden,
    })
  })
})
