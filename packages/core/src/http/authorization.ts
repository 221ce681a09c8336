import { M2MAuthError } from '../errors.js'

/**
 * The longest `Authorization` value accepted, in characters. Opaque M2M tokens are ~40 characters
 * and M2M JWTs well under 2 KiB; anything longer is refused before any other work is done.
 *
 * @example
 * if (header.length > MAX_AUTHORIZATION_LENGTH) reject()
 */
export const MAX_AUTHORIZATION_LENGTH = 4096

/**
 * What an `Authorization` header holds: no Bearer credentials, one well-formed Bearer token, or
 * a malformed header (`invalid_request`, 400).
 *
 * @example
 * const parsed: ParsedAuthorization = parseAuthorization(req.headers.authorization)
 * if (parsed.kind === 'token') await verifier.verify(parsed.token)
 */
export type ParsedAuthorization =
  | { kind: 'none' }
  | { kind: 'token'; token: string }
  | { kind: 'error'; error: M2MAuthError }

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; b64token = 1*( ALPHA / DIGIT / "-" / "." /
// "_" / "~" / "+" / "/" ) *"=". We accept exactly one space, as every real client sends, so that
// "two tokens" and stray whitespace are rejected rather than guessed at.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
// RFC 9110 §11.1: auth-scheme = token.
const AUTH_SCHEME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

// Another scheme followed by a Bearer credential: two headers joined with a comma.
const REPEATED_BEARER = /,\s*bearer(\s|$)/i

const NONE: ParsedAuthorization = Object.freeze({ kind: 'none' })

function malformed(description: string): ParsedAuthorization {
  return { kind: 'error', error: new M2MAuthError('invalid_request', description) }
}

/**
 * Checks a token obtained some other way (a custom `getToken`) against the same RFC 6750 b64token
 * syntax and length limit as the header. `null`/`undefined` mean "no credentials".
 *
 * @param token - The extracted token, or nothing.
 * @returns The same three outcomes as `parseAuthorization`.
 * @example
 * parseBearerToken(req.headers['x-m2m-token'] as string | undefined)
 */
export function parseBearerToken(token: string | null | undefined): ParsedAuthorization {
  if (token === undefined || token === null) return NONE
  if (typeof token !== 'string') return malformed('The extracted token is not a string')
  if (token.length === 0) return malformed('The Bearer token is empty')
  if (token.length > MAX_AUTHORIZATION_LENGTH) {
    return malformed(`The Bearer token is longer than ${MAX_AUTHORIZATION_LENGTH} characters`)
  }
  if (!B64TOKEN.test(token)) {
    return malformed('The Bearer token contains characters not allowed by RFC 6750')
  }
  return { kind: 'token', token }
}

/**
 * Reads an `Authorization` header value, strictly. The scheme is case-insensitive; exactly one
 * space separates it from a single RFC 6750 b64token. An empty value, a second token, a bad
 * character, a value over `MAX_AUTHORIZATION_LENGTH` or a repeated header (an array with more
 * than one value, or duplicates joined with a comma) is `invalid_request`. Another scheme (for
 * example `Basic`) counts as no Bearer credentials, so the answer is a plain challenge (RFC 6750
 * §3.1). Descriptions never contain the token.
 *
 * @param headerValue - The raw header: a string, all values of a repeated header, or nothing.
 * @returns `{ kind: 'none' }`, `{ kind: 'token', token }` or `{ kind: 'error', error }`.
 * @example
 * parseAuthorization('Bearer mt_0123') // { kind: 'token', token: 'mt_0123' }
 * parseAuthorization('Basic dXNlcg==') // { kind: 'none' }
 * parseAuthorization('Bearer a b')     // { kind: 'error', error: M2MAuthError(invalid_request) }
 */
export function parseAuthorization(
  headerValue: string | readonly string[] | undefined | null,
): ParsedAuthorization {
  let value: string | undefined
  if (headerValue === undefined || headerValue === null) return NONE
  if (typeof headerValue === 'string') value = headerValue
  else if (Array.isArray(headerValue)) {
    if (headerValue.length === 0) return NONE
    // Two Authorization headers are ambiguous: which one would a proxy or the framework pick?
    if (headerValue.length > 1) return malformed('The Authorization header was sent more than once')
    value = headerValue[0]
  }
  if (typeof value !== 'string') return malformed('The Authorization header is not a string')
  if (value.length === 0) return malformed('The Authorization header is empty')
  if (value.length > MAX_AUTHORIZATION_LENGTH) {
    return malformed(
      `The Authorization header is longer than ${MAX_AUTHORIZATION_LENGTH} characters`,
    )
  }

  const space = value.indexOf(' ')
  const scheme = space === -1 ? value : value.slice(0, space)
  // "Bearer", in any case, is a valid auth-scheme: the common case skips the scheme regex.
  if (scheme.length !== 6 || scheme.toLowerCase() !== 'bearer') {
    if (!AUTH_SCHEME.test(scheme)) {
      // A comma here is what Node and the Fetch API make of a repeated header.
      return malformed(
        value.includes(',')
          ? 'The Authorization header was sent more than once'
          : 'The Authorization header does not start with an authentication scheme',
      )
    }
    // `Basic …, Bearer …` is two headers joined: which one counts is ambiguous, so refuse it.
    return REPEATED_BEARER.test(value)
      ? malformed('The Authorization header was sent more than once')
      : NONE
  }

  const credentials = space === -1 ? '' : value.slice(space + 1)
  if (credentials.length === 0) return malformed('The Bearer credentials are missing a token')
  if (B64TOKEN.test(credentials)) return { kind: 'token', token: credentials }
  if (credentials.includes(',')) {
    return malformed('The Authorization header was sent more than once')
  }
  if (/\s/.test(credentials)) {
    return malformed('Expected exactly one space after "Bearer" and a single token')
  }
  return malformed('The Bearer token contains characters not allowed by RFC 6750')
}

/**
 * The request shape `authorizationOfNodeRequest` reads: Node's `IncomingMessage`, Express's
 * `Request` or Fastify's `request.raw` (also under `inject()`).
 *
 * @example
 * const shape: NodeRequestLike = req
 */
export interface NodeRequestLike {
  headers: { authorization?: string | string[] | undefined }
  rawHeaders?: readonly string[]
}

/**
 * Every `Authorization` value of a Node request. Node keeps only the first of duplicate
 * `Authorization` headers in `req.headers`, which would hide a repeated header; `rawHeaders`
 * still has them all.
 *
 * @param req - A Node request (or anything with `headers` and `rawHeaders`).
 * @returns All values, or `undefined` when there is none; pass it to `parseAuthorization`.
 * @example
 * parseAuthorization(authorizationOfNodeRequest(req))
 */
export function authorizationOfNodeRequest(req: NodeRequestLike): string | string[] | undefined {
  const raw = req.rawHeaders
  if (!raw) return req.headers.authorization
  let values: string[] | undefined
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]
    if (name !== undefined && name.length === 13 && name.toLowerCase() === 'authorization') {
      if (values === undefined) values = []
      values.push(raw[i + 1] as string)
    }
  }
  // Fall back to the parsed headers when rawHeaders is empty (hand-built requests).
  return values ?? req.headers.authorization
}
