/**
 * Wire encoding: camelCase parameters to the spec's snake_case bodies and queries, and the spec's
 * snake_case responses back to typed camelCase objects. Decoding is strict about types and
 * lenient about extra fields, so a newer API cannot break an older client.
 */
import type {
  CreateTokenParams,
  ListTokensParams,
  M2MClaims,
  M2MToken,
  M2MTokenList,
  M2MTokenWithSecret,
  RevokeTokenParams,
} from '../types.js'

/**
 * The JSON body of `POST /m2m_tokens`; only the parameters given are sent.
 *
 * @example
 * encodeCreateToken({ secondsUntilExpiration: 60 }) // { seconds_until_expiration: 60 }
 */
export function encodeCreateToken(params: CreateTokenParams): Record<string, unknown> {
  const body: Record<string, unknown> = {}
  if (params.tokenFormat !== undefined) body.token_format = params.tokenFormat
  if (params.secondsUntilExpiration !== undefined) {
    body.seconds_until_expiration = params.secondsUntilExpiration
  }
  if (params.claims !== undefined) body.claims = params.claims
  if (params.minRemainingTtlSeconds !== undefined) {
    body.min_remaining_ttl_seconds = params.minRemainingTtlSeconds
  }
  return body
}

/**
 * The query string of `GET /m2m_tokens`, with its leading `?`.
 *
 * @example
 * encodeListQuery({ subject: 'mch_…', limit: 5 }) // '?subject=mch_…&limit=5'
 */
export function encodeListQuery(params: ListTokensParams): string {
  const query = new URLSearchParams({ subject: params.subject })
  if (params.revoked !== undefined) query.set('revoked', String(params.revoked))
  if (params.expired !== undefined) query.set('expired', String(params.expired))
  if (params.limit !== undefined) query.set('limit', String(params.limit))
  if (params.offset !== undefined) query.set('offset', String(params.offset))
  return `?${query.toString()}`
}

/**
 * The JSON body of `POST /m2m_tokens/{id}/revoke`.
 *
 * @example
 * encodeRevoke({ m2mTokenId: 'mt_…', revocationReason: 'rotated' }) // { revocation_reason: 'rotated' }
 */
export function encodeRevoke(params: RevokeTokenParams): Record<string, unknown> {
  return params.revocationReason === undefined ? {} : { revocation_reason: params.revocationReason }
}

/**
 * Thrown when a 2xx body is not the shape the spec promises; the client maps it to `invalid_response`.
 *
 * @example
 * expect(() => decodeToken({})).toThrow(DecodeError)
 */
export class DecodeError extends Error {
  override name = 'DecodeError'
}

type Json = Record<string, unknown>

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function field<T>(
  source: Json,
  key: string,
  check: (value: unknown) => value is T,
  what: string,
): T {
  const value = source[key]
  if (!check(value)) throw new DecodeError(`\`${key}\` is not ${what}`)
  return value
}

const isString = (v: unknown): v is string => typeof v === 'string'
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean'
const isStringOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string'
const isNumberOrNull = (v: unknown): v is number | null => v === null || isNumber(v)

/**
 * Decodes one `machine_to_machine_token` object.
 *
 * @throws {DecodeError} when a field is missing or mistyped.
 * @example
 * decodeToken(JSON.parse(body))
 */
export function decodeToken(value: unknown): M2MToken {
  if (!isObject(value)) throw new DecodeError('the token is not a JSON object')
  if (value.object !== 'machine_to_machine_token') {
    throw new DecodeError('`object` is not "machine_to_machine_token"')
  }
  // The spec gives `scopes` a default of [] and `claims` is nullable: tolerate their absence.
  const scopes = value.scopes ?? []
  if (!Array.isArray(scopes) || !scopes.every(isString)) {
    throw new DecodeError('`scopes` is not an array of strings')
  }
  // The spec types `claims` as any JSON value. Tokens minted through this client carry an object,
  // but one minted elsewhere may not: pass it through, so a valid token is never refused (or
  // answered 503) over the shape of its metadata.
  const claims = value.claims ?? null
  return {
    object: 'machine_to_machine_token',
    id: field(value, 'id', isString, 'a string'),
    subject: field(value, 'subject', isString, 'a string'),
    claims: claims as M2MClaims | null,
    scopes: [...scopes],
    revoked: field(value, 'revoked', isBoolean, 'a boolean'),
    revocationReason: field(value, 'revocation_reason', isStringOrNull, 'a string or null'),
    expired: field(value, 'expired', isBoolean, 'a boolean'),
    expiration: field(value, 'expiration', isNumberOrNull, 'a number or null'),
    lastUsedAt: field(value, 'last_used_at', isNumberOrNull, 'a number or null'),
    createdAt: field(value, 'created_at', isNumber, 'a number'),
    updatedAt: field(value, 'updated_at', isNumber, 'a number'),
  }
}

/**
 * Decodes the `createToken` answer: the token record plus its secret.
 *
 * @throws {DecodeError} when a field is missing or mistyped.
 * @example
 * decodeCreatedToken(JSON.parse(body)).token
 */
export function decodeCreatedToken(value: unknown): M2MTokenWithSecret {
  const token = decodeToken(value)
  return { ...token, token: field(value as Json, 'token', isString, 'a string') }
}

/**
 * Decodes a `listTokens` page.
 *
 * @throws {DecodeError} when a field is missing or mistyped.
 * @example
 * decodeTokenList(JSON.parse(body)).totalCount
 */
export function decodeTokenList(value: unknown): M2MTokenList {
  if (!isObject(value)) throw new DecodeError('the page is not a JSON object')
  const items = value.m2m_tokens
  if (!Array.isArray(items)) throw new DecodeError('`m2m_tokens` is not an array')
  const totalCount = field(value, 'total_count', isNumber, 'a number')
  return { m2mTokens: items.map(decodeToken), totalCount }
}
