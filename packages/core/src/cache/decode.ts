import type { M2MAuth } from '../verifier/types.js'

// Bounds for identities read back from a shared store: generous for real tokens, small enough that
// a planted value cannot make a route allocate much.
const MAX_STRING = 1_024
const MAX_SCOPES = 1_024

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isBoundedString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_STRING
}

/**
 * Rebuilds an `M2MAuth` read back from a shared `CacheStore` (Redis, KV, …) field by field, so
 * nothing but the documented shape reaches a route. Anything else is `undefined`: a miss, never
 * an identity.
 *
 * @example
 * const auth = decodeCachedAuth(JSON.parse(raw).auth)
 * if (!auth) return undefined // corrupted or foreign value: treat as a miss
 */
export function decodeCachedAuth(value: unknown): M2MAuth | undefined {
  if (!isRecord(value)) return undefined
  const { tokenType, format, id, subject, scopes, claims, expiration } = value
  if (tokenType !== 'm2m_token') return undefined
  if (format !== 'opaque' && format !== 'jwt') return undefined
  if (!isBoundedString(id) || !isBoundedString(subject)) return undefined
  if (!Array.isArray(scopes) || scopes.length > MAX_SCOPES || !scopes.every(isBoundedString)) {
    return undefined
  }
  // Any JSON value, as the API allows (see `M2MToken.claims`); but present, never undefined.
  if (claims === undefined) return undefined
  if (expiration !== null && (typeof expiration !== 'number' || !Number.isFinite(expiration))) {
    return undefined
  }
  return {
    tokenType,
    format,
    id,
    subject,
    scopes: [...scopes],
    claims: claims as M2MAuth['claims'],
    expiration,
  }
}
