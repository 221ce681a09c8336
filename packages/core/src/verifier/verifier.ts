import { LRUCache } from 'lru-cache'
import { decodeCachedAuth } from '../cache/decode.js'
import { digest, digestSync, digestToBase64url, sha256 } from '../cache/hash.js'
import { createM2MClient } from '../client/index.js'
import { DEFAULT_TIMEOUT_MS, nonEmpty, readEnv } from '../client/options.js'
import { M2MApiError, M2MAuthError, type M2MAuthErrorCode } from '../errors.js'
import { callObserver } from '../http/observe.js'
import { createJwtVerifier, type JwtVerification } from '../jwt/verify-jwt.js'
import type { M2MClient, M2MClientOptions, M2MToken } from '../types.js'
import { validateVerifierOptions } from './options.js'
import { Bulkhead, CircuitBreaker, MAX_OPEN_MS } from './primitives.js'
import { MAX_TOKEN_LENGTH, tokenShape } from './shape.js'
import type {
  CachedVerification,
  M2MAuth,
  M2MEvent,
  M2MVerifier,
  M2MVerifierOptions,
  M2MVerifierStats,
} from './types.js'

const DEFAULT_TTL_MS = 30_000
const DEFAULT_MAX_ENTRIES = 10_000
const DEFAULT_NEGATIVE_TTL_MS = 10_000
const DEFAULT_MAX_CONCURRENT = 32
const DEFAULT_MAX_QUEUED = 256
const DEFAULT_BREAKER_THRESHOLD = 5
const DEFAULT_BREAKER_OPEN_MS = 5_000
const DEFAULT_CLOCK_SKEW_MS = 5_000
/** How far ahead of ours another instance's clock may be before its store entries are refused. */
const MAX_STORE_CLOCK_AHEAD_MS = 1_000
/** Retry-After for a 503 when nothing better is known (no upstream Retry-After, breaker closed). */
const DEFAULT_RETRY_AFTER_MS = 1_000
/** Revoked ids are remembered at least this long, and never less than an entry can live. */
const MIN_REVOKED_MEMORY_MS = 10 * 60_000
const REVOKED_MAX_IDS = 10_000
const MACHINE_ID_RE = /^mch_\w+$/
/** A shared store or bus slower than this is treated as down: a miss, or a `bus_error`. */
const SHARED_TIER_TIMEOUT_MS = 1_000
/** Deep enough for any real claims; deeper values are frozen no further (and never mutated by us). */
const MAX_FREEZE_DEPTH = 32

/** A positive cache entry. A class so every entry shares one hidden class (fast, compact). */
class Entry {
  constructor(
    readonly auth: M2MAuth,
    /** Served as a hit until then; never past the token's expiry. */
    readonly freshUntil: number,
    /** Kept for stale-if-error until then; never past the token's expiry. */
    readonly staleUntil: number,
    /** Precomputed `machineId` check, so a hit costs no array scan. */
    readonly scopeOk: boolean,
    /**
     * When it was cached, on our clock. A clock that reads earlier than this has stepped back, so
     * the entry's lifetime can no longer be trusted (it would stretch by the size of the step and
     * break the `ttlMs` revocation bound): it is then treated as absent.
     */
    readonly storedAt: number,
  ) {}
}

/** A negative cache entry: the verdict, not the error object, so it holds no stack. */
class Rejection {
  constructor(
    readonly code: M2MAuthErrorCode,
    readonly description: string,
    readonly until: number,
  ) {}
}

/** What one upstream (or store, or JWT) resolution concluded; shared by coalesced callers. */
type Outcome = Entry | M2MAuthError

/**
 * True when a failure looks like the call was cancelled rather than answered: an AbortError
 * anywhere in the cause chain. Nothing in the verifier aborts its own calls (timeouts come back
 * as `M2MConnectionError('timeout')`), so this is the runtime ending the request that owned the
 * call, as workerd does when a client disconnects.
 */
function isCancellation(err: unknown): boolean {
  let current: unknown = err
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth++) {
    if ((current as { name?: unknown }).name === 'AbortError') return true
    current = (current as { cause?: unknown }).cause
  }
  return false
}

/** A shared-tier operation (store get, bus publish) that did not settle in time. */
class SharedTierTimeout extends Error {
  override name = 'SharedTierTimeout'
}

/**
 * Settles like `work`, or rejects with `SharedTierTimeout` after `ms`: a store or bus that never
 * answers must not hang a request or a `revoke()`. The timer is cleared either way.
 */
function within<T>(work: PromiseLike<T> | T, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, rejectTimer) => {
    timer = setTimeout(() => rejectTimer(new SharedTierTimeout()), ms)
  })
  return Promise.race([Promise.resolve(work), deadline]).finally(() => clearTimeout(timer))
}

/**
 * Freezes claims all the way down: one route must not change what the next one sees. An object
 * already frozen is taken as done; claims come from JSON, so none is frozen before we get it.
 */
function deepFreeze(value: unknown, depth = 0): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return
  Object.freeze(value)
  if (depth >= MAX_FREEZE_DEPTH) return
  for (const child of Object.values(value)) deepFreeze(child, depth + 1)
}

/** Thrown into a follower whose shared call did not settle in time (see `join`). */
class FollowerTimeout extends Error {
  override name = 'FollowerTimeout'
}

/** Maps Clerk's 404/400 error code to our verdict; the emulator uses the same codes. */
function classifyRejection(err: M2MApiError): { code: M2MAuthErrorCode; description: string } {
  for (const entry of err.errors) {
    const code = entry.code.toLowerCase()
    if (code.includes('revoked'))
      return { code: 'token_revoked', description: 'The token has been revoked' }
    if (code.includes('expired'))
      return { code: 'token_expired', description: 'The token has expired' }
  }
  if (err.status === 400) return { code: 'invalid_token', description: 'The token is malformed' }
  return { code: 'invalid_token', description: 'The token is unknown' }
}

function isM2MToken(value: unknown): value is M2MToken {
  const t = value as M2MToken | null
  return (
    typeof t === 'object' &&
    t !== null &&
    typeof t.id === 'string' &&
    typeof t.subject === 'string' &&
    MACHINE_ID_RE.test(t.subject) &&
    Array.isArray(t.scopes) &&
    t.scopes.every((s) => typeof s === 'string') &&
    typeof t.revoked === 'boolean' &&
    typeof t.expired === 'boolean' &&
    (t.expiration === null || typeof t.expiration === 'number')
  )
}

/** The envelope of a store value; its `auth` is then checked by `decodeCachedAuth`. */
function isStoredShape(
  value: unknown,
): value is { auth: unknown; verifiedAt: number; expiresAt: number } {
  const v = value as { expiresAt?: unknown; verifiedAt?: unknown } | null
  // A NaN or infinite time would never compare as past: such an entry would live for ever.
  return (
    typeof v === 'object' &&
    v !== null &&
    Number.isFinite(v.expiresAt) &&
    Number.isFinite(v.verifiedAt)
  )
}

/** Pools of subjects and scope lists: a fleet has few machines, a cache many tokens. */
const INTERN_MAX = 1_024

function createSealer(): (auth: M2MAuth) => M2MAuth {
  const strings = new Map<string, string>()
  const scopeLists = new Map<string, string[]>()
  const intern = (value: string): string => {
    const pooled = strings.get(value)
    if (pooled !== undefined) return pooled
    if (strings.size < INTERN_MAX) strings.set(value, value)
    return value
  }
  // Every caller of a cached token gets the same object: it is frozen so one route cannot change
  // what the next one sees, which also makes sharing the subject and scope list between entries
  // safe. Interning saves ~100 B per entry at 100 000 entries (strings from JSON.parse are never
  // shared otherwise). Both pools are bounded.
  return function seal(auth) {
    // Only machine-id lists are pooled: their members contain no space, so the join is unambiguous.
    const poolable = auth.scopes.every((scope) => MACHINE_ID_RE.test(scope))
    const listKey = poolable ? auth.scopes.join(' ') : undefined
    let scopes = listKey === undefined ? undefined : scopeLists.get(listKey)
    if (scopes === undefined) {
      scopes = Object.freeze(auth.scopes.map(intern)) as string[]
      if (listKey !== undefined && scopeLists.size < INTERN_MAX) scopeLists.set(listKey, scopes)
    }
    deepFreeze(auth.claims)
    // A literal, not a spread: every entry then shares one compact hidden class.
    return Object.freeze({
      tokenType: auth.tokenType,
      format: auth.format,
      id: auth.id,
      subject: intern(auth.subject),
      scopes,
      claims: auth.claims,
      expiration: auth.expiration,
    })
  }
}

function describe(err: unknown): { errorCode: string; status?: number; message: string } {
  // Fixed texts only: upstream error messages are not ours and could in theory echo input.
  if (err instanceof M2MApiError) {
    return {
      errorCode: err.errors[0]?.code ?? 'api_error',
      status: err.status,
      message: `Clerk API answered ${err.status}`,
    }
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return {
      errorCode: typeof code === 'string' ? code : err.name,
      message: `${err.name}${typeof code === 'string' ? ` (${code})` : ''}`,
    }
  }
  return { errorCode: 'unknown', message: 'non-error thrown' }
}

/**
 * Builds a verifier of Clerk M2M tokens: shape check, two-tier cache (in-process LRU, optional
 * shared store), coalesced upstream calls behind a bulkhead and a circuit breaker, local JWT
 * verification, revocation across instances. Fails closed: any doubt is a rejection or a 503.
 *
 * @param options client options (or a ready `client`; then also pass its `timeoutMs`, from which
 *   the follower, queue and slot-lease bounds are derived) plus:
 * @param [options.machineId] this service's `mch_…`; tokens must list it in `scopes`
 * @param [options.cache.ttlMs=30000] life of a valid result (capped by the token's expiry); 0 = off
 * @param [options.cache.maxEntries=10000] positive LRU bound
 * @param [options.cache.negativeTtlMs=10000] life of an invalid (404/400) result
 * @param [options.cache.negativeMaxEntries=10000] negative LRU bound
 * @param [options.cache.store] shared second tier
 * @param [options.revocationBus] carries `revoke()` to other instances
 * @param [options.jwt] `{ jwtKey }` (PEM, default CLERK_JWT_KEY) or `{ jwksUrl }` (default `{apiUrl}/jwks`)
 * @param [options.maxConcurrentUpstream=32] upstream calls in flight
 * @param [options.maxQueuedUpstream=256] callers waiting for a slot before 503s start
 * @param [options.staleIfErrorMs=0] serve a known-good, unexpired token this long past its TTL during an outage
 * @param [options.breaker] `{ failureThreshold = 5, openMs = 5000 }` or `false`
 * @throws {TypeError} when an option is out of range (the message names it), or no secret key is found
 * @example
 * const verifier = createM2MVerifier({ machineId: 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk' })
 * try {
 *   const auth = await verifier.verify(token)
 *   console.log(auth.subject, auth.scopes)
 * } catch (err) {
 *   if (err instanceof M2MAuthError) console.log(err.status, err.code)
 * }
 */
export function createM2MVerifier(options: M2MVerifierOptions = {}): M2MVerifier {
  // Every option is checked here, at every level (types, ranges, unknown keys), before anything
  // reads it: what follows only fills in defaults.
  validateVerifierOptions(options)
  const cacheOptions = options.cache ?? {}
  const ttlMs = cacheOptions.ttlMs ?? DEFAULT_TTL_MS
  const maxEntries = cacheOptions.maxEntries ?? DEFAULT_MAX_ENTRIES
  const negativeTtlMs = cacheOptions.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS
  const negativeMaxEntries = cacheOptions.negativeMaxEntries ?? DEFAULT_MAX_ENTRIES
  const maxConcurrent = options.maxConcurrentUpstream ?? DEFAULT_MAX_CONCURRENT
  const maxQueued = options.maxQueuedUpstream ?? DEFAULT_MAX_QUEUED
  const staleIfErrorMs = options.staleIfErrorMs ?? 0
  const breakerOptions = options.breaker === false ? undefined : (options.breaker ?? {})
  const breakerThreshold = breakerOptions?.failureThreshold ?? DEFAULT_BREAKER_THRESHOLD
  const breakerOpenMs = breakerOptions?.openMs ?? DEFAULT_BREAKER_OPEN_MS
  const followerWaitMs = (options.timeoutMs ?? DEFAULT_TIMEOUT_MS) + 1_000
  const machineId = options.machineId
  const now = options.now ?? Date.now
  const onEvent = options.onEvent
  const store = cacheOptions.store
  const bus = options.revocationBus

  const client: M2MClient = options.client ?? createM2MClient(clientOptions(options))

  // One LRU per verifier, and a verifier has one client: the in-process cache is namespaced by
  // construction. The shared store gets an explicit namespace (apiUrl + key fingerprint).
  const positive = new LRUCache<string, Entry>({
    max: maxEntries,
    dispose: (entry, key) => unindex(entry.auth.id, key),
  })
  const negative = new LRUCache<string, Rejection>({ max: negativeMaxEntries })
  const revokedIds = new LRUCache<string, number>({ max: REVOKED_MAX_IDS })
  const revokedMemoryMs = Math.max(MIN_REVOKED_MEMORY_MS, ttlMs + staleIfErrorMs)
  /** Token id → cache key(s). Almost always one key per id, so a string, an array when more. */
  const byId = new Map<string, string | string[]>()
  const inflight = new Map<string, Promise<Outcome>>()
  const inflightSince = new Map<string, number>()
  // Live entries are bounded by the bulkhead (in flight + queued) plus JWT and store lookups.
  const inflightSweepAt = 2 * (maxConcurrent + maxQueued) + 64
  /** Outcomes of calls cancelled under their owner: never shared as a verdict. */
  const abandoned = new WeakSet<M2MAuthError>()
  // A lease outlives any live call (the client's deadline) and expires before followers give up
  // on a shared call, so the follower that falls back finds the hung call's slot reclaimable.
  const bulkhead = new Bulkhead(maxConcurrent, maxQueued, followerWaitMs - 500)
  const breaker =
    breakerOptions === undefined
      ? undefined
      : new CircuitBreaker(
          breakerThreshold,
          breakerOpenMs,
          now,
          (state, consecutiveFailures) =>
            emit(
              state === 'open'
                ? { type: 'breaker_open', consecutiveFailures }
                : { type: 'breaker_closed' },
            ),
          // A probe lasts at most as long as any upstream call may (the client's deadline).
          followerWaitMs - 500,
        )

  const seal = createSealer()
  const counters = {
    hits: 0,
    misses: 0,
    negativeHits: 0,
    coalesced: 0,
    upstreamCalls: 0,
    failures: 0,
    staleServed: 0,
  }

  let jwtVerifier: ((token: string) => Promise<JwtVerification>) | undefined
  let storePrefix: string | Promise<string> | undefined
  let unsubscribe: (() => void) | undefined
  if (bus !== undefined) unsubscribe = bus.subscribe((id) => markRevoked(id))

  function emit(event: M2MEvent): void {
    if (onEvent === undefined) return
    // A listener's bug must not fail a verification, nor end the process (see callObserver).
    callObserver(onEvent, event)
  }

  function unindex(id: string, key: string): void {
    const keys = byId.get(id)
    if (keys === undefined) return
    if (keys === key) byId.delete(id)
    else if (Array.isArray(keys)) {
      const rest = keys.filter((k) => k !== key)
      if (rest.length === 0) byId.delete(id)
      else byId.set(id, rest.length === 1 ? (rest[0] as string) : rest)
    }
  }

  function index(id: string, key: string): void {
    const keys = byId.get(id)
    if (keys === undefined) byId.set(id, key)
    else if (keys !== key) {
      if (!Array.isArray(keys)) byId.set(id, [keys, key])
      else if (!keys.includes(key)) keys.push(key)
    }
  }

  function isRevoked(id: string): boolean {
    const until = revokedIds.get(id)
    if (until === undefined) return false
    if (now() < until) return true
    revokedIds.delete(id)
    return false
  }

  function rememberRejection(key: string, code: M2MAuthErrorCode, description: string): void {
    // A definite "no" also ends any entry kept for stale-if-error: a token known to be revoked
    // must never come back as stale during a later outage.
    positive.delete(key)
    if (negativeTtlMs > 0)
      negative.set(key, new Rejection(code, description, now() + negativeTtlMs))
  }

  function reject(
    code: M2MAuthErrorCode,
    description: string,
    cause?: unknown,
    retryAfterMs?: number,
  ): M2MAuthError {
    return new M2MAuthError(code, description, { cause, retryAfterMs })
  }

  function unavailable(
    description: string,
    retryAfterMs: number | undefined,
    cause?: unknown,
  ): M2MAuthError {
    return reject(
      'verification_unavailable',
      description,
      cause,
      Math.max(1, retryAfterMs ?? DEFAULT_RETRY_AFTER_MS),
    )
  }

  function namespacePrefix(): string | Promise<string> {
    if (storePrefix === undefined) {
      // The API URL and key fingerprint are hashed so store keys have a fixed, short shape.
      const hashed = sha256(`${client.apiUrl}\n${client.keyFingerprint}`)
      storePrefix =
        typeof hashed === 'string'
          ? `m2m-guard:v2:${hashed.slice(0, 16)}:`
          : hashed.then((d) => (storePrefix = `m2m-guard:v2:${d.slice(0, 16)}:`))
    }
    return storePrefix
  }

  /** In process a key is the binary digest; the shared store sees it as base64url. */
  async function storeKey(key: string): Promise<string> {
    return (await namespacePrefix()) + digestToBase64url(key)
  }

  function storeError(operation: 'get' | 'set' | 'delete', err: unknown): void {
    emit({ type: 'store_error', operation, message: describe(err).message })
  }

  function storeDelete(key: string): void {
    if (store === undefined) return
    // Fire and forget: revocation and invalidation must not wait on (or fail with) the store.
    storeKey(key)
      .then((k) => store.delete(k))
      .catch((err: unknown) => storeError('delete', err))
  }

  /** Puts a verified identity in the cache (and store) and makes the entry callers will check. */
  function remember(
    key: string,
    auth: M2MAuth,
    source: 'upstream' | 'jwt' | 'store',
    storeExpiresAt?: number,
  ): Entry {
    const t = now()
    const expiration = auth.expiration ?? Number.POSITIVE_INFINITY
    let freshUntil = Math.min(t + ttlMs, expiration)
    if (storeExpiresAt !== undefined) freshUntil = Math.min(freshUntil, storeExpiresAt)
    const staleUntil = Math.min(freshUntil + staleIfErrorMs, expiration)
    const entry = new Entry(
      auth,
      freshUntil,
      staleUntil,
      machineId === undefined || auth.scopes.includes(machineId),
      t,
    )
    if (ttlMs > 0 && freshUntil > t) {
      positive.set(key, entry)
      // JWTs without a jti have no id to revoke by; indexing '' would only grow one list.
      if (auth.id !== '') index(auth.id, key)
      if (store !== undefined && source !== 'store' && auth.id !== '') {
        // Without an id the entry could not be revoked in other instances, and the stores'
        // decoders refuse it: writing it would only cost a (billed) write per verification.
        const value: CachedVerification = { auth, verifiedAt: t, expiresAt: freshUntil }
        storeKey(key)
          .then((k) => store.set(k, value, freshUntil - t))
          .catch((err: unknown) => storeError('set', err))
      }
    }
    if (onEvent !== undefined) {
      emit({ type: 'verified', id: auth.id, subject: auth.subject, format: auth.format, source })
    }
    return entry
  }

  /** Shared-store lookup; any failure is a miss, never a failed request. */
  async function fromStore(key: string): Promise<Entry | undefined> {
    if (store === undefined) return undefined
    let value: unknown
    try {
      value = await within(store.get(await storeKey(key)), SHARED_TIER_TIMEOUT_MS)
    } catch (err) {
      storeError('get', err)
      return undefined
    }
    if (value === undefined || value === null) return undefined
    // Field by field, like the Redis and KV stores do: only the documented shape becomes an
    // identity, whatever a custom store hands back.
    const stored = isStoredShape(value) ? value : undefined
    const auth = stored === undefined ? undefined : decodeCachedAuth(stored.auth)
    if (stored === undefined || auth === undefined || !MACHINE_ID_RE.test(auth.subject)) {
      storeError('get', new TypeError('store returned a malformed entry'))
      return undefined
    }
    const t = now()
    // Aged from its verification, against this verifier's own ttlMs: a writer with a longer ttlMs
    // must not stretch this one's revocation bound. An entry from a clock well ahead is refused
    // rather than trusted for the size of the gap.
    const { verifiedAt } = stored
    if (verifiedAt - t > MAX_STORE_CLOCK_AHEAD_MS) {
      // Said out loud: otherwise sharing would quietly stop while one instance's clock is off.
      const ahead = new RangeError('store entry is stamped ahead of this clock; treated as a miss')
      storeError('get', Object.assign(ahead, { code: 'stamped_ahead_of_clock' }))
      return undefined
    }
    if (t - verifiedAt >= ttlMs) return undefined
    const expiresAt = Math.min(stored.expiresAt, verifiedAt + ttlMs)
    if (t >= expiresAt || (auth.expiration !== null && t >= auth.expiration)) return undefined
    if (isRevoked(auth.id)) {
      // The store is shared and may lag behind the bus; a revoked id wins.
      storeDelete(key)
      return undefined
    }
    emit({ type: 'cache_hit', id: auth.id, tier: 'store' })
    return remember(key, seal(auth), 'store', expiresAt)
  }

  function acceptUpstream(key: string, token: M2MToken): Outcome {
    if (!isM2MToken(token)) {
      return unavailable('The Clerk API returned an unusable verification', undefined)
    }
    const t = now()
    let verdict: { code: M2MAuthErrorCode; description: string } | undefined
    // Defensive: a 200 is not enough, the body must say the token is live.
    if (token.revoked || isRevoked(token.id)) {
      verdict = { code: 'token_revoked', description: 'The token has been revoked' }
    } else if (token.expired || (token.expiration !== null && token.expiration <= t)) {
      verdict = { code: 'token_expired', description: 'The token has expired' }
    }
    if (verdict !== undefined) {
      rememberRejection(key, verdict.code, verdict.description)
      return reject(verdict.code, verdict.description)
    }
    const auth = seal({
      tokenType: 'm2m_token',
      format: 'opaque',
      id: token.id,
      subject: token.subject,
      scopes: token.scopes,
      claims: token.claims ?? null,
      expiration: token.expiration,
    })
    return remember(key, auth, 'upstream')
  }

  function upstreamFailure(key: string, err: unknown, probe: number): Outcome {
    if (err instanceof M2MApiError) {
      if (err.status === 401 || err.status === 403) {
        // Upstream is reachable and says our own key is wrong: an operator problem, not the
        // caller's, and not an outage. Never cached: fixing the key must take effect at once.
        breaker?.success()
        emit({ type: 'misconfigured', status: err.status, message: describe(err).message })
        return reject(
          'verifier_misconfigured',
          'The Clerk API refused the verifier secret key; check the secretKey option, CLERK_MACHINE_SECRET_KEY or CLERK_SECRET_KEY',
          err,
        )
      }
      if (
        err.status < 400 ||
        (err.status < 500 && err.status !== 429 && err.errors[0]?.code === 'unexpected_response')
      ) {
        // A redirect, or a 4xx without Clerk's error body (another server's 404 page): apiUrl
        // does not lead to Clerk. Our problem, not the caller's token, and never cached, so
        // fixing the URL takes effect at once. A 5xx or 429 page (a load balancer in front of
        // Clerk during an outage) stays an outage, below.
        breaker?.success()
        emit({ type: 'misconfigured', status: err.status, message: describe(err).message })
        return reject(
          'verifier_misconfigured',
          `The API at apiUrl answered ${err.status} without a Clerk error body; check apiUrl (CLERK_API_URL)`,
          err,
        )
      }
      if (err.status === 404 || err.status === 400) {
        breaker?.success()
        const { code, description } = classifyRejection(err)
        rememberRejection(key, code, description)
        return reject(code, description, err)
      }
      if (err.status !== 429 && err.status < 500) {
        // Another 4xx says the token is not acceptable, but not in a way we know to be stable.
        breaker?.success()
        positive.delete(key)
        return reject('invalid_token', 'The token was not accepted', err)
      }
    }
    if (isCancellation(err)) {
      // Says nothing about upstream's health: no breaker failure. Followers see the mark and
      // make their own call (see `join`); only the caller whose request went away gets the 503.
      // A cancelled probe frees the half-open slot at once for the next caller.
      if (probe !== 0) breaker?.cancel(probe)
      const cancelled = unavailable('Token verification was cancelled', undefined, err)
      abandoned.add(cancelled)
      return cancelled
    }
    counters.failures++
    const info = describe(err)
    emit({ type: 'upstream_error', ...info })
    // Bounded like the breaker's open time: callers are not told to wait longer than we do.
    const retryAfter =
      err instanceof M2MApiError && err.retryAfterMs !== undefined
        ? Math.min(err.retryAfterMs, MAX_OPEN_MS)
        : undefined
    breaker?.failure(retryAfter)
    return unavailable(
      'Token verification is temporarily unavailable',
      retryAfter ??
        (breaker !== undefined && breaker.remainingMs() > 0 ? breaker.remainingMs() : undefined),
      err,
    )
  }

  async function callUpstream(key: string, token: string): Promise<Outcome> {
    const waitMs = breaker?.admit() ?? 0
    if (waitMs > 0) {
      return unavailable('Token verification is temporarily unavailable (circuit open)', waitMs)
    }
    // Let through while half-open: this call is the probe (0: not one), and must report back.
    const probe = breaker?.state === 'half_open' ? breaker.currentProbe() : 0
    const slot = bulkhead.acquire()
    if (slot === false) {
      if (probe !== 0) breaker?.cancel(probe)
      return unavailable('Too many token verifications in flight', undefined)
    }
    const lease = slot instanceof Promise ? await bulkhead.wait(slot, followerWaitMs) : slot
    if (lease === undefined) {
      if (probe !== 0) breaker?.cancel(probe)
      return unavailable('Too many token verifications in flight', undefined)
    }
    let result: M2MToken
    try {
      counters.upstreamCalls++
      result = await client.verifyToken({ token })
    } catch (err) {
      return upstreamFailure(key, err, probe)
    } finally {
      bulkhead.release(lease)
    }
    breaker?.success()
    return acceptUpstream(key, result)
  }

  function jwtVerifierFor(): (token: string) => Promise<JwtVerification> {
    if (jwtVerifier === undefined) {
      // Read as the client reads its key (trimmed; blank means unset), so a blank option falls
      // back to the environment here too, not to "no key" on the JWKS request.
      const env = readEnv()
      const jwtKey =
        nonEmpty(options.jwt?.jwtKey) ??
        (options.jwt?.jwksUrl === undefined ? nonEmpty(env['CLERK_JWT_KEY']) : undefined)
      jwtVerifier = createJwtVerifier({
        jwtKey,
        jwksUrl: options.jwt?.jwksUrl ?? `${client.apiUrl}/jwks`,
        secretKey:
          nonEmpty(options.secretKey) ??
          nonEmpty(env['CLERK_MACHINE_SECRET_KEY']) ??
          nonEmpty(env['CLERK_SECRET_KEY']),
        clockSkewMs: options.jwt?.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS,
        now,
        fetch: options.fetch,
        onFetch: () => {
          counters.upstreamCalls++
        },
      })
    }
    return jwtVerifier
  }

  async function verifyJwtLocally(key: string, token: string): Promise<Outcome> {
    const result = await jwtVerifierFor()(token)
    switch (result.kind) {
      case 'valid': {
        const { auth } = result
        if (auth.id !== '' && isRevoked(auth.id)) {
          rememberRejection(key, 'token_revoked', 'The token has been revoked')
          return reject('token_revoked', 'The token has been revoked')
        }
        return remember(key, seal(auth), 'jwt')
      }
      case 'invalid':
        // DESIGN: the negative cache is for final answers; a key rotation or an `nbf` just ahead
        // must not keep refusing a real token for negativeTtlMs.
        if (result.mayPassLater !== true) rememberRejection(key, result.code, result.description)
        return reject(result.code, result.description, result.cause)
      case 'misconfigured':
        emit({ type: 'misconfigured', status: 0, message: result.description })
        return reject('verifier_misconfigured', result.description, result.cause)
      case 'unavailable':
        // A back-off answer sent nothing upstream: like an open breaker, not a new failure.
        if (result.backoff !== true) {
          counters.failures++
          emit({ type: 'upstream_error', ...describe(result.cause) })
        }
        return unavailable(
          'The token signing keys are temporarily unavailable',
          undefined,
          result.cause,
        )
    }
  }

  /** The leader's work for one key: store, then JWT or upstream. Never rejects. */
  async function resolveMiss(
    key: string,
    token: string,
    format: 'opaque' | 'jwt',
  ): Promise<Outcome> {
    try {
      // ttlMs 0 turns caching off, the shared tier included: entries other verifiers wrote there
      // are older than 0 ms.
      if (store !== undefined && ttlMs > 0) {
        const stored = await fromStore(key)
        if (stored !== undefined) return stored
      }
      return format === 'jwt' ? await verifyJwtLocally(key, token) : await callUpstream(key, token)
    } catch (err) {
      // Our own bug or an exotic runtime failure: fail closed, as an outage.
      return unavailable('Token verification failed unexpectedly', undefined, err)
    }
  }

  function lead(key: string, token: string, format: 'opaque' | 'jwt'): Promise<Outcome> {
    if (inflight.size >= inflightSweepAt) sweepInflight()
    const pending: Promise<Outcome> = resolveMiss(key, token, format).finally(() => {
      if (inflight.get(key) === pending) {
        inflight.delete(key)
        inflightSince.delete(key)
      }
    })
    inflight.set(key, pending)
    inflightSince.set(key, performance.now())
    return pending
  }

  /**
   * Drops in-flight entries older than any live call can be. On workerd a call cancelled with
   * its request never settles, so its `finally` never removes it; without this sweep such
   * entries would accumulate for keys nobody asks about again.
   */
  function sweepInflight(): void {
    const limit = performance.now() - followerWaitMs
    for (const [key, since] of inflightSince) {
      if (since <= limit) {
        inflight.delete(key)
        inflightSince.delete(key)
      }
    }
  }

  function waitAsFollower(shared: Promise<Outcome>): Promise<Outcome> {
    // Bounded wait: on workerd a promise owned by another request can hang forever once that
    // request ends. Past the client's own deadline, the follower stops waiting.
    let timer: ReturnType<typeof setTimeout> | undefined
    const deadline = new Promise<never>((_, rejectTimer) => {
      timer = setTimeout(() => rejectTimer(new FollowerTimeout()), followerWaitMs)
    })
    return Promise.race([shared, deadline]).finally(() => clearTimeout(timer))
  }

  /**
   * Coalesces concurrent misses of one key onto one resolution. The workerd pitfall: the shared
   * promise belongs to the request that started it. If awaiting it from another request throws
   * (cross-request I/O), never settles (the owner's I/O was dropped with it), or ends in a
   * cancellation, the follower does not fail: it retries once, joining a fresh call or making its
   * own. Verdicts (valid, rejected, a real 503) are values, so they are shared as they are.
   */
  function join(key: string, token: string, format: 'opaque' | 'jwt'): Promise<Outcome> {
    const shared = inflight.get(key)
    // The leader's promise as it is: no async layer of our own on the common path.
    if (shared === undefined) return lead(key, token, format)
    return follow(shared, key, token, format)
  }

  async function follow(
    shared: Promise<Outcome>,
    key: string,
    token: string,
    format: 'opaque' | 'jwt',
  ): Promise<Outcome> {
    counters.coalesced++
    try {
      const outcome = await waitAsFollower(shared)
      if (!(outcome instanceof M2MAuthError && abandoned.has(outcome))) return outcome
    } catch {}
    if (inflight.get(key) === shared) {
      inflight.delete(key)
      inflightSince.delete(key)
    }
    const again = inflight.get(key)
    if (again === undefined) return lead(key, token, format)
    try {
      return await waitAsFollower(again)
    } catch {
      return resolveMiss(key, token, format)
    }
  }

  function admit(entry: Entry): M2MAuth {
    if (!entry.scopeOk) {
      emit({ type: 'rejected', code: 'insufficient_scope', id: entry.auth.id })
      throw reject('insufficient_scope', 'The token is not scoped to this machine')
    }
    return entry.auth
  }

  function fail(error: M2MAuthError, id?: string): never {
    if (onEvent !== undefined) {
      emit(
        id === undefined
          ? { type: 'rejected', code: error.code }
          : { type: 'rejected', code: error.code, id },
      )
    }
    throw error
  }

  async function verifySlow(token: unknown, knownKey: string | undefined): Promise<M2MAuth> {
    if (typeof token !== 'string')
      return fail(reject('invalid_request', 'The token must be a string'))
    if (token.length > MAX_TOKEN_LENGTH)
      return fail(reject('invalid_token', 'The token is longer than 4 KiB'))
    const format = tokenShape(token)
    if (format === undefined) return fail(reject('invalid_token', 'The token is not an M2M token'))
    const key = knownKey ?? (await digest(token))

    let t = now()
    let stale: Entry | undefined
    let entry = positive.get(key)
    if (entry !== undefined && t < entry.storedAt) {
      // The clock stepped back past this entry's birth: ask again rather than stretch its life.
      positive.delete(key)
      entry = undefined
    }
    if (entry !== undefined) {
      const { auth } = entry
      // Checked on every hit with our clock, not left to LRU timers: an entry never outlives its token.
      if (auth.expiration !== null && t >= auth.expiration) {
        positive.delete(key)
        rememberRejection(key, 'token_expired', 'The token has expired')
        return fail(reject('token_expired', 'The token has expired'), auth.id)
      }
      if (isRevoked(auth.id)) {
        positive.delete(key)
        return fail(reject('token_revoked', 'The token has been revoked'), auth.id)
      }
      if (t < entry.freshUntil) {
        counters.hits++
        if (onEvent !== undefined) emit({ type: 'cache_hit', id: auth.id, tier: 'memory' })
        return admit(entry)
      }
      if (t < entry.staleUntil) stale = entry
      else positive.delete(key)
    }
    const rejection = negative.get(key)
    if (rejection !== undefined) {
      // `until - negativeTtlMs` is when it was remembered: a clock stepped back before that ends it.
      if (t < rejection.until && t >= rejection.until - negativeTtlMs) {
        counters.negativeHits++
        return fail(reject(rejection.code, rejection.description))
      }
      negative.delete(key)
    }

    counters.misses++
    if (onEvent !== undefined) emit({ type: 'cache_miss' })
    const outcome = await join(key, token, format)
    if (outcome instanceof Entry) return admit(outcome)
    if (outcome.code === 'verification_unavailable' && stale !== undefined) {
      t = now()
      const expiration = stale.auth.expiration
      if (
        t < stale.staleUntil &&
        t >= stale.storedAt &&
        (expiration === null || t < expiration) &&
        !isRevoked(stale.auth.id)
      ) {
        counters.staleServed++
        emit({ type: 'stale_served', id: stale.auth.id, staleForMs: t - stale.freshUntil })
        return admit(stale)
      }
    }
    return fail(outcome)
  }

  function markRevoked(id: string): void {
    // Ids arrive from a bus, too: anything but a non-empty string is not an id.
    if (typeof id !== 'string' || id === '') return
    revokedIds.set(id, now() + revokedMemoryMs)
    const keys = byId.get(id)
    if (keys === undefined) return
    for (const key of Array.isArray(keys) ? [...keys] : [keys]) {
      positive.delete(key)
      rememberRejection(key, 'token_revoked', 'The token has been revoked')
      storeDelete(key)
    }
    byId.delete(id)
  }

  function evictId(id: string): void {
    const keys = byId.get(id)
    if (keys === undefined) return
    for (const key of Array.isArray(keys) ? [...keys] : [keys]) {
      positive.delete(key)
      storeDelete(key)
    }
  }

  return {
    verify(token: string): Promise<M2MAuth> {
      // The hit path: synchronous hash, one LRU lookup, one clock read, no await, no closure,
      // no event object unless someone listens. Shape is not re-checked: only well-formed tokens
      // ever get an entry. `freshUntil` is never past the token's expiry (see `remember`), so
      // `now() < freshUntil` is the expiry check on our clock; a revoked id is refused even if
      // its entry were still here (the set is empty until the first revocation).
      if (
        digestSync !== undefined &&
        typeof token === 'string' &&
        token.length <= MAX_TOKEN_LENGTH
      ) {
        const key = digestSync(token)
        const entry = positive.get(key)
        const t = entry === undefined ? 0 : now()
        if (
          entry?.scopeOk &&
          t < entry.freshUntil &&
          t >= entry.storedAt &&
          (revokedIds.size === 0 || !isRevoked(entry.auth.id))
        ) {
          counters.hits++
          if (onEvent !== undefined) emit({ type: 'cache_hit', id: entry.auth.id, tier: 'memory' })
          // A fresh promise per hit, not one kept per entry: with AsyncLocalStorage active, a kept
          // promise would pin the context of the request that created it for the entry's life.
          return Promise.resolve(entry.auth)
        }
        return verifySlow(token, key)
      }
      return verifySlow(token, undefined)
    },

    async invalidate(token: string): Promise<void> {
      if (typeof token !== 'string' || tokenShape(token) === undefined) return
      const key = await digest(token)
      positive.delete(key)
      negative.delete(key)
      storeDelete(key)
    },

    async revoke(m2mTokenId: string, reason?: string): Promise<void> {
      try {
        await client.revokeToken(
          reason === undefined ? { m2mTokenId } : { m2mTokenId, revocationReason: reason },
        )
      } catch (err) {
        // Not revoked upstream, so not remembered as revoked; but drop what we hold so the next
        // request re-asks Clerk rather than trusting a cache the operator wanted gone.
        evictId(m2mTokenId)
        throw err
      }
      markRevoked(m2mTokenId)
      if (bus !== undefined) {
        try {
          await within(bus.publish(m2mTokenId), SHARED_TIER_TIMEOUT_MS)
        } catch (err) {
          emit({ type: 'bus_error', message: describe(err).message })
        }
      }
    },

    stats(): M2MVerifierStats {
      return {
        ...counters,
        breaker: breaker?.current() ?? 'closed',
        entries: positive.size,
        negativeEntries: negative.size,
        inFlight: bulkhead.active,
        queued: bulkhead.queued,
      }
    },

    async close(): Promise<void> {
      unsubscribe?.()
      unsubscribe = undefined
    },
  }
}

function clientOptions(options: M2MVerifierOptions): M2MClientOptions {
  const picked: M2MClientOptions = {}
  if (options.secretKey !== undefined) picked.secretKey = options.secretKey
  if (options.apiUrl !== undefined) picked.apiUrl = options.apiUrl
  if (options.timeoutMs !== undefined) picked.timeoutMs = options.timeoutMs
  if (options.retry !== undefined) picked.retry = options.retry
  if (options.fetch !== undefined) picked.fetch = options.fetch
  return picked
}
