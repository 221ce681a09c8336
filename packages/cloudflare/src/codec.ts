import { type CachedVerification, decodeCachedAuth } from '@m2m-guard/core'
import { CloudflareStoreError } from './errors.js'

/**
 * Wire format of a stored value: `{"m2mg":2,"verifiedAt":…,"expiresAt":…,"auth":{…}}`. The version field makes
 * a foreign value (another app's entry under our prefix) a miss instead of a guess, and lets a
 * later format be told apart from this one.
 */
const VERSION = 2
/** @internal Bound of one value; identities with claims fit easily, anything bigger is not ours. */
export const MAX_VALUE_BYTES = 32_768

const encoder = new TextEncoder()

/** @internal Serialises an entry; throws `value_too_large` past the bound. */
export function encodeEntry(entry: CachedVerification, where: string): string {
  const value = JSON.stringify({
    m2mg: VERSION,
    verifiedAt: entry.verifiedAt,
    expiresAt: entry.expiresAt,
    auth: entry.auth,
  })
  const bytes = encoder.encode(value).length
  if (bytes > MAX_VALUE_BYTES) {
    throw new CloudflareStoreError(
      'value_too_large',
      `${where} set: entry is ${bytes} bytes, over ${MAX_VALUE_BYTES}; not shared`,
    )
  }
  return value
}

function invalid(where: string, reason: string): CloudflareStoreError {
  return new CloudflareStoreError(
    'invalid_value',
    `${where} get: stored value ${reason}; treated as a miss`,
  )
}

/**
 * @internal Parses and validates a stored value. Anything that is not exactly what `encodeEntry`
 * writes throws `invalid_value` (the verifier counts it as a miss and reports it): a corrupted or
 * foreign value must never crash a request or admit a token.
 */
export function decodeEntry(raw: string, where: string): CachedVerification {
  // A string's length never exceeds its UTF-8 size, so this rejects huge values before encoding.
  if (raw.length > MAX_VALUE_BYTES || encoder.encode(raw).length > MAX_VALUE_BYTES) {
    throw invalid(where, `is over ${MAX_VALUE_BYTES} bytes`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    throw invalid(where, 'is not JSON')
  }
  if (!isRecord(parsed) || parsed['m2mg'] !== VERSION) throw invalid(where, 'has an unknown format')
  const expiresAt = parsed['expiresAt']
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
    throw invalid(where, 'has no valid expiresAt')
  }
  const verifiedAt = parsed['verifiedAt']
  if (typeof verifiedAt !== 'number' || !Number.isFinite(verifiedAt)) {
    throw invalid(where, 'has no valid verifiedAt')
  }
  const auth = decodeCachedAuth(parsed['auth'])
  if (!auth) throw invalid(where, 'has no valid identity')
  return { auth, verifiedAt, expiresAt }
}

/**
 * @internal Whether an entry may still be served at `now`: before both its own end and its
 * token's expiry. Both stores call it on every read, because neither backend can be trusted to
 * have dropped the value in time (KV keeps it ≥ 60 s, the Cache API counts whole seconds).
 */
export function isLive(entry: CachedVerification, now: number): boolean {
  if (!(entry.expiresAt > now)) return false
  return entry.auth.expiration === null || entry.auth.expiration > now
}

/**
 * @internal The moment a value stored at `now` must stop being served: the earliest of the
 * caller's TTL, the entry's own end and the token's expiry. `undefined` when there is nothing to
 * store: that moment has passed (or a TTL is not a number), or the identity has no token id (a
 * JWT without `jti`), which `decodeEntry` refuses, so storing it would be a write nobody can read.
 */
export function storedUntil(
  value: CachedVerification,
  ttlMs: number,
  now: number,
): number | undefined {
  if (value.auth.id === '') return undefined
  const until = Math.min(
    now + ttlMs,
    value.expiresAt,
    value.auth.expiration === null ? Number.POSITIVE_INFINITY : value.auth.expiration,
  )
  return until > now ? until : undefined
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
