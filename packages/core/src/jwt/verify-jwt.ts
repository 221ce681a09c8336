import {
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors,
  importSPKI,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose'
import type { FetchLike, M2MClaims } from '../types.js'
import type { M2MAuth } from '../verifier/types.js'

/**
 * Clerk's JWT category header of M2M tokens (`cat`); other Clerk JWTs carry other categories.
 *
 * @example
 * decodeProtectedHeader(token).cat === M2M_JWT_CATEGORY
 */
export const M2M_JWT_CATEGORY = 'cl_B7d4PD333AAA'

/** Registered claims and the ones we map to fields; the rest are the token's custom claims. */
const RESERVED_CLAIMS = new Set(['iss', 'sub', 'exp', 'nbf', 'iat', 'jti', 'aud', 'scopes'])

/**
 * What Clerk signs M2M JWTs with, and all `@clerk/backend` accepts: RSA PKCS#1 v1.5. Anything else
 * in a header (HMAC, `none`, EC, EdDSA, PSS) is a token we would never be sent, so it is refused
 * as the token's fault before any key is looked at.
 */
const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512']

/** jose refuses to verify with a smaller RSA key; a PEM under it can never verify anything. */
const MIN_RSA_BITS = 2048

const MACHINE_ID = /^mch_\w+$/

/**
 * What local verification of a JWT concluded. `unavailable` means the key material could not be
 * fetched (a transient condition, never cached).
 *
 * @example
 * const result = await verifyJwt(token)
 * if (result.kind === 'valid') console.log(result.auth.subject)
 */
export type JwtVerification =
  | { kind: 'valid'; auth: M2MAuth }
  | {
      kind: 'invalid'
      code: 'invalid_token' | 'token_expired'
      description: string
      cause?: unknown
      /**
       * The same token may pass later (its `nbf` is ahead, or its `kid` is not in the JWKS we
       * hold yet: a key rotation): refuse it now, but do not remember the refusal.
       */
      mayPassLater?: true
    }
  | {
      kind: 'unavailable'
      cause: unknown
      /** Nothing was fetched: a JWKS fetch failed moments ago and is not retried yet. */
      backoff?: true
    }
  | { kind: 'misconfigured'; description: string; cause?: unknown }

/**
 * Where the keys of JWT-format tokens come from.
 *
 * @example
 * createJwtVerifier({ jwksUrl: 'https://api.clerk.com/v1/jwks', secretKey, clockSkewMs: 5000, now: Date.now })
 */
export interface JwtVerifierConfig {
  /** PEM (SPKI) public key; when set, no network is used. */
  jwtKey?: string | undefined
  /** JWKS endpoint, used when no `jwtKey` is given. */
  jwksUrl?: string | undefined
  /** Sent as `Authorization: Bearer …` to the JWKS endpoint, as Clerk requires. */
  secretKey?: string | undefined
  clockSkewMs: number
  now: () => number
  fetch?: FetchLike | undefined
  /** @defaultValue 5000 */
  jwksTimeoutMs?: number
  /** Minimum time between two JWKS refetches for an unknown `kid`. @defaultValue 30000 */
  jwksCooldownMs?: number
  /** After a failed JWKS fetch, misses fail fast (unavailable) this long. @defaultValue 1000 */
  jwksRetryMs?: number
  /** Called once per JWKS request sent (the verifier counts it in `stats().upstreamCalls`). */
  onFetch?: () => void
}

/**
 * Builds a local verifier of Clerk M2M JWTs: signature (PEM key or JWKS), `exp`/`nbf` with clock
 * skew, `sub` must be a machine. The JWKS is cached by jose, refetched on an unknown `kid` at most
 * once per cooldown, concurrent refetches share one request.
 *
 * @example
 * const verifyJwt = createJwtVerifier({ jwtKey: process.env.CLERK_JWT_KEY, clockSkewMs: 5000, now: Date.now })
 * const result = await verifyJwt(token)
 */
export function createJwtVerifier(
  config: JwtVerifierConfig,
): (token: string) => Promise<JwtVerification> {
  const getKey = buildKeyResolver(config)
  const clockTolerance = Math.ceil(config.clockSkewMs / 1000)

  return async function verifyJwt(token) {
    let header: ReturnType<typeof decodeProtectedHeader>
    try {
      header = decodeProtectedHeader(token)
    } catch (cause) {
      return invalid('invalid_token', 'The token is not a well-formed JWT', cause)
    }
    if (header.cat !== undefined && header.cat !== M2M_JWT_CATEGORY) {
      return invalid('invalid_token', 'The JWT is not an M2M token')
    }
    if (typeof header.alg !== 'string' || !ALLOWED_ALGORITHMS.includes(header.alg)) {
      return invalid('invalid_token', 'The JWT is signed with an unsupported algorithm')
    }
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, getKey, {
        algorithms: ALLOWED_ALGORITHMS,
        clockTolerance,
        currentDate: new Date(config.now()),
      }))
    } catch (cause) {
      return classify(cause)
    }
    if (typeof payload.sub !== 'string' || !MACHINE_ID.test(payload.sub)) {
      return invalid('invalid_token', 'The JWT subject is not a machine')
    }
    return { kind: 'valid', auth: toAuth(payload, payload.sub) }
  }
}

function invalid(
  code: 'invalid_token' | 'token_expired',
  description: string,
  cause?: unknown,
  mayPassLater?: true,
): JwtVerification {
  const result: JwtVerification = { kind: 'invalid', code, description }
  if (cause !== undefined) result.cause = cause
  if (mayPassLater) result.mayPassLater = true
  return result
}

/** A JWKS fetch failed moments ago: not asked again yet (transient, so `unavailable`). */
class JwksBackoff extends Error {
  override name = 'JwksBackoff'
  constructor() {
    super('the JWKS could not be fetched a moment ago; not asking again yet')
  }
}

/** Thrown inside key resolution when our own configuration, not the token, is at fault. */
class KeyConfigError extends Error {
  override name = 'KeyConfigError'
}

function classify(cause: unknown): JwtVerification {
  if (cause instanceof KeyConfigError) {
    return { kind: 'misconfigured', description: cause.message, cause: cause.cause }
  }
  if (cause instanceof JwksBackoff) return { kind: 'unavailable', cause, backoff: true }
  if (cause instanceof errors.JWTExpired)
    return invalid('token_expired', 'The token has expired', cause)
  // Key material that could not be fetched says nothing about the token: transient, fail closed.
  if (
    cause instanceof errors.JWKSTimeout ||
    cause instanceof errors.JWKSInvalid ||
    // jose reports a non-200 or unparsable JWKS response as a bare JOSEError.
    (cause instanceof errors.JOSEError && cause.constructor === errors.JOSEError)
  ) {
    return { kind: 'unavailable', cause }
  }
  if (cause instanceof errors.JOSEError) {
    if (cause instanceof errors.JWTClaimValidationFailed && cause.claim === 'nbf') {
      return invalid('invalid_token', 'The token is not valid yet', cause, true)
    }
    if (cause instanceof errors.JWKSNoMatchingKey) {
      const description = 'The token is signed with a key the JWKS does not have'
      return invalid('invalid_token', description, cause, true)
    }
    return invalid('invalid_token', 'The token signature or claims are invalid', cause)
  }
  // Anything else (a network error from fetch, a JSON parse failure of the JWKS) is transient.
  return { kind: 'unavailable', cause }
}

function toAuth(payload: JWTPayload, subject: string): M2MAuth {
  let scopes: string[] = []
  const rawScopes = payload['scopes']
  // Clerk puts scopes in a space-separated `scopes` claim, falling back to `aud`.
  if (typeof rawScopes === 'string') scopes = rawScopes.split(' ').filter(Boolean)
  else if (Array.isArray(rawScopes))
    scopes = rawScopes.filter((s): s is string => typeof s === 'string')
  else if (Array.isArray(payload.aud))
    scopes = payload.aud.filter((s): s is string => typeof s === 'string')
  else if (typeof payload.aud === 'string') scopes = [payload.aud]

  let claims: M2MClaims | null = null
  for (const name of Object.keys(payload)) {
    if (RESERVED_CLAIMS.has(name)) continue
    claims ??= {}
    claims[name] = payload[name]
  }
  return {
    tokenType: 'm2m_token',
    format: 'jwt',
    id: typeof payload.jti === 'string' ? payload.jti : '',
    subject,
    scopes,
    claims,
    expiration: typeof payload.exp === 'number' ? payload.exp * 1000 : null,
  }
}

function buildKeyResolver(config: JwtVerifierConfig): JWTVerifyGetKey {
  const pem = config.jwtKey
  if (pem !== undefined && pem !== '') return pemKeyResolver(pem)
  if (config.jwksUrl === undefined) {
    throw new TypeError('JWT verification needs jwt.jwtKey (or CLERK_JWT_KEY) or jwt.jwksUrl')
  }
  const headers: Record<string, string> = {}
  if (config.secretKey) headers['authorization'] = `Bearer ${config.secretKey}`
  const fetchImpl: FetchLike = config.fetch ?? ((url, init) => fetch(url, init))
  const retryMs = config.jwksRetryMs ?? 1_000
  // jose refetches on every miss while the JWKS cannot be had, so in an outage each JWT-shaped
  // token (random ones too) would be one more request to Clerk. After a failed fetch, misses fail
  // fast for `retryMs` without asking.
  let failedUntil = Number.NEGATIVE_INFINITY
  const remote = createRemoteJWKSet(new URL(config.jwksUrl), {
    headers,
    timeoutDuration: config.jwksTimeoutMs ?? 5000,
    cooldownDuration: config.jwksCooldownMs ?? 30_000,
    [customFetch]: async (url: string, init: RequestInit) => {
      // A clock that stepped back must not stretch the back-off by the size of the step.
      const now = config.now()
      if (now < failedUntil && failedUntil - now <= retryMs) throw new JwksBackoff()
      let response: Response
      try {
        config.onFetch?.()
        response = await fetchImpl(url, init)
      } catch (error) {
        failedUntil = config.now() + retryMs
        throw error
      }
      // jose hides the status; a JWKS endpoint refusing our key is our misconfiguration, not a
      // bad token and not an outage.
      if (response.status === 401 || response.status === 403) {
        throw new KeyConfigError(`the JWKS endpoint refused the secret key (${response.status})`)
      }
      if (!response.ok) failedUntil = config.now() + retryMs
      return response
    },
  })
  return remote
}

/**
 * Resolves keys from our PEM. Whether the PEM is usable is decided once, for every accepted
 * algorithm, never from a token's header: a header naming an algorithm the key cannot serve is a
 * bad token (401), not a broken key (500).
 */
function pemKeyResolver(pem: string): JWTVerifyGetKey {
  let keys: Promise<Map<string, CryptoKey>> | undefined
  return async (header) => {
    keys ??= importPem(pem)
    const key = (await keys).get(header.alg)
    if (key === undefined) {
      throw new errors.JOSEAlgNotAllowed('the token algorithm does not match the configured key')
    }
    return key
  }
}

async function importPem(pem: string): Promise<Map<string, CryptoKey>> {
  const keys = new Map<string, CryptoKey>()
  let cause: unknown
  // importSPKI binds a key to one algorithm (one hash, for RSA): every accepted one, together.
  for (const alg of ALLOWED_ALGORITHMS) {
    try {
      const key = await importSPKI(pem, alg)
      const { modulusLength } = key.algorithm as RsaHashedKeyAlgorithm
      if (typeof modulusLength === 'number' && modulusLength >= MIN_RSA_BITS) keys.set(alg, key)
      else cause ??= new Error(`the RSA key is shorter than ${MIN_RSA_BITS} bits`)
    } catch (error) {
      cause ??= error
    }
  }
  if (keys.size === 0) {
    throw new KeyConfigError(
      `jwt.jwtKey (CLERK_JWT_KEY) is not a usable PEM public key (RSA, SPKI, at least ${MIN_RSA_BITS} bits)`,
      { cause },
    )
  }
  return keys
}
