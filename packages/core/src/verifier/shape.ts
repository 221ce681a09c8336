/**
 * Shape check before any network: an attacker spraying garbage must cost a regex, not a request.
 */

/**
 * Longer tokens are refused outright (the behaviour table's 4 KiB header bound).
 *
 * @example
 * if (token.length > MAX_TOKEN_LENGTH) reject()
 */
export const MAX_TOKEN_LENGTH = 4096

// `mt_` is Clerk's prefix for M2M token secrets, `m2m_` its legacy one. Clerk's secrets are
// base62; base64url's `-` and `_` are allowed too so a change of alphabet does not lock us out.
// 16 characters is far below any real secret yet rules out obvious junk like `mt_x`.
const OPAQUE_RE = /^(?:mt_|m2m_)[A-Za-z0-9_-]{16,}$/
// Three base64url segments, the same test Clerk's SDK applies before decoding.
const JWT_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * The token's format if it looks like an M2M token, else `undefined`.
 *
 * @example
 * tokenShape('mt_3bVjq7kR8…') // 'opaque'
 * tokenShape('eyJhbGciOi….eyJzdWIi….sig') // 'jwt'
 * tokenShape('Basic abc') // undefined
 */
export function tokenShape(token: string): 'opaque' | 'jwt' | undefined {
  if (token.length > MAX_TOKEN_LENGTH) return undefined
  if (OPAQUE_RE.test(token)) return 'opaque'
  if (JWT_RE.test(token)) return 'jwt'
  return undefined
}
