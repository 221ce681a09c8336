import { CloudflareStoreError } from './errors.js'

/** @internal */
export const DEFAULT_PREFIX = 'm2m-guard'

/** Safe in a KV key and in a URL path segment alike, so both stores accept the same prefixes. */
const PREFIX_PATTERN = /^[A-Za-z0-9:_.-]{1,64}$/

/** @internal */
export function checkPrefix(prefix: unknown, who: string): string {
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix) || /^\.+$/.test(prefix)) {
    throw new TypeError(`${who}: prefix must be 1-64 characters of A-Z a-z 0-9 : _ . -`)
  }
  return prefix
}

/** @internal Validates the `now` option: a clock that is not a function would fail every write. */
export function checkNow(now: unknown, who: string): () => number {
  if (now === undefined) return Date.now
  if (typeof now !== 'function') {
    throw new TypeError(`${who}: now must be a function returning ms since the epoch`)
  }
  return now as () => number
}

/**
 * Printable ASCII, and short enough that `prefix:key` stays under KV's 512-byte key limit. The
 * verifier's keys (`m2m-guard:v2:<hash>:<sha256>`) are about 75 characters.
 */
const KEY_PATTERN = /^[\x21-\x7e]{1,400}$/

/**
 * What a raw token looks like: an opaque secret (`mt_` + 48 base62) or a JWT. A cache key must be
 * a hash, so a key that holds one is refused before it reaches storage. 44+ characters after
 * `mt_` cannot occur inside a 43-character base64url SHA-256, so real keys never trip it.
 */
const RAW_TOKEN_PATTERN = /mt_[A-Za-z0-9]{44,}|eyJ[\w-]{8,}\.[\w-]{8,}\./

/** @internal Validates a cache key; the message never repeats it, since it may hold a token. */
export function checkKey(key: unknown, where: string): string {
  if (typeof key !== 'string' || !KEY_PATTERN.test(key)) {
    throw new CloudflareStoreError(
      'invalid_key',
      `${where}: cache key must be 1-400 printable ASCII characters`,
    )
  }
  if (RAW_TOKEN_PATTERN.test(key)) {
    // Keys are the verifier's hashes; a token here would sit readable in storage.
    throw new CloudflareStoreError('invalid_key', `${where}: refusing a key that holds a raw token`)
  }
  return key
}
