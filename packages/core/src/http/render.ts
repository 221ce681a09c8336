import {
  bearerChallenge,
  DEFAULT_REALM,
  M2MApiError,
  M2MAuthError,
  M2MConnectionError,
} from '../errors.js'

/**
 * An error answer, ready to be written by any framework: status, headers (lower-case names) and
 * the JSON body, both as an object and already serialised.
 *
 * @example
 * const r: RenderedAuthError = renderAuthError(err, { realm: 'api' })
 * res.writeHead(r.status, r.headers).end(r.bodyText)
 */
export interface RenderedAuthError {
  status: number
  headers: Record<string, string>
  body: { error: string; error_description: string }
  /** `JSON.stringify(body)`, so every adapter sends the same bytes. */
  bodyText: string
}

/**
 * Options of `renderAuthError`.
 *
 * @example
 * renderAuthError(err, { realm: 'reports' })
 */
export interface RenderAuthErrorOptions {
  /** @defaultValue 'api' */
  realm?: string
}

/**
 * Seconds sent in `Retry-After` when a 503 carries no hint of its own: short, because
 * outages of the verification path are usually brief and callers are machines that back off.
 *
 * @example
 * renderAuthError(new M2MAuthError('verification_unavailable', 'Down')).headers['retry-after'] // '1'
 */
export const DEFAULT_RETRY_AFTER_SECONDS = 1

// A day: a longer Retry-After comes from a bug or a broken upstream, not a plan, and the cap keeps
// `String()` far from exponent notation, which is not valid delay-seconds (RFC 9110 §10.2.3).
const MAX_RETRY_AFTER_SECONDS = 86_400

function retryAfterSeconds(ms: number | undefined): number {
  if (ms === undefined || Number.isNaN(ms) || ms <= 0) return DEFAULT_RETRY_AFTER_SECONDS
  // Infinity passes through to the cap: it is an oversized delay, not a missing one.
  return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(ms / 1000)))
}

const INTERNAL_DESCRIPTION =
  'The request could not be authenticated because of an internal error in the server'

/**
 * Turns anything thrown while authenticating into an `M2MAuthError`, failing closed. An
 * `M2MAuthError` is returned as is. A transport failure or a 429/5xx from the API means
 * verification is unavailable (503). Anything else (a bug, a throwing `getToken` or predicate)
 * is `verifier_misconfigured` (500): it is the server's fault, retrying will not help, so a 503
 * would only invite retry storms, and a 401 would wrongly blame the caller's token. The original
 * is kept as `cause`; its message is never sent to the caller.
 *
 * @param err - Whatever was thrown.
 * @example
 * const error = toM2MAuthError(new TypeError('boom')) // code 'verifier_misconfigured', status 500
 */
export function toM2MAuthError(err: unknown): M2MAuthError {
  if (err instanceof M2MAuthError) return err
  if (err instanceof M2MConnectionError) {
    return new M2MAuthError(
      'verification_unavailable',
      'The token could not be verified right now; retry later',
      { cause: err },
    )
  }
  if (err instanceof M2MApiError && (err.status === 429 || err.status >= 500)) {
    return new M2MAuthError(
      'verification_unavailable',
      'The token could not be verified right now; retry later',
      { cause: err, retryAfterMs: err.retryAfterMs },
    )
  }
  return new M2MAuthError('verifier_misconfigured', INTERNAL_DESCRIPTION, { cause: err })
}

/**
 * The one renderer of every rejection, per the behaviour table: the status of the code, a
 * `WWW-Authenticate` challenge for 400/401/403 (no `error` attribute when credentials were
 * missing, RFC 6750 §3.1), `Retry-After` for 503 in whole seconds from 1 to 86400 (a day),
 * `Cache-Control: no-store` so no proxy keeps an auth decision, and `{ error, error_description }`
 * as JSON. Errors that are not `M2MAuthError` go through `toM2MAuthError` first (fail closed).
 * Nothing of the token is ever in the output.
 *
 * @param err - An `M2MAuthError` or anything thrown while authenticating.
 * @param [options.realm='api'] - The realm of the challenge.
 * @example
 * const { status, headers, bodyText } = renderAuthError(new M2MAuthError('missing_token', 'No token'))
 * // 401, { 'www-authenticate': 'Bearer realm="api"', … }, '{"error":"missing_token",…}'
 */
export function renderAuthError(
  err: unknown,
  options: RenderAuthErrorOptions = {},
): RenderedAuthError {
  const error = toM2MAuthError(err)
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
  }
  const challenge = bearerChallenge(error.code, options.realm ?? DEFAULT_REALM, error.description)
  if (challenge !== undefined) headers['www-authenticate'] = challenge
  if (error.code === 'verification_unavailable') {
    headers['retry-after'] = String(retryAfterSeconds(error.retryAfterMs))
  }
  const body = { error: error.code, error_description: error.description }
  return { status: error.status, headers, body, bodyText: JSON.stringify(body) }
}
