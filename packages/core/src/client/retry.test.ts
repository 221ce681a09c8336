import { describe, expect, it } from 'vitest'
import { M2MApiError, M2MConnectionError } from '../errors.js'
import { connectionError } from './api-errors.js'
import { backoffDelay, DEFAULT_RETRY, isRetryable, parseRetryAfter, resolveRetry } from './retry.js'

describe('resolveRetry', () => {
  it('fills defaults and lets the call override the client', () => {
    expect(resolveRetry(undefined, undefined)).toEqual(DEFAULT_RETRY)
    expect(resolveRetry({ maxRetries: 5 }, { initialDelayMs: 10 })).toEqual({
      ...DEFAULT_RETRY,
      maxRetries: 5,
      initialDelayMs: 10,
    })
    expect(resolveRetry({ maxRetries: 5 }, { maxRetries: 1 })).toMatchObject({ maxRetries: 1 })
  })

  it('false disables; a call policy re-enables over a client false', () => {
    expect(resolveRetry({ maxRetries: 5 }, false)).toBe(false)
    expect(resolveRetry(false, undefined)).toBe(false)
    expect(resolveRetry(false, { maxRetries: 1 })).toEqual({ ...DEFAULT_RETRY, maxRetries: 1 })
  })
})

describe('backoffDelay', () => {
  it('is full jitter under an exponential ceiling capped at maxDelayMs', () => {
    const policy = { ...DEFAULT_RETRY, initialDelayMs: 100, maxDelayMs: 1000 }
    expect([0, 1, 2, 3, 4].map((n) => backoffDelay(n, policy, () => 0.999999))).toEqual([
      99, 199, 399, 799, 999,
    ])
    expect(backoffDelay(3, policy, () => 0)).toBe(0)
  })
})

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 0, 1)
  it.each([
    ['0', 0],
    ['2', 2000],
    [' 120 ', 120_000],
    [new Date(now + 5000).toUTCString(), 5000],
    [new Date(now - 5000).toUTCString(), 0],
    ['Thursday, 01-Jan-26 00:00:07 GMT', 7000],
    ['-1', undefined],
    ['1.5', undefined],
    ['soon', undefined],
    ['2026-01-01', undefined],
    [undefined, undefined],
  ])('%s → %s', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected)
  })
})

describe('isRetryable', () => {
  const api = (status: number) => new M2MApiError({ status, errors: [] })
  const idempotent = { idempotent: true, unsent: false }
  const create = { idempotent: false, unsent: false }

  it('retries 429 always, 5xx only when idempotent, never other 4xx', () => {
    expect(isRetryable(api(429), DEFAULT_RETRY, create)).toBe(true)
    expect(isRetryable(api(503), DEFAULT_RETRY, idempotent)).toBe(true)
    expect(isRetryable(api(503), DEFAULT_RETRY, create)).toBe(false)
    expect(isRetryable(api(501), DEFAULT_RETRY, idempotent)).toBe(false)
    for (const status of [400, 401, 403, 404, 409, 422]) {
      expect(isRetryable(api(status), DEFAULT_RETRY, idempotent)).toBe(false)
    }
  })

  it('retries connection failures; createToken only when nothing was sent', () => {
    const refused = connectionError(
      'createToken',
      'http://x',
      Object.assign(new Error('x'), { code: 'ECONNREFUSED' }),
    )
    const reset = connectionError(
      'createToken',
      'http://x',
      Object.assign(new Error('x'), { code: 'ECONNRESET' }),
    )
    expect(isRetryable(reset, DEFAULT_RETRY, idempotent)).toBe(true)
    expect(isRetryable(reset, DEFAULT_RETRY, create)).toBe(false)
    expect(isRetryable(refused, DEFAULT_RETRY, { idempotent: false, unsent: true })).toBe(true)
    expect(isRetryable(reset, { ...DEFAULT_RETRY, retryConnectionErrors: false }, idempotent)).toBe(
      false,
    )
  })

  it('never retries timeouts or invalid answers', () => {
    expect(isRetryable(new M2MConnectionError('timeout', 't'), DEFAULT_RETRY, idempotent)).toBe(
      false,
    )
    expect(
      isRetryable(new M2MConnectionError('invalid_response', 'i'), DEFAULT_RETRY, idempotent),
    ).toBe(false)
  })
})
