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
