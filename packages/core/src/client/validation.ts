/**
 * Parameter checks run before any request, so a mistake fails fast with a message naming the
 * parameter. Messages never echo a string value: a token passed in the wrong place must not leak.
 */
import type {
  CreateTokenParams,
  ListAllTokensParams,
  ListTokensParams,
  RequestOptions,
  RetryOptions,
  RevokeTokenParams,
  VerifyTokenParams,
} from '../types.js'

/**
 * A machine id, as the spec's pattern for `subject` (spec/clerk-bapi-m2m.yml).
 *
 * @example
 * SUBJECT_PATTERN.test('mch_2yGjV4Mq0c9gXn5Fh2bWkT1pRsA') // true
 */
export const SUBJECT_PATTERN: RegExp = /^mch_\w{27}$/
/**
 * A token id, as the spec's pattern for `m2m_token_id` (spec/clerk-bapi-m2m.yml).
 *
 * @example
 * M2M_TOKEN_ID_PATTERN.test('mt_0123456789abcdef0123456789abcdef') // true
 */
export const M2M_TOKEN_ID_PATTERN: RegExp = /^mt_[0-9A-Fa-f]{32}$/

type Bag = Record<string, unknown>

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'number') return String(value)
  return `a ${typeof value}`
}

function typeError(where: string, name: string, expected: string, value: unknown): TypeError {
  return new TypeError(`${where}: \`${name}\` must be ${expected}, got ${describe(value)}`)
}

function rangeError(where: string, name: string, expected: string, value: unknown): RangeError {
  return new RangeError(`${where}: \`${name}\` must be ${expected}, got ${describe(value)}`)
}

function snakeToCamel(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
}

function checkBag(where: string, name: string, value: unknown, allowed: readonly string[]): Bag {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw typeError(where, name, 'an object', value)
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      const camel = snakeToCamel(key)
      const hint = camel !== key && allowed.includes(camel) ? ` (did you mean \`${camel}\`?)` : ''
      throw new TypeError(
        `${where}: unknown parameter \`${key}\`${hint}; expected one of ${allowed.join(', ')}`,
      )
    }
  }
  return value as Bag
}

function checkBoolean(where: string, name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw typeError(where, name, 'a boolean', value)
  }
}

function checkIntegerInRange(
  where: string,
  name: string,
  value: unknown,
  min: number,
  max: number,
): void {
  if (value === undefined) return
  if (typeof value !== 'number') throw typeError(where, name, 'a number', value)
  if (!Number.isInteger(value) || value < min || value > max) {
    const expected =
      max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`
    throw rangeError(where, name, expected, value)
  }
}

function checkPattern(where: string, name: string, value: unknown, pattern: RegExp, what: string) {
  if (typeof value !== 'string') throw typeError(where, name, what, value)
  if (!pattern.test(value)) {
    throw new TypeError(`${where}: \`${name}\` must be ${what} (${pattern.source})`)
  }
}

function isPlainObject(value: unknown): value is Bag {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

const CREATE_KEYS = [
  'secondsUntilExpiration',
  'claims',
  'tokenFormat',
  'minRemainingTtlSeconds',
] as const

/**
 * Checks `createToken` parameters.
 *
 * @throws {TypeError | RangeError} naming the parameter.
 * @example
 * validateCreateTokenParams({ secondsUntilExpiration: 60 })
 */
export function validateCreateTokenParams(params: unknown): CreateTokenParams {
  const where = 'createToken'
  if (params === undefined) return {}
  const p = checkBag(where, 'params', params, CREATE_KEYS)
  const seconds = p.secondsUntilExpiration
  if (seconds !== undefined && seconds !== null) {
    if (typeof seconds !== 'number') {
      throw typeError(where, 'secondsUntilExpiration', 'a number or null', seconds)
    }
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw rangeError(where, 'secondsUntilExpiration', 'a finite number > 0', seconds)
    }
  }
  if (p.claims !== undefined && p.claims !== null && !isPlainObject(p.claims)) {
    throw typeError(where, 'claims', 'a plain object or null', p.claims)
  }
  if (p.tokenFormat !== undefined && p.tokenFormat !== 'opaque' && p.tokenFormat !== 'jwt') {
    throw new TypeError(`${where}: \`tokenFormat\` must be 'opaque' or 'jwt'`)
  }
  const minTtl = p.minRemainingTtlSeconds
  checkIntegerInRange(where, 'minRemainingTtlSeconds', minTtl, 0, Number.MAX_SAFE_INTEGER)
  // The API rejects a reuse threshold at or above the lifetime (no fresh token could satisfy it);
  // with an explicit lifetime we can say so before the round trip.
  if (typeof minTtl === 'number' && typeof seconds === 'number' && minTtl >= seconds) {
    throw new RangeError(
      `${where}: \`minRemainingTtlSeconds\` (${minTtl}) must be less than \`secondsUntilExpiration\` (${seconds})`,
    )
  }
  return p as CreateTokenParams
}

function checkListFilters(where: string, p: Bag): void {
  checkPattern(where, 'subject', p.subject, SUBJECT_PATTERN, 'a machine ID (mch_…)')
  checkBoolean(where, 'revoked', p.revoked)
  checkBoolean(where, 'expired', p.expired)
}

/**
 * Checks `listTokens` parameters.
 *
 * @throws {TypeError | RangeError} naming the parameter.
 * @example
 * validateListTokensParams({ subject: 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk', limit: 50 })
 */
export function validateListTokensParams(params: unknown): ListTokensParams {
  const where = 'listTokens'
  const p = checkBag(where, 'params', params, ['subject', 'revoked', 'expired', 'limit', 'offset'])
  checkListFilters(where, p)
  checkIntegerInRange(where, 'limit', p.limit, 1, 100)
  checkIntegerInRange(where, 'offset', p.offset, 0, Number.MAX_SAFE_INTEGER)
  return p as unknown as ListTokensParams
}

/**
 * Checks `listAllTokens` parameters.
 *
 * @throws {TypeError | RangeError} naming the parameter.
 * @example
 * validateListAllTokensParams({ subject: 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk' })
 */
export function validateListAllTokensParams(params: unknown): ListAllTokensParams {
  const where = 'listAllTokens'
  const p = checkBag(where, 'params', params, ['subject', 'revoked', 'expired', 'pageSize'])
  checkListFilters(where, p)
  checkIntegerInRange(where, 'pageSize', p.pageSize, 1, 100)
  return p as unknown as ListAllTokensParams
}

/**
 * Checks `revokeToken` parameters.
 *
 * @throws {TypeError} naming the parameter.
 * @example
 * validateRevokeTokenParams({ m2mTokenId: 'mt_f7f0ba8c3b4843ce7d85fcdd5e71853e' })
 */
export function validateRevokeTokenParams(params: unknown): RevokeTokenParams {
  const where = 'revokeToken'
  const p = checkBag(where, 'params', params, ['m2mTokenId', 'revocationReason'])
  checkPattern(where, 'm2mTokenId', p.m2mTokenId, M2M_TOKEN_ID_PATTERN, 'a token ID (mt_ + 32 hex)')
  const reason = p.revocationReason
  if (reason !== undefined && reason !== null && typeof reason !== 'string') {
    throw typeError(where, 'revocationReason', 'a string or null', reason)
  }
  return p as unknown as RevokeTokenParams
}

/**
 * Checks `verifyToken` parameters.
 *
 * @throws {TypeError} naming the parameter (never echoing the token).
 * @example
 * validateVerifyTokenParams({ token: 'mt_…' })
 */
export function validateVerifyTokenParams(params: unknown): VerifyTokenParams {
  const where = 'verifyToken'
  const p = checkBag(where, 'params', params, ['token'])
  if (typeof p.token !== 'string' || p.token.length === 0) {
    throw new TypeError(
      `${where}: \`token\` must be a non-empty string, got ${typeof p.token === 'string' ? 'an empty string' : describe(p.token)}`,
    )
  }
  return p as unknown as VerifyTokenParams
}

/**
 * Checks a retry policy (client option or per call).
 *
 * @throws {TypeError | RangeError} naming the option.
 * @example
 * validateRetryOptions('createM2MClient', { maxRetries: 3 })
 */
export function validateRetryOptions(where: string, retry: unknown): RetryOptions | false {
  if (retry === false) return false
  const r = checkBag(where, 'retry', retry, [
    'maxRetries',
    'initialDelayMs',
    'maxDelayMs',
    'retryConnectionErrors',
  ])
  checkIntegerInRange(where, 'retry.maxRetries', r.maxRetries, 0, 100)
  for (const name of ['initialDelayMs', 'maxDelayMs'] as const) {
    const value = r[name]
    if (value === undefined) continue
    if (typeof value !== 'number') throw typeError(where, `retry.${name}`, 'a number', value)
    if (!Number.isFinite(value) || value < 0) {
      throw rangeError(where, `retry.${name}`, 'a finite number >= 0', value)
    }
  }
  checkBoolean(where, 'retry.retryConnectionErrors', r.retryConnectionErrors)
  return r as RetryOptions
}

/**
 * Checks a timeout in ms.
 *
 * @throws {TypeError | RangeError} naming the option.
 * @example
 * validateTimeout('verifyToken', 1000)
 */
export function validateTimeout(where: string, timeoutMs: unknown): number {
  if (typeof timeoutMs !== 'number') throw typeError(where, 'timeoutMs', 'a number', timeoutMs)
  // setTimeout overflows above 2^31-1 ms and would fire at once.
  if (!(timeoutMs > 0) || timeoutMs > 2_147_483_647) {
    throw rangeError(where, 'timeoutMs', 'a number of ms from 1 to 2147483647', timeoutMs)
  }
  return timeoutMs
}

/**
 * Checks the per-call options.
 *
 * @throws {TypeError | RangeError} naming the option.
 * @example
 * validateRequestOptions('verifyToken', { timeoutMs: 1000 })
 */
export function validateRequestOptions(where: string, options: unknown): RequestOptions {
  if (options === undefined) return {}
  const o = checkBag(where, 'options', options, ['signal', 'timeoutMs', 'retry'])
  if (o.signal !== undefined && !isAbortSignal(o.signal)) {
    throw typeError(where, 'signal', 'an AbortSignal', o.signal)
  }
  if (o.timeoutMs !== undefined) validateTimeout(where, o.timeoutMs)
  if (o.retry !== undefined) validateRetryOptions(where, o.retry)
  return o as RequestOptions
}

function isAbortSignal(value: unknown): value is AbortSignal {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as AbortSignal).aborted === 'boolean' &&
    typeof (value as AbortSignal).addEventListener === 'function'
  )
}
