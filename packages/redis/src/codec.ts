import { createHmac, timingSafeEqual } from 'node:crypto'
import { type CachedVerification, decodeCachedAuth } from '@m2m-guard/core'
import { RedisTierError } from './errors.js'

/**
 * Wire format of a stored value: `m2mg2.<mac>.<json>`, where `<mac>` is the base64url
 * HMAC-SHA256 of `<key>\n<json>` under the first `hmacKey` secret when one is set, else `-`. A
 * reader accepts the MAC of any of its secrets, so keys rotate without a new format. The version
 * prefix makes a foreign value (another app's key under our prefix) a miss instead of a guess;
 * binding the MAC to the key stops a valid identity from being copied under the hash of another
 * token.
 */
const VERSION = 'm2mg2'

/** @internal */
export interface CodecOptions {
  /** The secrets as `checkHmacKey` returns them (the first signs, any verifies); none: unsigned. */
  hmacKeys: readonly string[]
  maxValueBytes: number
}

/**
 * @internal Validates the `hmacKey` option of the store and the bus, and returns its secrets in
 * order (a copy: the caller's array may change later), or `undefined` without one. A single
 * string is a list of one. Messages name the option and the position, never a secret.
 */
export function checkHmacKey(value: unknown, who: string): readonly string[] | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'string') {
    if (value.length < 32) {
      throw new TypeError(`${who}: hmacKey must be a secret of at least 32 characters`)
    }
    return [value]
  }
  if (!Array.isArray(value) || value.length === 0) {
    throw new TypeError(
      `${who}: hmacKey must be a secret of at least 32 characters, or a non-empty array of them`,
    )
  }
  const keys: string[] = []
  // Index loop: a sparse array's holes are undefined here, and refused, not skipped.
  for (let i = 0; i < value.length; i++) {
    const key: unknown = value[i]
    if (typeof key !== 'string' || key.length < 32) {
      throw new TypeError(`${who}: hmacKey[${i}] must be a secret of at least 32 characters`)
    }
    keys.push(key)
  }
  return keys
}

/**
 * @internal Whether `actual` equals one of the MACs `expected` computes under each secret. Each
 * comparison is constant-time; which secret matched (the signer's place in a rotation) is not
 * secret, so the loop may stop at the first match.
 */
export function macMatches(
  keys: readonly string[],
  actual: string,
  expected: (key: string) => string,
): boolean {
  const given = Buffer.from(actual)
  return keys.some((k) => {
    const wanted = Buffer.from(expected(k))
    return given.length === wanted.length && timingSafeEqual(given, wanted)
  })
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
  // The first secret signs; the others only verify (a rotation in progress).
  const signer = options.hmacKeys[0]
  const value = `${VERSION}.${signer === undefined ? '-' : mac(signer, key, json)}.${json}`
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
  const keys = options.hmacKeys
  if (keys.length > 0 && !macMatches(keys, tag, (k) => mac(k, key, json))) {
    throw invalid('failed its HMAC check')
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
