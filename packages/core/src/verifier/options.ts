/**
 * Checks of `createM2MVerifier` options, run once when the verifier is built. A misspelt or
 * mistyped option is an error, never ignored: `{ machineID: 'mch_…' }` silently dropped would turn
 * the scope check off and admit tokens meant for other machines.
 */
import { closeness, editDistance, normalize } from '../hint.js'
import type { RetryOptions } from '../types.js'
import type {
  M2MBreakerOptions,
  M2MCacheOptions,
  M2MJwtOptions,
  M2MVerifierOptions,
} from './types.js'

/**
 * How the caller names itself in messages, and which other top-level keys it handles itself.
 *
 * @internal
 * @example
 * const context: VerifierOptionsContext = { name: 'requireM2M', extraKeys: ['realm'] }
 */
export interface VerifierOptionsContext {
  /** Prefix of every message. @defaultValue 'createM2MVerifier' */
  name: string
  /**
   * Top-level keys that are not verifier options but belong to the caller (a guard's
   * `allowedSubjects`, `realm`, …): skipped here, and offered as "did you mean" suggestions.
   */
  extraKeys?: Iterable<string>
}

type Bag = Record<string, unknown>

// Every key of each level, checked against its type so a new option cannot be forgotten here.
/**
 * Every top-level verifier option, as a set checked against `M2MVerifierOptions`. The guard uses
 * it to tell verifier options from its own.
 *
 * @internal
 * @example
 * if (Object.hasOwn(VERIFIER_OPTION_KEYS, key)) verifierOptions[key] = value
 */
export const VERIFIER_OPTION_KEYS = {
  secretKey: true,
  apiUrl: true,
  timeoutMs: true,
  retry: true,
  fetch: true,
  client: true,
  machineId: true,
  cache: true,
  revocationBus: true,
  jwt: true,
  maxConcurrentUpstream: true,
  maxQueuedUpstream: true,
  staleIfErrorMs: true,
  breaker: true,
  onEvent: true,
  now: true,
} satisfies Record<keyof M2MVerifierOptions, true>

const CACHE_KEYS = {
  ttlMs: true,
  maxEntries: true,
  negativeTtlMs: true,
  negativeMaxEntries: true,
  store: true,
} satisfies Record<keyof M2MCacheOptions, true>

const JWT_KEYS = {
  jwtKey: true,
  jwksUrl: true,
  clockSkewMs: true,
} satisfies Record<keyof M2MJwtOptions, true>

const BREAKER_KEYS = {
  failureThreshold: true,
  openMs: true,
} satisfies Record<keyof M2MBreakerOptions, true>

const RETRY_KEYS = {
  maxRetries: true,
  initialDelayMs: true,
  maxDelayMs: true,
  retryConnectionErrors: true,
} satisfies Record<keyof RetryOptions, true>

/** Every known option path, for suggestions across levels (`{ ttlMs }` → `cache.ttlMs`). */
const KNOWN_PATHS: readonly string[] = [
  ...Object.keys(VERIFIER_OPTION_KEYS),
  ...Object.keys(CACHE_KEYS).map((key) => `cache.${key}`),
  ...Object.keys(JWT_KEYS).map((key) => `jwt.${key}`),
  ...Object.keys(BREAKER_KEYS).map((key) => `breaker.${key}`),
  ...Object.keys(RETRY_KEYS).map((key) => `retry.${key}`),
]

// Same pattern as the verifier's machine id check and the JWT subject check.
const MACHINE_ID_RE = /^mch_\w+$/
// setTimeout overflows above 2^31-1 ms and fires at once. The client's bound, less the 1 s the
// verifier adds to timeoutMs for how long followers wait on a shared call (a timer too).
const MAX_TIMEOUT_MS = 2_147_483_647 - 1_000

/** Never echoes a string: a secret key or token passed in the wrong place must not leak. */
function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (typeof value === 'object') return 'an object'
  return `a ${typeof value}`
}

function isBag(value: unknown): value is Bag {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The best known path for an unknown key at `parent` (`''` for the top level). */
function suggest(parent: string, key: string, extraKeys: ReadonlySet<string>): string | undefined {
  let best: { path: string; rank: number } | undefined
  for (const path of [...KNOWN_PATHS, ...extraKeys]) {
    const dot = path.lastIndexOf('.')
    const score = closeness(key, path.slice(dot + 1))
    if (score === undefined) continue
    const sameLevel = path.slice(0, Math.max(dot, 0)) === parent
    // The kind of match first, then the same level over another level, then the edit distance.
    const rank =
      score * 1000 +
      (sameLevel ? 0 : 500) +
      editDistance(normalize(key), normalize(path.slice(dot + 1)))
    if (best === undefined || rank < best.rank) best = { path, rank }
  }
  return best?.path
}

/**
 * Validates `createM2MVerifier` options: unknown keys at every level (with a "did you mean" for
 * near misses), types, ranges, URLs and the shape of injected objects. Runs once, when the
 * verifier (or a guard) is built, never per request. `undefined` values are accepted everywhere,
 * so optional configuration can be spread in.
 *
 * @internal
 * @param options - What `createM2MVerifier` was given (`undefined` is allowed: all defaults).
 * @param [context={ name: 'createM2MVerifier' }] - Message prefix, and top-level keys the caller
 *   handles itself (a guard's route policy), which are skipped.
 * @throws {TypeError} naming the option path, e.g.
 *   "createM2MVerifier: unknown option `machineID` (did you mean `machineId`?)" or
 *   "createM2MVerifier: jwt.clockSkewMs must be a finite number ≥ 0, got -1".
 * @example
 * validateVerifierOptions({ machineId: 'mch_reports', cache: { ttlMs: 10_000 } }) // passes
 * validateVerifierOptions({ cache: { ttl: 0 } }) // TypeError: unknown option `cache.ttl` (did you mean `cache.ttlMs`?)
 * validateVerifierOptions(guardOptions, { name: 'requireM2M', extraKeys: ['allowedSubjects', 'realm'] })
 */
export function validateVerifierOptions(
  options: unknown,
  context: VerifierOptionsContext = { name: 'createM2MVerifier' },
): void {
  const where = context.name
  const extraKeys = new Set(context.extraKeys ?? [])
  function fail(message: string): never {
    throw new TypeError(`${where}: ${message}`)
  }
  function mustBe(path: string, expected: string, value: unknown): never {
    fail(`${path} must be ${expected}, got ${describe(value)}`)
  }

  /** Refuses keys outside `allowed`; `parent` is `''` at the top level. */
  function checkKeys(parent: string, bag: Bag, allowed: object, extra?: ReadonlySet<string>) {
    for (const key of Object.keys(bag)) {
      if (Object.hasOwn(allowed, key) || extra?.has(key)) continue
      const path = parent === '' ? key : `${parent}.${key}`
      const hint = suggest(parent, key, extraKeys)
      if (hint !== undefined) fail(`unknown option \`${path}\` (did you mean \`${hint}\`?)`)
      const known = parent === '' ? '' : `; expected one of ${Object.keys(allowed).join(', ')}`
      fail(`unknown option \`${path}\`${known}`)
    }
  }

  function nonNegative(path: string, value: unknown): void {
    if (value === undefined) return
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      mustBe(path, 'a finite number ≥ 0', value)
    }
  }

  function integerAtLeast(path: string, value: unknown, min: number): void {
    if (value === undefined) return
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      mustBe(path, `an integer ≥ ${min}`, value)
    }
  }

  function func(path: string, value: unknown, shape: string): void {
    if (value !== undefined && typeof value !== 'function') {
      mustBe(path, `a function ${shape}`, value)
    }
  }

  /** An object (or function) with the named methods, e.g. a store or a bus. */
  function methods(path: string, value: unknown, names: readonly string[], what: string): void {
    if (value === undefined) return
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null) {
      mustBe(path, `${what} (an object with ${names.join(', ')} methods)`, value)
    }
    const missing = names.filter((name) => typeof (value as Bag)[name] !== 'function')
    if (missing.length > 0) {
      fail(
        `${path} must be ${what}: ${missing.map((name) => `${name}()`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing`,
      )
    }
  }

  /** Parses an absolute http(s) URL, or throws naming the option (never echoing the value). */
  function httpUrl(path: string, value: string): URL {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      return fail(`${path} must be an absolute http(s) URL`)
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      fail(`${path} must use http: or https:`)
    }
    return url
  }

  if (options === undefined) return
  if (!isBag(options)) mustBe('options', 'an object', options)
  checkKeys('', options, VERIFIER_OPTION_KEYS, extraKeys)
  const o = options as { [K in keyof M2MVerifierOptions]?: unknown }

  // Client options. The client checks them again when it is built, but not when a ready `client`
  // is given, and the JWT path uses `secretKey`, `fetch` and `timeoutMs` either way.
  if (o.secretKey !== undefined) {
    if (typeof o.secretKey !== 'string') mustBe('secretKey', 'a string', o.secretKey)
    const key = (o.secretKey as string).trim()
    // Empty means "not set" (the environment is read), as in the client.
    if (key !== '' && !/^[\x21-\x7e]+$/.test(key)) {
      fail('secretKey contains characters a key never has (whitespace or non-ASCII)')
    }
  }
  if (o.apiUrl !== undefined) {
    if (typeof o.apiUrl !== 'string') mustBe('apiUrl', 'a string', o.apiUrl)
    const raw = (o.apiUrl as string).trim()
    if (raw !== '') {
      const url = httpUrl('apiUrl', raw)
      if (url.username || url.password || url.search || url.hash) {
        fail(
          'apiUrl must not contain credentials, a query or a fragment; pass the key as `secretKey`',
        )
      }
    }
  }
  if (o.timeoutMs !== undefined) {
    const t = o.timeoutMs
    if (typeof t !== 'number' || !(t > 0) || t > MAX_TIMEOUT_MS) {
      mustBe('timeoutMs', `a number of ms from 1 to ${MAX_TIMEOUT_MS}`, t)
    }
  }
  if (o.retry !== undefined && o.retry !== false) {
    if (!isBag(o.retry)) mustBe('retry', 'an object { maxRetries, … } or false', o.retry)
    const retry = o.retry as Bag
    checkKeys('retry', retry, RETRY_KEYS)
    const maxRetries = retry.maxRetries
    if (
      maxRetries !== undefined &&
      (typeof maxRetries !== 'number' ||
        !Number.isInteger(maxRetries) ||
        maxRetries < 0 ||
        maxRetries > 100)
    ) {
      mustBe('retry.maxRetries', 'an integer from 0 to 100', maxRetries)
    }
    nonNegative('retry.initialDelayMs', retry.initialDelayMs)
    nonNegative('retry.maxDelayMs', retry.maxDelayMs)
    if (
      retry.retryConnectionErrors !== undefined &&
      typeof retry.retryConnectionErrors !== 'boolean'
    ) {
      mustBe('retry.retryConnectionErrors', 'a boolean', retry.retryConnectionErrors)
    }
  }
  func('fetch', o.fetch, '(url, init) => Promise<Response>')
  if (o.client !== undefined) {
    methods(
      'client',
      o.client,
      ['verifyToken', 'revokeToken'],
      'an M2MClient (from createM2MClient())',
    )
    const client = o.client as Bag
    if (typeof client.apiUrl !== 'string' || typeof client.keyFingerprint !== 'string') {
      fail(
        'client must be an M2MClient (from createM2MClient()): apiUrl or keyFingerprint is missing',
      )
    }
  }

  // Scope check: the option that must never be silently wrong.
  if (o.machineId !== undefined) {
    if (typeof o.machineId !== 'string' || !MACHINE_ID_RE.test(o.machineId)) {
      fail(
        `machineId must be a machine id (mch_…)${typeof o.machineId === 'string' ? '' : `, got ${describe(o.machineId)}`}`,
      )
    }
  }

  if (o.cache !== undefined) {
    if (!isBag(o.cache)) {
      mustBe(
        'cache',
        'an object such as { ttlMs: 30000 } ({ ttlMs: 0 } turns caching off)',
        o.cache,
      )
    }
    const cache = o.cache as Bag
    checkKeys('cache', cache, CACHE_KEYS)
    nonNegative('cache.ttlMs', cache.ttlMs)
    integerAtLeast('cache.maxEntries', cache.maxEntries, 1)
    nonNegative('cache.negativeTtlMs', cache.negativeTtlMs)
    integerAtLeast('cache.negativeMaxEntries', cache.negativeMaxEntries, 1)
    methods('cache.store', cache.store, ['get', 'set', 'delete'], 'a CacheStore')
  }

  methods('revocationBus', o.revocationBus, ['publish', 'subscribe'], 'a RevocationBus')

  if (o.jwt !== undefined) {
    if (!isBag(o.jwt)) mustBe('jwt', 'an object { jwtKey } or { jwksUrl }', o.jwt)
    const jwt = o.jwt as Bag
    checkKeys('jwt', jwt, JWT_KEYS)
    if (jwt.jwtKey !== undefined && typeof jwt.jwtKey !== 'string') {
      mustBe('jwt.jwtKey', 'a PEM public key (a string)', jwt.jwtKey)
    }
    if (jwt.jwksUrl !== undefined) {
      if (typeof jwt.jwksUrl !== 'string') mustBe('jwt.jwksUrl', 'a string', jwt.jwksUrl)
      const url = httpUrl('jwt.jwksUrl', jwt.jwksUrl as string)
      // The secret key is sent to this URL as a Bearer header: userinfo would be a second secret.
      if (url.username || url.password) fail('jwt.jwksUrl must not contain credentials')
    }
    nonNegative('jwt.clockSkewMs', jwt.clockSkewMs)
  }

  integerAtLeast('maxConcurrentUpstream', o.maxConcurrentUpstream, 1)
  integerAtLeast('maxQueuedUpstream', o.maxQueuedUpstream, 0)
  nonNegative('staleIfErrorMs', o.staleIfErrorMs)

  if (o.breaker !== undefined && o.breaker !== false) {
    if (!isBag(o.breaker)) {
      mustBe('breaker', 'an object { failureThreshold, openMs } or false', o.breaker)
    }
    const breaker = o.breaker as Bag
    checkKeys('breaker', breaker, BREAKER_KEYS)
    integerAtLeast('breaker.failureThreshold', breaker.failureThreshold, 1)
    nonNegative('breaker.openMs', breaker.openMs)
  }

  func('onEvent', o.onEvent, '(event) => void')
  func('now', o.now, '() => number (ms since the epoch)')
}
