import { createHmac, timingSafeEqual } from 'node:crypto'
import { type CachedVerification, decodeCachedAuth } from '@m2m-guard/core'
import { RedisTierError } from './errors.js'

/**
 * Wire format of a stored value: `m2mg2.<mac>.<json>`, where `<mac>` is the base64url
 * HMAC-SHA256 of `<key>\n<json>` when an `hmacKey` is set, else `-`. The version prefix makes a
 * foreign value (another app's key under our prefix) a miss instead of a guess; binding the MAC
 * to the key stops a valid identity from being copied under the hash of another token.
 */
const VERSION = 'm2mg2'

/** @internal */
export interface CodecOptions {
  hmacKey: string | undefined
  maxValueBytes: number
}

function mac(hmacKey: string, key: string, json: string): string {
  return createHmac('sha256', hmacKey).update(key).update('\n').update(json).digest('base64url')
}

/** @internal Serialises an entry; throws `value_too_large` past the bound. */
export function encodeEntry(key: string, entry: CachedVerification, options: CodecOptions): string {
  const json = JSON.stringify({
    auth: entry.auth,
    verifiedAt: entry.verifiedAt,
    expiresAt: entry.expiresAt,
  })
  const value = `${VERSION}.${options.hmacKey ? mac(options.hmacKey, key, json) : '-'}.${json}`
  if (Buffer.byteLength(value) > options.maxValueBytes) {
    throw new RedisTierError(
      'value_too_large',
      `Redis set: entry is ${Buffer.byteLength(value)} bytes, over maxValueBytes (${options.maxValueBytes}); not shared`,
    )
  }
  return value
}

function invalid(reason: string): RedisTierError {
  return new RedisTierError('invalid_value', `Redis get: stored value ${reason}; treated as a miss`)
}

/**
 * @internal Parses and validates a stored value. Anything that is not exactly what `encodeEntry`
 * writes throws `invalid_value` (the verifier counts it as a miss and reports it): a corrupted
 * value must never crash a request or admit a token.
 */
export function decodeEntry(key: string, raw: string, options: CodecOptions): CachedVerification {
  if (raw.length > options.maxValueBytes || Buffer.byteLength(raw) > options.maxValueBytes) {
    throw invalid('is over maxValueBytes')
  }
  const first = raw.indexOf('.')
  const second = first < 0 ? -1 : raw.indexOf('.', first + 1)
  if (second < 0 || raw.slice(0, first) !== VERSION) throw invalid('has an unknown format')
  const tag = raw.slice(first + 1, second)
  const json = raw.slice(second + 1)
  if (options.hmacKey) {
    const expected = Buffer.from(mac(options.hmacKey, key, json))
    const actual = Buffer.from(tag)
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      throw invalid('failed its HMAC check')
    }
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch {
    throw invalid('is not JSON')
  }
  if (!isRecord(parsed)) throw invalid('is not an object')
  const expiresAt = parsed['expiresAt']
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
    throw invalid('has no valid expiresAt')
  }
  const verifiedAt = parsed['verifiedAt']
  if (typeof verifiedAt !== 'number' || !Number.isFinite(verifiedAt)) {
    throw invalid('has no valid verifiedAt')
  }
  const auth = decodeCachedAuth(parsed['auth'])
  if (!auth) throw invalid('has no valid identity')
  return { auth, verifiedAt, expiresAt }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
