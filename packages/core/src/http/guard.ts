import { DEFAULT_REALM, M2MAuthError } from '../errors.js'
import { createM2MVerifier } from '../verifier/index.js'
import { VERIFIER_OPTION_KEYS, validateVerifierOptions } from '../verifier/options.js'
import type { M2MAuth, M2MVerifier, M2MVerifierOptions } from '../verifier/types.js'
import { type ParsedAuthorization, parseAuthorization, parseBearerToken } from './authorization.js'
import { callObserver } from './observe.js'
import { assertValidPolicy, checkPolicy, type M2MRoutePolicy } from './policy.js'
import { type RenderedAuthError, renderAuthError, toM2MAuthError } from './render.js'

/**
 * Options shared by every adapter: verifier options (or a shared `verifier`), the route policy,
 * and how requests are read and rejections observed. `Req` is the framework's own request type.
 *
 * @example
 * const options: M2MGuardOptions<Request> = { machineId: 'mch_reports', allowedSubjects: ['mch_cron'] }
 */
export interface M2MGuardOptions<Req = unknown> extends M2MVerifierOptions, M2MRoutePolicy {
  /** A verifier shared with other guards (one cache for the app). Excludes verifier options. */
  verifier?: M2MVerifier
  /**
   * Custom token extraction, replacing the `Authorization` header. Return `null`/`undefined` for
   * "no credentials"; the result is checked against the same RFC 6750 syntax.
   */
  getToken?: (request: Req) => string | null | undefined
  /** Realm of the `WWW-Authenticate` challenge. @defaultValue 'api' */
  realm?: string
  /**
   * Called with every rejection before it is answered, for logs and metrics. It cannot change
   * the answer; if it throws, the error is ignored and the rejection still goes out.
   */
  onError?: (error: M2MAuthError, request: Req) => void
}

/**
 * What a guard needs from a request, read by the adapter.
 *
 * @example
 * guard.authenticate({ method: req.method, authorization: req.headers.authorization, native: req })
 */
export interface M2MGuardRequest<Req = unknown> {
  method: string
  /** Every value of the Authorization header (see `authorizationOfNodeRequest`). */
  authorization: string | readonly string[] | null | undefined
  /** The framework's request, for `getToken` and `onError`. */
  native: Req
}

/**
 * A guard's decision. On success `auth` is the identity, or `null` on an optional route called
 * without credentials. On failure `response` is what to send.
 *
 * @example
 * const result: M2MGuardResult = await guard.authenticate(request)
 * if (!result.ok) return send(result.response)
 */
export type M2MGuardResult =
  | { ok: true; auth: M2MAuth | null }
  | { ok: false; error: M2MAuthError; response: RenderedAuthError }

/**
 * A route policy, validated and merged over the guard's defaults; make one with `guard.policy()`.
 *
 * @example
 * const adminOnly: M2MCompiledPolicy = guard.policy({ allowedSubjects: ['mch_admin'] })
 */
export interface M2MCompiledPolicy extends Readonly<M2MRoutePolicy> {
  readonly compiled: true
}

/**
 * The framework-free request guard every adapter wraps.
 *
 * @example
 * const guard = createM2MGuard({ machineId: 'mch_reports' })
 * const result = await guard.authenticate({ method: 'GET', authorization: 'Bearer mt_…', native: req })
 */
export interface M2MGuard<Req = unknown> {
  readonly verifier: M2MVerifier
  readonly realm: string
  /** Decides one request. Never rejects: every failure is a `{ ok: false }` result (fail closed). */
  authenticate(request: M2MGuardRequest<Req>, policy?: M2MCompiledPolicy): Promise<M2MGuardResult>
  /** Validates a route policy (throws naming the option) and merges it over the guard's. */
  policy(route: M2MRoutePolicy, where?: string): M2MCompiledPolicy
  /** Renders a rejection with this guard's realm. */
  render(error: unknown): RenderedAuthError
  /** Closes the verifier if this guard built it; a shared `verifier` is left to its owner. */
  close(): Promise<void>
}

/**
 * How an adapter names itself in messages and which extra options it accepts.
 *
 * @example
 * createM2MGuard(options, { name: 'requireM2M', adapterOptions: ['passErrors'] })
 */
export interface M2MGuardContext {
  /** @defaultValue 'createM2MGuard' */
  name?: string
  /** Option names the adapter handles itself, so they are not reported as unknown. */
  adapterOptions?: readonly string[]
}

const GUARD_OPTIONS = {
  verifier: true,
  allowedSubjects: true,
  requireClaims: true,
  optional: true,
  getToken: true,
  realm: true,
  onError: true,
} satisfies Record<Exclude<keyof M2MGuardOptions, keyof M2MVerifierOptions>, true>

// A header value may hold only tab, visible ASCII and obs-text (RFC 9110 §5.5); Node's setHeader
// and the Fetch API's Headers throw on anything else, which would break every rejection.
function isHeaderSafe(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if ((code < 0x20 && code !== 0x09) || code === 0x7f || code > 0xff) return false
  }
  return true
}

// getToken is typed synchronous, but an async one is an easy mistake. Its promise would be read
// as a malformed token (400, blaming the caller), and a rejection of it would be unhandled (a
// crash on Node). Treat it as the server's bug instead: 500, and the rejection is observed.
function extractToken<Req>(
  getToken: NonNullable<M2MGuardOptions<Req>['getToken']>,
  native: Req,
): string | null | undefined {
  const token: unknown = getToken(native)
  if (typeof (token as PromiseLike<unknown> | null)?.then === 'function') {
    Promise.resolve(token).catch(() => {})
    throw new TypeError('getToken returned a promise; it must return the token synchronously')
  }
  return token as string | null | undefined
}

interface PreparedOptions<Req> {
  where: string
  shared: M2MVerifier | undefined
  verifierOptions: M2MVerifierOptions
  policy: M2MRoutePolicy
  getToken: M2MGuardOptions<Req>['getToken']
  realm: string
  onError: M2MGuardOptions<Req>['onError']
}

function prepare<Req>(
  options: M2MGuardOptions<Req>,
  context: M2MGuardContext,
): PreparedOptions<Req> {
  const where = context.name ?? 'createM2MGuard'
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object`)
  }
  const adapterOptions = new Set(context.adapterOptions ?? [])
  // Verifier options are checked here too, at every level, so a misspelt `cache.ttlMs` or
  // `machineId` fails when the middleware is created (Hono builds its verifier lazily).
  validateVerifierOptions(options, {
    name: where,
    extraKeys: [...Object.keys(GUARD_OPTIONS), ...adapterOptions],
  })
  const verifierOptions: Record<string, unknown> = {}
  // Unknown keys were refused above; a shared `verifier` plus any of these is ambiguous (below).
  for (const [key, value] of Object.entries(options)) {
    if (Object.hasOwn(VERIFIER_OPTION_KEYS, key) && value !== undefined)
      verifierOptions[key] = value
  }

  const {
    verifier: shared,
    allowedSubjects,
    requireClaims,
    optional,
    getToken,
    realm = DEFAULT_REALM,
    onError,
  } = options
  assertValidPolicy({ allowedSubjects, requireClaims, optional }, where)
  if (getToken !== undefined && typeof getToken !== 'function') {
    throw new TypeError(`${where}: getToken must be a function (request) => string | undefined`)
  }
  if (onError !== undefined && typeof onError !== 'function') {
    throw new TypeError(`${where}: onError must be a function (error, request) => void`)
  }
  // The realm goes into a quoted header value; control characters could split the header.
  if (typeof realm !== 'string' || realm.length === 0 || !isHeaderSafe(realm)) {
    throw new TypeError(
      `${where}: realm must be a non-empty string without control characters or characters above U+00FF`,
    )
  }
  if (shared !== undefined) {
    if (
      typeof shared !== 'object' ||
      shared === null ||
      typeof (shared as Partial<M2MVerifier>).verify !== 'function'
    ) {
      throw new TypeError(`${where}: verifier must be an M2MVerifier (from createM2MVerifier())`)
    }
    const keys = Object.keys(verifierOptions)
    if (keys.length > 0) {
      throw new TypeError(
        `${where}: pass either a shared \`verifier\` or verifier options (${keys.join(', ')}), not both; set them where the verifier is created`,
      )
    }
  }
  return {
    where,
    shared,
    verifierOptions: verifierOptions as M2MVerifierOptions,
    policy: { allowedSubjects, requireClaims, optional },
    getToken,
    realm,
    onError,
  }
}

/**
 * Checks guard options exactly as `createM2MGuard` does, without building a verifier. For
 * adapters that must defer the verifier until the environment is known (Workers bindings) but
 * still want to fail at startup on a wrong option.
 *
 * @param options - The options `createM2MGuard` would get.
 * @param context - The adapter's name and own option names.
 * @throws TypeError naming the offending option.
 * @example
 * validateM2MGuardOptions({ allowedSubjects: ['mch_a'] }, { name: 'requireM2M' })
 */
export function validateM2MGuardOptions<Req = unknown>(
  options: M2MGuardOptions<Req> = {},
  context: M2MGuardContext = {},
): void {
  prepare(options, context)
}

/**
 * Builds the request guard once, when the app starts: validates every option (a `TypeError`
 * naming it), builds the verifier (or takes the shared one), and returns a guard whose
 * `authenticate` runs per request. A misspelt option is an error, not silently ignored, because
 * an ignored `allowedSubjects` would let every caller through.
 *
 * @param options - Verifier options or `verifier`, policy, `getToken`, `realm`, `onError`.
 * @param context - Used by adapters: their name for messages and their own option names.
 * @throws TypeError naming the offending option (the verifier's own checks included).
 * @example
 * const guard = createM2MGuard({ machineId: 'mch_reports', requireClaims: { tenant: 'acme' } })
 * const result = await guard.authenticate({ method: 'GET', authorization: header, native: undefined })
 * if (result.ok) console.log(result.auth?.subject)
 */
export function createM2MGuard<Req = unknown>(
  options: M2MGuardOptions<Req> = {},
  context: M2MGuardContext = {},
): M2MGuard<Req> {
  const { where, shared, verifierOptions, policy, getToken, realm, onError } = prepare(
    options,
    context,
  )
  const owned = shared === undefined
  const verifier = shared ?? createM2MVerifier(verifierOptions)

  const defaults: M2MCompiledPolicy = Object.freeze({ ...policy, compiled: true as const })

  function render(error: unknown): RenderedAuthError {
    return renderAuthError(error, { realm })
  }

  function reject(error: M2MAuthError, request: M2MGuardRequest<Req>): M2MGuardResult {
    callObserver(onError, error, request.native)
    return { ok: false, error, response: render(error) }
  }

  return {
    verifier,
    realm,
    render,
    policy(route, routeWhere = where) {
      assertValidPolicy(route, routeWhere)
      // A route's own setting wins; what it leaves out comes from the guard's options.
      return Object.freeze({
        allowedSubjects: route.allowedSubjects ?? defaults.allowedSubjects,
        requireClaims: route.requireClaims ?? defaults.requireClaims,
        optional: route.optional ?? defaults.optional,
        compiled: true as const,
      })
    },
    async authenticate(request, policy = defaults) {
      try {
        // No exception for CORS preflights: `OPTIONS` is a method like any other, and a
        // method-agnostic handler (`app.all`) would run with no identity. Fail closed; a
        // browser-facing route answers preflights with CORS middleware mounted before the guard.
        const parsed: ParsedAuthorization = getToken
          ? parseBearerToken(extractToken(getToken, request.native))
          : parseAuthorization(request.authorization)
        if (parsed.kind === 'error') return reject(parsed.error, request)
        if (parsed.kind === 'none') {
          if (policy.optional === true) return { ok: true, auth: null }
          return reject(
            new M2MAuthError(
              'missing_token',
              'No Bearer token was sent; send Authorization: Bearer <M2M token>',
            ),
            request,
          )
        }
        const auth = await verifier.verify(parsed.token)
        const denied = checkPolicy(auth, policy)
        if (denied) return reject(denied, request)
        return { ok: true, auth }
      } catch (err) {
        return reject(toM2MAuthError(err), request)
      }
    },
    async close() {
      if (owned) await verifier.close()
    },
  }
}
