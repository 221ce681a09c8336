import type { M2MAuthErrorCode } from '../errors.js'
import type { M2MClaims, M2MClient, M2MClientOptions, M2MTokenFormat } from '../types.js'

/**
 * The verified identity handed to the route.
 *
 * @example
 * app.get('/report', (req, res) => res.json({ caller: req.m2m.subject }))
 */
export interface M2MAuth<Claims extends M2MClaims = M2MClaims> {
  tokenType: 'm2m_token'
  format: M2MTokenFormat
  /** Token id, `mt_…` (for JWTs, the `jti`). */
  id: string
  /** The calling machine, `mch_…`. */
  subject: string
  /** Machines the token may call. */
  scopes: string[]
  /**
   * Custom claims: an object for tokens minted through the API's usual clients. The API allows
   * any JSON value, so a token minted by other means may carry an array or a scalar, passed
   * through as sent; a `requireClaims` object then refuses it.
   */
  claims: Claims | null
  /** Expiry in ms since the epoch, or `null` when the token never expires. */
  expiration: number | null
}

/**
 * A cached verification result, as kept by a `CacheStore`.
 *
 * @example
 * const now = Date.now()
 * const entry: CachedVerification = { auth, verifiedAt: now, expiresAt: now + 30_000 }
 */
export interface CachedVerification {
  auth: M2MAuth
  /**
   * When the token was verified (upstream or by its JWT signature), in ms since the epoch. A
   * verifier reading the entry from a shared store ages it from here against its own `ttlMs`,
   * which may be shorter than the writer's.
   */
  verifiedAt: number
  /** When this entry stops being valid, in ms since the epoch; never past the token's expiry. */
  expiresAt: number
}

/**
 * A shared second cache tier behind the in-process LRU (Redis, Workers KV, …). Keys are the
 * verifier's hashed keys, never tokens. Implementations must not throw for a miss; a thrown
 * error or rejected promise is treated as a miss and reported as an event.
 *
 * @example
 * const store: CacheStore = {
 *   get: (key) => map.get(key),
 *   set: (key, value, ttlMs) => void map.set(key, value),
 *   delete: (key) => void map.delete(key),
 * }
 */
export interface CacheStore {
  get(key: string): Promise<CachedVerification | undefined> | CachedVerification | undefined
  set(key: string, value: CachedVerification, ttlMs: number): Promise<void> | void
  delete(key: string): Promise<void> | void
}

/**
 * Carries revoked token ids between instances, so `revoke()` on one evicts on all.
 *
 * @example
 * const bus: RevocationBus = {
 *   publish: async (id) => emitter.emit('revoked', id),
 *   subscribe: (listener) => (emitter.on('revoked', listener), () => emitter.off('revoked', listener)),
 * }
 */
export interface RevocationBus {
  publish(m2mTokenId: string): Promise<void> | void
  /** Returns the function that unsubscribes. */
  subscribe(listener: (m2mTokenId: string) => void): () => void
}

/**
 * Options of the in-process cache.
 *
 * @example
 * createM2MVerifier({ cache: { ttlMs: 10_000, maxEntries: 50_000 } })
 */
export interface M2MCacheOptions {
  /** Upper bound of a valid entry's life; 0 turns caching off. @defaultValue 30000 */
  ttlMs?: number
  /** @defaultValue 10000 */
  maxEntries?: number
  /** Life of an invalid (404/400) result. @defaultValue 10000 */
  negativeTtlMs?: number
  /** @defaultValue 10000 */
  negativeMaxEntries?: number
  /** A shared second tier. */
  store?: CacheStore
}

/**
 * Local verification of JWT-format tokens.
 *
 * @example
 * createM2MVerifier({ jwt: { jwtKey: process.env.CLERK_JWT_KEY } })
 */
export interface M2MJwtOptions {
  /** PEM public key. Default: CLERK_JWT_KEY. */
  jwtKey?: string
  /** Default: `{apiUrl}/v1/jwks`. */
  jwksUrl?: string
  /** @defaultValue 5000 */
  clockSkewMs?: number
}

/**
 * Circuit breaker in front of the upstream API.
 *
 * @example
 * createM2MVerifier({ breaker: { failureThreshold: 3, openMs: 10_000 } })
 */
export interface M2MBreakerOptions {
  /** Consecutive transient failures (timeouts, resets, 5xx, 429) that open it. @defaultValue 5 */
  failureThreshold?: number
  /** How long it stays open before one probe is let through (longer if upstream's Retry-After says so). @defaultValue 5000 */
  openMs?: number
}

/**
 * What the verifier reports through `onEvent`. Never contains a token or a secret.
 *
 * @example
 * createM2MVerifier({ onEvent: (e) => e.type === 'upstream_error' && log.warn(e) })
 */
export type M2MEvent =
  | {
      type: 'verified'
      id: string
      subject: string
      format: M2MTokenFormat
      source: 'upstream' | 'jwt' | 'store'
    }
  | { type: 'rejected'; code: M2MAuthErrorCode; id?: string }
  | { type: 'cache_hit'; id: string; tier: 'memory' | 'store' }
  | { type: 'cache_miss' }
  | { type: 'upstream_error'; status?: number; errorCode: string; message: string }
  | { type: 'breaker_open'; consecutiveFailures: number }
  | { type: 'breaker_closed' }
  | { type: 'stale_served'; id: string; staleForMs: number }
  /**
   * `status` is the HTTP status upstream answered, or 0 for a local cause: an unusable PEM, or
   * (Hono) a guard that could not be built from its options and environment.
   */
  | { type: 'misconfigured'; status: number; message: string }
  | { type: 'store_error'; operation: 'get' | 'set' | 'delete'; message: string }
  | { type: 'bus_error'; message: string }

/**
 * Options of `createM2MVerifier`: client options (or a ready `client`) plus caching and policy.
 *
 * @example
 * createM2MVerifier({ machineId: 'mch_…', cache: { ttlMs: 30_000 } })
 */
export interface M2MVerifierOptions extends M2MClientOptions {
  client?: M2MClient
  /** This service's machine id; when set, a token must list it in `scopes`. */
  machineId?: string
  cache?: M2MCacheOptions
  revocationBus?: RevocationBus
  jwt?: M2MJwtOptions
  /** @defaultValue 32 */
  maxConcurrentUpstream?: number
  /** Waiters beyond maxConcurrentUpstream before answering 503 at once. @defaultValue 256 */
  maxQueuedUpstream?: number
  /** Accept a previously verified, unexpired token this long past its entry's TTL during an outage. @defaultValue 0 */
  staleIfErrorMs?: number
  /** Circuit breaker settings, or `false` to turn it off. */
  breaker?: M2MBreakerOptions | false
  onEvent?: (event: M2MEvent) => void
  /** Injectable clock for tests. @defaultValue Date.now */
  now?: () => number
}

/**
 * Counters and sizes, for metrics.
 *
 * @example
 * setInterval(() => metrics.gauge('m2m.cache', verifier.stats().entries), 10_000)
 */
export interface M2MVerifierStats {
  hits: number
  misses: number
  negativeHits: number
  coalesced: number
  /** Requests sent to Clerk: `POST /m2m_tokens/verify` calls and JWKS fetches. */
  upstreamCalls: number
  /** Transient upstream failures (timeouts, resets, 5xx, 429, JWKS unavailable). */
  failures: number
  staleServed: number
  /** `half_open` as soon as the open time is up, before the probe is sent. */
  breaker: 'closed' | 'open' | 'half_open'
  entries: number
  negativeEntries: number
  inFlight: number
  queued: number
}

/**
 * Cached, coalesced, fail-closed verification of M2M tokens.
 *
 * @example
 * const verifier = createM2MVerifier({ machineId: 'mch_…' })
 * const auth = await verifier.verify(token) // throws M2MAuthError
 */
export interface M2MVerifier {
  verify(token: string): Promise<M2MAuth>
  /** Drops this token's cached result here (and in the shared store). */
  invalidate(token: string): Promise<void>
  /** Revokes upstream and evicts every cached entry of that id, on every instance sharing the bus. */
  revoke(m2mTokenId: string, reason?: string): Promise<void>
  stats(): M2MVerifierStats
  /** Unsubscribes from the bus. Cached entries stay usable; nothing keeps the process alive. */
  close(): Promise<void>
}
