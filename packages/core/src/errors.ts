/**
 * One error model. Every error has a stable `code`; none ever carries a token or a secret key.
 */

/**
 * One entry of Clerk's `errors[]`.
 *
 * @example
 * err.errors[0]?.code // 'resource_not_found'
 */
export interface ClerkApiErrorEntry {
  code: string
  message: string
  longMessage: string
  meta?: Record<string, unknown>
}

/**
 * A non-2xx answer from the Backend API, with Clerk's error body.
 *
 * @example
 * try { await client.verifyToken({ token }) } catch (err) {
 *   if (err instanceof M2MApiError && err.status === 404) console.log('unknown token', err.clerkTraceId)
 * }
 */
export class M2MApiError extends Error {
  override name = 'M2MApiError'
  /** `api_error` always; the first Clerk error code is in `errors[0].code`. */
  readonly code = 'api_error' as const
  readonly status: number
  readonly errors: ClerkApiErrorEntry[]
  readonly clerkTraceId: string | undefined
  /** From a `Retry-After` header, in ms. */
  readonly retryAfterMs: number | undefined

  constructor(init: {
    status: number
    errors: ClerkApiErrorEntry[]
    clerkTraceId?: string | undefined
    retryAfterMs?: number | undefined
    message?: string
  }) {
    const first = init.errors[0]
    super(
      init.message ??
        `Clerk API answered ${init.status}${first ? `: ${first.code}: ${first.longMessage || first.message}` : ''}`,
    )
    this.status = init.status
    this.errors = init.errors
    this.clerkTraceId = init.clerkTraceId
    this.retryAfterMs = init.retryAfterMs
  }
}

/**
 * Why a request got no usable HTTP answer.
 *
 * @example
 * const code: M2MConnectionErrorCode = 'timeout'
 */
export type M2MConnectionErrorCode = 'timeout' | 'connection_failed' | 'invalid_response'

/**
 * The request got no usable answer: timed out, connection refused or reset, or a 2xx body that
 * could not be decoded. Transient by nature; the cause is kept in `cause`.
 *
 * @example
 * if (err instanceof M2MConnectionError && err.code === 'timeout') retryLater()
 */
export class M2MConnectionError extends Error {
  override name = 'M2MConnectionError'
  readonly code: M2MConnectionErrorCode
  constructor(code: M2MConnectionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/**
 * Why a request was not let through. `switch (err.code)` narrows.
 *
 * @example
 * if (err.code === 'token_revoked') metrics.increment('revoked')
 */
export type M2MAuthErrorCode =
  | 'missing_token'
  | 'invalid_request'
  | 'invalid_token'
  | 'token_expired'
  | 'token_revoked'
  | 'insufficient_scope'
  | 'verification_unavailable'
  | 'verifier_misconfigured'

/**
 * The HTTP status of each code, per the behaviour table.
 *
 * @example
 * AUTH_ERROR_STATUS.insufficient_scope // 403
 */
export const AUTH_ERROR_STATUS: Readonly<Record<M2MAuthErrorCode, number>> = {
  missing_token: 401,
  invalid_request: 400,
  invalid_token: 401,
  token_expired: 401,
  token_revoked: 401,
  insufficient_scope: 403,
  verification_unavailable: 503,
  verifier_misconfigured: 500,
}

/** The RFC 6750 `error` attribute of each code's challenge; `null` = no attribute, `undefined` = no challenge. */
const CHALLENGE_ERROR: Readonly<Record<M2MAuthErrorCode, string | null | undefined>> = {
  missing_token: null,
  invalid_request: 'invalid_request',
  invalid_token: 'invalid_token',
  token_expired: 'invalid_token',
  token_revoked: 'invalid_token',
  insufficient_scope: 'insufficient_scope',
  verification_unavailable: undefined,
  verifier_misconfigured: undefined,
}

/**
 * The realm used in challenges when none is configured.
 *
 * @example
 * bearerChallenge('missing_token', DEFAULT_REALM) // 'Bearer realm="api"'
 */
export const DEFAULT_REALM = 'api'

// Quoted-string values (RFC 9110 §5.6.4) must escape `"` and `\`, or a realm or description
// containing them would break or inject into the header. Characters a header value cannot hold
// (controls other than tab, anything above U+00FF) become spaces: Node's setHeader and the Fetch
// API's Headers throw on them, which would turn a 401 into a crash of the error path.
function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[^\t\x20-\x7e\x80-\xff]/g, ' ')}"`
}

/**
 * Builds the RFC 6750 `WWW-Authenticate` value for an error code, or `undefined` when the
 * status carries no challenge (500, 503).
 *
 * @example
 * bearerChallenge('invalid_token', 'api', 'The token was revoked')
 * // 'Bearer realm="api", error="invalid_token", error_description="The token was revoked"'
 */
export function bearerChallenge(
  code: M2MAuthErrorCode,
  realm: string = DEFAULT_REALM,
  description?: string,
): string | undefined {
  const error = CHALLENGE_ERROR[code]
  if (error === undefined) return undefined
  let value = `Bearer realm=${quote(realm)}`
  if (error !== null) {
    value += `, error=${quote(error)}`
    if (description) value += `, error_description=${quote(description)}`
  }
  return value
}

/**
 * Why a request is rejected, with its HTTP meaning. Never contains the token.
 *
 * @example
 * try { await verifier.verify(token) } catch (err) {
 *   if (err instanceof M2MAuthError) res.status(err.status).set('WWW-Authenticate', err.wwwAuthenticate ?? '')
 * }
 */
export class M2MAuthError extends Error {
  override name = 'M2MAuthError'
  readonly code: M2MAuthErrorCode
  readonly status: number
  /** Human-readable reason, safe to send to the caller (`error_description`). */
  readonly description: string
  /** The challenge for the default realm; adapters re-render it with theirs. */
  readonly wwwAuthenticate: string | undefined
  /** For 503: when the caller may retry, in ms. */
  readonly retryAfterMs: number | undefined

  constructor(
    code: M2MAuthErrorCode,
    description: string,
    options?: { cause?: unknown; retryAfterMs?: number | undefined; realm?: string },
  ) {
    super(description, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.status = AUTH_ERROR_STATUS[code]
    this.description = description
    this.wwwAuthenticate = bearerChallenge(code, options?.realm, description)
    this.retryAfterMs = options?.retryAfterMs
  }
}
