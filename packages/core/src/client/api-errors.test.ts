import { describe, expect, it } from 'vitest'
import {
  connectionError,
  decodeApiError,
  networkErrorCode,
  redactor,
  wasNeverSent,
} from './api-errors.js'

describe('redactor', () => {
  it('removes the given secrets and anything key-shaped', () => {
    const redact = redactor(['my-token-value'])
    expect(redact('a my-token-value b sk_live_abcdefghij c ak_0123456789')).toBe(
      'a [redacted] b [redacted] c [redacted]',
    )
    expect(redact('mt_f7f0ba8c3b4843ce7d85fcdd5e71853e is fine')).toBe(
      'mt_f7f0ba8c3b4843ce7d85fcdd5e71853e is fine',
    )
  })
})

describe('networkErrorCode', () => {
  it('finds the code along causes and inside AggregateErrors', () => {
    const refused = Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })
    expect(networkErrorCode(new TypeError('fetch failed', { cause: refused }))).toBe('ECONNREFUSED')
    expect(networkErrorCode(new AggregateError([refused]))).toBe('ECONNREFUSED')
    expect(networkErrorCode(new Error('plain'))).toBeUndefined()
    const loop: { cause?: unknown } = {}
    loop.cause = loop
    expect(networkErrorCode(loop)).toBeUndefined()
  })
})

describe('connectionError', () => {
  it('marks failures before sending (refused, DNS) as never sent, others not', () => {
    const code = (c: string) => Object.assign(new Error(c), { code: c })
    for (const c of ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']) {
      expect(wasNeverSent(connectionError('createToken', 'http://x', code(c)))).toBe(true)
    }
    for (const c of ['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE']) {
      expect(wasNeverSent(connectionError('createToken', 'http://x', code(c)))).toBe(false)
    }
    expect(wasNeverSent(connectionError('createToken', 'http://x', new Error('?')))).toBe(false)
    expect(
      wasNeverSent(connectionError('createToken', 'http://x', code('ECONNREFUSED'), 'body')),
    ).toBe(false)
  })
})

describe('decodeApiError', () => {
  const header = (headers: Record<string, string>) => (name: string) => headers[name]
  it('strips control characters from quoted bodies so they cannot forge log lines', () => {
    const error = decodeApiError({
      operation: 'verifyToken',
      status: 500,
      header: header({ 'content-type': 'text/plain' }),
      text: 'oops\nINFO forged line\r\n',
      retryAfterMs: undefined,
      redact: redactor([]),
    })
    expect(error.message).not.toMatch(/[\r\n]/)
    expect(error.message).toContain('oops INFO forged line')
  })

  it('keeps retryAfterMs and the header trace id', () => {
    const error = decodeApiError({
      operation: 'listTokens',
      status: 429,
      header: header({ 'x-clerk-trace-id': 'abc' }),
      text: '{"errors":[]}',
      retryAfterMs: 2000,
      redact: redactor([]),
    })
    expect(error).toMatchObject({ status: 429, retryAfterMs: 2000, clerkTraceId: 'abc' })
    expect(error.errors[0]!.code).toBe('unexpected_response')
    expect(error.message).toContain('429 Too Many Requests')
  })
})

describe('decodeApiError with sparse entries', () => {
  it('fills missing fields instead of printing undefined', () => {
    const error = decodeApiError({
      operation: 'revokeToken',
      status: 400,
      header: () => undefined,
      text: '{"errors":[{"code":"only_code"},{"message":"m"}]}',
      retryAfterMs: undefined,
      redact: redactor([]),
    })
    expect(error.errors).toEqual([
      { code: 'only_code', message: '', longMessage: '' },
      { code: 'unknown_error', message: 'm', longMessage: 'm' },
    ])
    expect(error.message).toBe('revokeToken: Clerk API answered 400 Bad Request: only_code')
  })
})

describe('decodeApiError meta', () => {
  const decode = (meta: unknown, secrets: string[] = []) =>
    decodeApiError({
      operation: 'verifyToken',
      status: 400,
      header: () => undefined,
      text: JSON.stringify({ errors: [{ code: 'bad', message: 'm', meta }] }),
      retryAfterMs: undefined,
      redact: redactor(secrets),
    }).errors[0]!.meta

  function nest(depth: number, inner: unknown): unknown {
    let value = inner
    for (let i = 0; i < depth; i++) value = { level: value }
    return value
  }

  it('redacts secrets at any depth: what is nested too deep becomes a marker', () => {
    const secret = 'mt_0123456789abcdefOPAQUEsecretTokenValue'
    const key = 'sk_test_Sup3rS3cretKeyValueThatMustNeverLeak0123'
    for (const depth of [1, 7, 8, 9, 10, 30]) {
      const meta = decode(nest(depth, { token: secret, key, list: [secret] }), [secret])
      const said = JSON.stringify(meta)
      expect(said).not.toContain(secret)
      expect(said).not.toContain(key)
    }
    // Shallow values are kept (redacted), not replaced by the marker.
    expect(decode({ a: { token: secret, n: 1, ok: true, none: null } }, [secret])).toEqual({
      a: { token: '[redacted]', n: 1, ok: true, none: null },
    })
    expect(JSON.stringify(decode(nest(30, 'x')))).toContain('"[nested too deep]"')
  })

  it('redacts secrets used as property names', () => {
    const key = 'sk_live_0123456789abcdef'
    expect(JSON.stringify(decode({ [key]: 'x', nested: { [key]: 1 } }))).not.toContain(key)
  })
})
