/** @internal Shared naming rules of the store and the bus, which must agree on the prefix. */

export const DEFAULT_PREFIX = 'm2m-guard'

/**
 * No braces: a `{…}` in a key is a Redis Cluster hash tag, and a prefix with one would pin every
 * key of the tier to a single slot (one node) instead of spreading them.
 */
const PREFIX_PATTERN = /^[A-Za-z0-9:_.-]{1,64}$/

/** @internal */
export function checkPrefix(prefix: string, who: string): string {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(`${who}: prefix must be 1-64 characters of A-Z a-z 0-9 : _ . - (no braces)`)
  }
  return prefix
}

/**
 * Token ids are `mt_` + hex, or a JWT's `jti`: printable ASCII without spaces. Anything else on
 * the bus is foreign and ignored.
 */
const TOKEN_ID_PATTERN = /^[\x21-\x7e]{1,256}$/

/** @internal */
export function isTokenId(value: unknown): value is string {
  return typeof value === 'string' && TOKEN_ID_PATTERN.test(value)
}

/**
 * What a raw token looks like: an opaque secret (`mt_` + 48 base62) or a JWT. A cache key must be
 * a hash, so a key that holds one is refused before it reaches Redis. 44+ characters after `mt_`
 * cannot occur inside a 43-character base64url SHA-256, so real keys never trip it.
 */
const RAW_TOKEN_PATTERN = /mt_[A-Za-z0-9]{44,}|eyJ[\w-]{8,}\.[\w-]{8,}\./

/** @internal */
export function looksLikeRawToken(key: string): boolean {
  return RAW_TOKEN_PATTERN.test(key)
}
