import { M2MAuthError } from '../errors.js'
import type { M2MClaims } from '../types.js'
import type { M2MAuth } from '../verifier/types.js'

/**
 * Claims a route requires: an object of expected values (every listed claim must be present and
 * equal: primitives by value, arrays and plain objects structurally), or a predicate that must
 * return exactly `true`.
 *
 * @example
 * const byValue: M2MClaimsRequirement = { tenant: 'acme', role: 'reporter' }
 * const byPredicate: M2MClaimsRequirement = (claims) => claims?.tier === 'gold'
 */
export type M2MClaimsRequirement<Claims extends M2MClaims = M2MClaims> =
  | { readonly [K in keyof Claims]?: Claims[K] }
  | ((claims: Claims | null, auth: M2MAuth<Claims>) => boolean)

/**
 * Who may call a route, checked after the token is verified. Failing it is `insufficient_scope`
 * (403).
 *
 * @example
 * const policy: M2MPolicy = { allowedSubjects: ['mch_reporter'], requireClaims: { tenant: 'acme' } }
 */
export interface M2MPolicy<Claims extends M2MClaims = M2MClaims> {
  /** Calling machines (`mch_…`) allowed; omit to allow every machine the verifier accepts. */
  allowedSubjects?: readonly string[]
  requireClaims?: M2MClaimsRequirement<Claims>
}

/**
 * A route's policy as adapters take it: `M2MPolicy` plus `optional`.
 *
 * @example
 * fastify.get('/status', { config: { m2m: { optional: true } } }, handler)
 */
export interface M2MRoutePolicy<Claims extends M2MClaims = M2MClaims> extends M2MPolicy<Claims> {
  /** No credentials → continue without identity. Bad credentials are still rejected. @defaultValue false */
  optional?: boolean
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

// Claims are JSON, so structural equality over arrays and plain objects is all that is needed.
function sameValue(expected: unknown, actual: unknown): boolean {
  if (Object.is(expected, actual)) return true
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) &&
      actual.length === expected.length &&
      expected.every((item, i) => sameValue(item, actual[i]))
    )
  }
  if (isPlainObject(expected)) {
    if (!isPlainObject(actual)) return false
    const keys = Object.keys(expected)
    return (
      keys.length === Object.keys(actual).length &&
      keys.every((key) => Object.hasOwn(actual, key) && sameValue(expected[key], actual[key]))
    )
  }
  return false
}

/**
 * Validates a policy's shape, throwing a `TypeError` that names the option. Called when an app
 * starts (guard construction, Fastify route registration), never per request.
 *
 * @param policy - The policy to check.
 * @param [where='policy'] - How to name it in messages, e.g. `requireM2M()`.
 * @throws TypeError naming the offending option.
 * @example
 * assertValidPolicy({ allowedSubjects: ['mch_a'] }, 'route GET /report')
 */
export function assertValidPolicy(
  policy: unknown,
  where = 'policy',
): asserts policy is M2MRoutePolicy {
  if (!isPlainObject(policy)) throw new TypeError(`${where}: the policy must be an object`)
  const { allowedSubjects, requireClaims, optional } = policy
  if (allowedSubjects !== undefined) {
    if (!Array.isArray(allowedSubjects)) {
      throw new TypeError(`${where}: allowedSubjects must be an array of machine ids (mch_…)`)
    }
    if (allowedSubjects.length === 0) {
      throw new TypeError(
        `${where}: allowedSubjects is empty, so no caller could pass; omit it to allow every machine`,
      )
    }
    if (!allowedSubjects.every((s) => typeof s === 'string' && s.length > 0)) {
      throw new TypeError(`${where}: allowedSubjects must contain only non-empty strings`)
    }
  }
  if (
    requireClaims !== undefined &&
    typeof requireClaims !== 'function' &&
    !isPlainObject(requireClaims)
  ) {
    throw new TypeError(
      `${where}: requireClaims must be an object of expected claim values or a predicate function`,
    )
  }
  if (optional !== undefined && typeof optional !== 'boolean') {
    throw new TypeError(`${where}: optional must be a boolean`)
  }
}

/**
 * Checks a verified identity against a policy. Returns the `insufficient_scope` error (403) to
 * send, or `null` when the policy is met. A predicate that throws or returns a promise throws (the
 * guard turns it into a 500: fail closed); one that returns anything else but `true` denies.
 *
 * @param auth - The verified identity.
 * @param policy - `allowedSubjects` and/or `requireClaims`.
 * @returns `null` when allowed, else the error.
 * @example
 * const denied = checkPolicy(req.m2m, { requireClaims: { tenant: 'acme' } })
 * if (denied) return res.status(denied.status).json({ error: denied.code })
 */
export function checkPolicy<Claims extends M2MClaims = M2MClaims>(
  auth: M2MAuth<Claims>,
  policy: M2MPolicy<Claims>,
): M2MAuthError | null {
  const { allowedSubjects, requireClaims } = policy
  if (allowedSubjects !== undefined && !allowedSubjects.includes(auth.subject)) {
    return new M2MAuthError(
      'insufficient_scope',
      `Machine ${auth.subject} is not allowed to call this resource`,
    )
  }
  if (requireClaims !== undefined) {
    let met: boolean
    if (typeof requireClaims === 'function') {
      const answer: unknown = requireClaims(auth.claims, auth)
      // An async predicate is an easy mistake: its promise is never `true`, so every caller would
      // get a 403 that hides the bug, and a rejection of it would go unhandled (a crash on Node).
      if (typeof (answer as PromiseLike<unknown> | null)?.then === 'function') {
        Promise.resolve(answer).catch(() => {})
        throw new TypeError('requireClaims returned a promise; the predicate must be synchronous')
      }
      met = answer === true
    } else {
      const claims = auth.claims as Record<string, unknown> | null
      met = Object.entries(requireClaims).every(
        ([name, expected]) =>
          claims !== null && Object.hasOwn(claims, name) && sameValue(expected, claims[name]),
      )
    }
    if (!met) {
      return new M2MAuthError(
        'insufficient_scope',
        "The token's claims do not meet the requirements of this resource",
      )
    }
  }
  return null
}
