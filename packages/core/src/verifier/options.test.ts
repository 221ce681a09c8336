import { describe, expect, it, test } from 'vitest'
import { memoryCacheStore, memoryRevocationBus } from '../cache/memory.js'
import { createM2MClient } from '../client/index.js'
import { validateVerifierOptions } from './options.js'
import type { M2MVerifierOptions } from './types.js'

const MACHINE = 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk'
const PEM =
  '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----'

function attempt(options: unknown, context?: Parameters<typeof validateVerifierOptions>[1]) {
  return () => validateVerifierOptions(options, context)
}

/** Throws a TypeError whose message is exactly `message` (a string) or matches it (a RegExp). */
function expectRejected(options: unknown, message: string | RegExp): void {
  let thrown: unknown
  try {
    validateVerifierOptions(options)
  } catch (err) {
    thrown = err
  }
  expect(thrown, `${JSON.stringify(options)} was accepted`).toBeInstanceOf(TypeError)
  const text = (thrown as TypeError).message
  if (typeof message === 'string') expect(text).toBe(message)
  else expect(text).toMatch(message)
}

describe('validateVerifierOptions: what passes', () => {
  test('no options, or an empty object', () => {
    expect(attempt(undefined)).not.toThrow()
    expect(attempt({})).not.toThrow()
  })

  test('every option at once, with real stores, bus and client', () => {
    const full: Required<M2MVerifierOptions> = {
      secretKey: 'sk_test_abc',
      apiUrl: 'http://127.0.0.1:4010/v1',
      timeoutMs: 2000,
      retry: { maxRetries: 2, initialDelayMs: 100, maxDelayMs: 2000, retryConnectionErrors: true },
      fetch: (input, init) => fetch(input, init),
      client: createM2MClient({ secretKey: 'sk_test_abc', apiUrl: 'http://127.0.0.1:9' }),
      machineId: MACHINE,
      cache: {
        ttlMs: 30_000,
        maxEntries: 10_000,
        negativeTtlMs: 10_000,
        negativeMaxEntries: 10_000,
        store: memoryCacheStore(),
      },
      revocationBus: memoryRevocationBus(),
      jwt: { jwtKey: PEM, jwksUrl: 'https://api.clerk.com/v1/jwks', clockSkewMs: 5000 },
      maxConcurrentUpstream: 32,
      maxQueuedUpstream: 256,
      staleIfErrorMs: 60_000,
      breaker: { failureThreshold: 5, openMs: 5000 },
      onEvent: () => {},
      now: Date.now,
    }
    expect(attempt(full)).not.toThrow()
  })

  test('boundary values: zeros where zero is meaningful, false to turn things off', () => {
    expect(
      attempt({
        cache: { ttlMs: 0, negativeTtlMs: 0 },
        maxQueuedUpstream: 0,
        staleIfErrorMs: 0,
        jwt: { clockSkewMs: 0 },
        breaker: false,
        retry: false,
        maxConcurrentUpstream: 1,
      }),
    ).not.toThrow()
    expect(attempt({ breaker: { openMs: 0 }, retry: { maxRetries: 0 } })).not.toThrow()
    expect(attempt({ jwt: { jwksUrl: 'http://localhost:4010/v1/jwks' } })).not.toThrow()
    expect(attempt({ cache: { ttlMs: 1.5 }, timeoutMs: 2_147_482_647 })).not.toThrow()
  })

  test('undefined values of known keys pass, at every level (spread optional config)', () => {
    const env: { key?: string } = {}
    expect(
      attempt({
        secretKey: env.key,
        apiUrl: undefined,
        timeoutMs: undefined,
        retry: { maxRetries: undefined, initialDelayMs: undefined },
        fetch: undefined,
        client: undefined,
        machineId: undefined,
        cache: {
          ttlMs: undefined,
          maxEntries: undefined,
          negativeTtlMs: undefined,
          negativeMaxEntries: undefined,
          store: undefined,
        },
        revocationBus: undefined,
        jwt: { jwtKey: undefined, jwksUrl: undefined, clockSkewMs: undefined },
        maxConcurrentUpstream: undefined,
        maxQueuedUpstream: undefined,
        staleIfErrorMs: undefined,
        breaker: { failureThreshold: undefined, openMs: undefined },
        onEvent: undefined,
        now: undefined,
      }),
    ).not.toThrow()
    expect(
      attempt({ cache: undefined, jwt: undefined, breaker: undefined, retry: undefined }),
    ).not.toThrow()
  })

  test('empty secretKey and apiUrl mean "not set" (the environment is read), as in the client', () => {
    expect(attempt({ secretKey: '', apiUrl: '' })).not.toThrow()
    expect(
      attempt({ secretKey: ' sk_test_abc\n', apiUrl: ' https://api.clerk.com ' }),
    ).not.toThrow()
  })

  test('stores, buses and clients may keep their methods on a prototype', () => {
    class Store {
      get() {
        return undefined
      }
      set() {}
      delete() {}
    }
    class Bus {
      publish() {}
      subscribe() {
        return () => {}
      }
    }
    const real = createM2MClient({ secretKey: 'sk_test_abc' })
    const client = Object.create(real, { verifyToken: { value: async () => ({}) } })
    expect(
      attempt({ cache: { store: new Store() }, revocationBus: new Bus(), client }),
    ).not.toThrow()
  })
})

describe('validateVerifierOptions: the red-team cases', () => {
  it.each<[string, unknown, string | RegExp]>([
    [
      'machineID, a typo of machineId (scope check silently off)',
      { machineID: MACHINE },
      'createM2MVerifier: unknown option `machineID` (did you mean `machineId`?)',
    ],
    [
      'cache.ttl (caching stays on)',
      { cache: { ttl: 0 } },
      'createM2MVerifier: unknown option `cache.ttl` (did you mean `cache.ttlMs`?)',
    ],
    [
      "cache: 'off'",
      { cache: 'off' },
      'createM2MVerifier: cache must be an object such as { ttlMs: 30000 } ({ ttlMs: 0 } turns caching off), got a string',
    ],
    [
      'breaker: true',
      { breaker: true },
      'createM2MVerifier: breaker must be an object { failureThreshold, openMs } or false, got true',
    ],
    [
      'breaker.threshold',
      { breaker: { threshold: 1 } },
      'createM2MVerifier: unknown option `breaker.threshold` (did you mean `breaker.failureThreshold`?)',
    ],
    [
      'jwt.clockSkewMs: -1',
      { jwt: { clockSkewMs: -1 } },
      'createM2MVerifier: jwt.clockSkewMs must be a finite number ≥ 0, got -1',
    ],
    [
      'jwt.clockSkewMs: NaN',
      { jwt: { clockSkewMs: Number.NaN } },
      'createM2MVerifier: jwt.clockSkewMs must be a finite number ≥ 0, got NaN',
    ],
    [
      'jwt.jwksUrl not a URL',
      { jwt: { jwksUrl: 'not a url' } },
      'createM2MVerifier: jwt.jwksUrl must be an absolute http(s) URL',
    ],
    [
      'jwt.jwtKey: 42',
      { jwt: { jwtKey: 42 } },
      'createM2MVerifier: jwt.jwtKey must be a PEM public key (a string), got 42',
    ],
    [
      'maxQueuedUpstream: 1.5',
      { maxQueuedUpstream: 1.5 },
      'createM2MVerifier: maxQueuedUpstream must be an integer ≥ 0, got 1.5',
    ],
    [
      "onEvent: 'log'",
      { onEvent: 'log' },
      'createM2MVerifier: onEvent must be a function (event) => void, got a string',
    ],
    [
      'now: 123',
      { now: 123 },
      'createM2MVerifier: now must be a function () => number (ms since the epoch), got 123',
    ],
    [
      'cache.store without get/set/delete',
      { cache: { store: {} } },
      'createM2MVerifier: cache.store must be a CacheStore: get(), set(), delete() are missing',
    ],
    [
      'revocationBus without publish/subscribe',
      { revocationBus: { publish() {} } },
      'createM2MVerifier: revocationBus must be a RevocationBus: subscribe() is missing',
    ],
  ])('%s', (_, options, message) => {
    expectRejected(options, message)
  })
})

describe('validateVerifierOptions: unknown keys at every level', () => {
  it.each<[unknown, string]>([
    // Top level: case, snake_case, typos, and keys that belong one level down.
    [{ machineid: MACHINE }, 'unknown option `machineid` (did you mean `machineId`?)'],
    [{ machine_id: MACHINE }, 'unknown option `machine_id` (did you mean `machineId`?)'],
    [{ machinId: MACHINE }, 'unknown option `machinId` (did you mean `machineId`?)'],
    [{ mahcineId: MACHINE }, 'unknown option `mahcineId` (did you mean `machineId`?)'],
    [{ machineIds: [MACHINE] }, 'unknown option `machineIds` (did you mean `machineId`?)'],
    [{ secret: 'sk_x' }, 'unknown option `secret` (did you mean `secretKey`?)'],
    [{ apiURL: 'https://x' }, 'unknown option `apiURL` (did you mean `apiUrl`?)'],
    [{ timeout: 1 }, 'unknown option `timeout` (did you mean `timeoutMs`?)'],
    [{ ttlMs: 0 }, 'unknown option `ttlMs` (did you mean `cache.ttlMs`?)'],
    [{ store: {} }, 'unknown option `store` (did you mean `cache.store`?)'],
    [{ jwtKey: 'x' }, 'unknown option `jwtKey` (did you mean `jwt.jwtKey`?)'],
    [{ maxRetries: 1 }, 'unknown option `maxRetries` (did you mean `retry.maxRetries`?)'],
    [{ circuitBreaker: false }, 'unknown option `circuitBreaker` (did you mean `breaker`?)'],
    [{ onEvents: () => {} }, 'unknown option `onEvents` (did you mean `onEvent`?)'],
    [{ bus: {} }, 'unknown option `bus` (did you mean `revocationBus`?)'],
    [{ verbose: true }, 'unknown option `verbose`'],
    // Nested levels.
    [
      { cache: { maxEntry: 1 } },
      'unknown option `cache.maxEntry` (did you mean `cache.maxEntries`?)',
    ],
    [
      { cache: { negativeTtl: 1 } },
      'unknown option `cache.negativeTtl` (did you mean `cache.negativeTtlMs`?)',
    ],
    [
      { cache: { machineId: MACHINE } },
      'unknown option `cache.machineId` (did you mean `machineId`?)',
    ],
    [
      { cache: { enabled: false } },
      'unknown option `cache.enabled`; expected one of ttlMs, maxEntries, negativeTtlMs, negativeMaxEntries, store',
    ],
    [{ jwt: { key: 'x' } }, 'unknown option `jwt.key` (did you mean `jwt.jwtKey`?)'],
    [
      { jwt: { jwksUri: 'https://x' } },
      'unknown option `jwt.jwksUri` (did you mean `jwt.jwksUrl`?)',
    ],
    [{ jwt: { clockSkew: 1 } }, 'unknown option `jwt.clockSkew` (did you mean `jwt.clockSkewMs`?)'],
    [
      { jwt: { issuer: 'x' } },
      'unknown option `jwt.issuer`; expected one of jwtKey, jwksUrl, clockSkewMs',
    ],
    [
      { breaker: { openMS: 1 } },
      'unknown option `breaker.openMS` (did you mean `breaker.openMs`?)',
    ],
    [
      { retry: { maxDelay: 1 } },
      'unknown option `retry.maxDelay` (did you mean `retry.maxDelayMs`?)',
    ],
    [
      { retry: { retries: 1 } },
      'unknown option `retry.retries` (did you mean `retry.maxRetries`?)',
    ],
  ])('%j', (options, message) => {
    expectRejected(options, `createM2MVerifier: ${message}`)
  })

  test('a known key set to undefined does not hide an unknown sibling', () => {
    expectRejected({ machineId: undefined, machineID: MACHINE }, /unknown option `machineID`/)
  })
})

describe('validateVerifierOptions: types and ranges', () => {
  const cases: [options: unknown, message: string][] = [
    // The whole object.
    [null, 'options must be an object, got null'],
    ['mch_x', 'options must be an object, got a string'],
    [[], 'options must be an object, got an array'],
    // Client options.
    [{ secretKey: 42 }, 'secretKey must be a string, got 42'],
    [
      { secretKey: 'sk_test a' },
      'secretKey contains characters a key never has (whitespace or non-ASCII)',
    ],
    [{ apiUrl: 42 }, 'apiUrl must be a string, got 42'],
    [{ apiUrl: 'api.clerk.com' }, 'apiUrl must be an absolute http(s) URL'],
    [{ apiUrl: 'ftp://api.clerk.com' }, 'apiUrl must use http: or https:'],
    [
      { apiUrl: 'https://u:p@api.clerk.com' },
      'apiUrl must not contain credentials, a query or a fragment; pass the key as `secretKey`',
    ],
    [{ timeoutMs: 0 }, 'timeoutMs must be a number of ms from 1 to 2147482647, got 0'],
    [{ timeoutMs: Number.NaN }, 'timeoutMs must be a number of ms from 1 to 2147482647, got NaN'],
    [
      { timeoutMs: 2_147_482_648 },
      'timeoutMs must be a number of ms from 1 to 2147482647, got 2147482648',
    ],
    [{ timeoutMs: '5000' }, 'timeoutMs must be a number of ms from 1 to 2147482647, got a string'],
    [{ retry: true }, 'retry must be an object { maxRetries, … } or false, got true'],
    [{ retry: { maxRetries: 1.5 } }, 'retry.maxRetries must be an integer from 0 to 100, got 1.5'],
    [{ retry: { maxRetries: 101 } }, 'retry.maxRetries must be an integer from 0 to 100, got 101'],
    [{ retry: { initialDelayMs: -1 } }, 'retry.initialDelayMs must be a finite number ≥ 0, got -1'],
    [
      { retry: { maxDelayMs: Number.POSITIVE_INFINITY } },
      'retry.maxDelayMs must be a finite number ≥ 0, got Infinity',
    ],
    [
      { retry: { retryConnectionErrors: 'yes' } },
      'retry.retryConnectionErrors must be a boolean, got a string',
    ],
    [{ fetch: 'fetch' }, 'fetch must be a function (url, init) => Promise<Response>, got a string'],
    [
      { client: {} },
      'client must be an M2MClient (from createM2MClient()): verifyToken(), revokeToken() are missing',
    ],
    [
      { client: 'sk_x' },
      'client must be an M2MClient (from createM2MClient()) (an object with verifyToken, revokeToken methods), got a string',
    ],
    [
      { client: { verifyToken() {}, revokeToken() {} } },
      'client must be an M2MClient (from createM2MClient()): apiUrl or keyFingerprint is missing',
    ],
    // machineId (the existing wording, asserted by verifier.test.ts as /machineId/).
    [{ machineId: 'svc' }, 'machineId must be a machine id (mch_…)'],
    [{ machineId: 'mch_' }, 'machineId must be a machine id (mch_…)'],
    [{ machineId: ` ${MACHINE}` }, 'machineId must be a machine id (mch_…)'],
    [{ machineId: 'mch_a b' }, 'machineId must be a machine id (mch_…)'],
    [{ machineId: [MACHINE] }, 'machineId must be a machine id (mch_…), got an array'],
    [{ machineId: null }, 'machineId must be a machine id (mch_…), got null'],
    // cache
    [
      { cache: null },
      'cache must be an object such as { ttlMs: 30000 } ({ ttlMs: 0 } turns caching off), got null',
    ],
    [
      { cache: false },
      'cache must be an object such as { ttlMs: 30000 } ({ ttlMs: 0 } turns caching off), got false',
    ],
    [{ cache: { ttlMs: -1 } }, 'cache.ttlMs must be a finite number ≥ 0, got -1'],
    [{ cache: { ttlMs: '0' } }, 'cache.ttlMs must be a finite number ≥ 0, got a string'],
    [
      { cache: { ttlMs: Number.POSITIVE_INFINITY } },
      'cache.ttlMs must be a finite number ≥ 0, got Infinity',
    ],
    [{ cache: { maxEntries: 0 } }, 'cache.maxEntries must be an integer ≥ 1, got 0'],
    [{ cache: { maxEntries: 10.5 } }, 'cache.maxEntries must be an integer ≥ 1, got 10.5'],
    [
      { cache: { negativeTtlMs: Number.NaN } },
      'cache.negativeTtlMs must be a finite number ≥ 0, got NaN',
    ],
    [
      { cache: { negativeMaxEntries: -5 } },
      'cache.negativeMaxEntries must be an integer ≥ 1, got -5',
    ],
    [
      { cache: { store: null } },
      'cache.store must be a CacheStore (an object with get, set, delete methods), got null',
    ],
    [
      { cache: { store: { get() {}, set: 1, delete() {} } } },
      'cache.store must be a CacheStore: set() is missing',
    ],
    // revocationBus
    [
      { revocationBus: 'redis://localhost' },
      'revocationBus must be a RevocationBus (an object with publish, subscribe methods), got a string',
    ],
    [
      { revocationBus: {} },
      'revocationBus must be a RevocationBus: publish(), subscribe() are missing',
    ],
    // jwt
    [{ jwt: 'pem' }, 'jwt must be an object { jwtKey } or { jwksUrl }, got a string'],
    [{ jwt: { jwtKey: null } }, 'jwt.jwtKey must be a PEM public key (a string), got null'],
    [{ jwt: { jwksUrl: 42 } }, 'jwt.jwksUrl must be a string, got 42'],
    [{ jwt: { jwksUrl: '' } }, 'jwt.jwksUrl must be an absolute http(s) URL'],
    [{ jwt: { jwksUrl: '/v1/jwks' } }, 'jwt.jwksUrl must be an absolute http(s) URL'],
    [{ jwt: { jwksUrl: 'file:///etc/jwks.json' } }, 'jwt.jwksUrl must use http: or https:'],
    [
      { jwt: { jwksUrl: 'https://u:p@example.com/jwks' } },
      'jwt.jwksUrl must not contain credentials',
    ],
    [
      { jwt: { clockSkewMs: Number.POSITIVE_INFINITY } },
      'jwt.clockSkewMs must be a finite number ≥ 0, got Infinity',
    ],
    // Bulkhead, stale-if-error, breaker
    [{ maxConcurrentUpstream: 0 }, 'maxConcurrentUpstream must be an integer ≥ 1, got 0'],
    [{ maxConcurrentUpstream: 2.5 }, 'maxConcurrentUpstream must be an integer ≥ 1, got 2.5'],
    [
      { maxConcurrentUpstream: Number.NaN },
      'maxConcurrentUpstream must be an integer ≥ 1, got NaN',
    ],
    [{ maxConcurrentUpstream: '32' }, 'maxConcurrentUpstream must be an integer ≥ 1, got a string'],
    [{ maxQueuedUpstream: -1 }, 'maxQueuedUpstream must be an integer ≥ 0, got -1'],
    [
      { maxQueuedUpstream: Number.POSITIVE_INFINITY },
      'maxQueuedUpstream must be an integer ≥ 0, got Infinity',
    ],
    [{ staleIfErrorMs: -1 }, 'staleIfErrorMs must be a finite number ≥ 0, got -1'],
    [
      { breaker: null },
      'breaker must be an object { failureThreshold, openMs } or false, got null',
    ],
    [
      { breaker: { failureThreshold: 0 } },
      'breaker.failureThreshold must be an integer ≥ 1, got 0',
    ],
    [
      { breaker: { failureThreshold: 2.5 } },
      'breaker.failureThreshold must be an integer ≥ 1, got 2.5',
    ],
    [{ breaker: { openMs: -1 } }, 'breaker.openMs must be a finite number ≥ 0, got -1'],
    // Functions
    [{ onEvent: {} }, 'onEvent must be a function (event) => void, got an object'],
    // A clock reading passed instead of the clock.
    [
      { now: 1_700_000_000_000 },
      'now must be a function () => number (ms since the epoch), got 1700000000000',
    ],
  ]
  it.each(cases.map(([options, message]) => ({ options, message })))(
    '$message',
    ({ options, message }) => {
      expectRejected(options, `createM2MVerifier: ${message}`)
    },
  )

  test('the store is checked by shape only: anything with get, set and delete passes', () => {
    expect(attempt({ cache: { store: new Map() } })).not.toThrow()
  })

  test('messages never echo a string value (a key or token passed in the wrong place)', () => {
    const secret = 'sk_live_do_not_print_me'
    const placements: unknown[] = [
      { apiUrl: secret },
      { timeoutMs: secret },
      { machineId: secret },
      { cache: secret },
      { cache: { store: secret } },
      { revocationBus: secret },
      { jwt: secret },
      { jwt: { jwksUrl: secret } },
      { maxQueuedUpstream: secret },
      { breaker: secret },
      { onEvent: secret },
      { now: secret },
      { client: secret },
      { fetch: secret },
      { retry: secret },
      { secretKey: `${secret} x` },
      { apiUrl: `https://user:${secret}@api.clerk.com` },
      { jwt: { jwksUrl: `https://user:${secret}@api.clerk.com` } },
    ]
    for (const options of placements) {
      let message = ''
      try {
        validateVerifierOptions(options)
      } catch (err) {
        message = (err as Error).message
      }
      expect(message, JSON.stringify(options)).not.toBe('')
      expect(message).not.toContain(secret)
    }
  })
})

describe('validateVerifierOptions: context', () => {
  test('names the caller in every message', () => {
    expect(attempt({ machineID: MACHINE }, { name: 'requireM2M' })).toThrow(
      new TypeError('requireM2M: unknown option `machineID` (did you mean `machineId`?)'),
    )
    expect(attempt({ cache: { ttlMs: -1 } }, { name: 'm2mGuard' })).toThrow(
      new TypeError('m2mGuard: cache.ttlMs must be a finite number ≥ 0, got -1'),
    )
  })

  test('extra top-level keys (a guard route policy) are skipped, and suggested for near misses', () => {
    const guardKeys = [
      'verifier',
      'allowedSubjects',
      'requireClaims',
      'optional',
      'getToken',
      'realm',
      'onError',
    ]
    const context = { name: 'createM2MGuard', extraKeys: guardKeys }
    expect(
      attempt(
        {
          machineId: MACHINE,
          allowedSubjects: [MACHINE],
          // Not validated here: the guard checks its own options.
          realm: 42,
        },
        context,
      ),
    ).not.toThrow()
    expect(attempt({ alowedSubjects: [MACHINE] }, context)).toThrow(
      new TypeError(
        'createM2MGuard: unknown option `alowedSubjects` (did you mean `allowedSubjects`?)',
      ),
    )
    expect(attempt({ onErrors: () => {} }, context)).toThrow(
      new TypeError('createM2MGuard: unknown option `onErrors` (did you mean `onError`?)'),
    )
    // Extra keys are top-level only.
    expect(attempt({ cache: { realm: 'api' } }, context)).toThrow(
      /unknown option `cache.realm` \(did you mean `realm`\?\)/,
    )
    // Without the context they are unknown.
    expect(attempt({ allowedSubjects: [MACHINE] })).toThrow(/unknown option `allowedSubjects`/)
  })

  test('a Set works as the extra keys', () => {
    expect(
      attempt({ passErrors: true }, { name: 'requireM2M', extraKeys: new Set(['passErrors']) }),
    ).not.toThrow()
  })
})
