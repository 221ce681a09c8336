import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportSPKI, generateKeyPair, SignJWT } from 'jose'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { memoryCacheStore, memoryRevocationBus } from '../cache/memory.js'
import { createM2MClient } from '../client/index.js'
import { M2MApiError, M2MAuthError, type M2MAuthErrorCode, M2MConnectionError } from '../errors.js'
import { createM2MGuard } from '../http/guard.js'
import { M2M_JWT_CATEGORY } from '../jwt/verify-jwt.js'
import type { M2MClient } from '../types.js'
import { type Fixture, startFixture, unknownToken } from './__fixtures__/emulator.js'
import type { CachedVerification, CacheStore, M2MEvent } from './types.js'
import { createM2MVerifier } from './verifier.js'

let fx: Fixture
beforeAll(async () => {
  fx = await startFixture()
})
afterAll(async () => {
  // No event, ever, may carry a token or a key: checked over everything every test emitted.
  const dump = JSON.stringify(fx.events)
  for (const secret of seenSecrets) expect(dump.includes(secret)).toBe(false)
  await fx.close()
})
afterEach(() => {
  fx.emulator.clearFaults()
})

const seenSecrets = new Set<string>()
beforeEach(() => {
  seenSecrets.add(fx.emulator.secretKey)
  seenSecrets.add(fx.caller.secretKey)
})

async function mint(options?: Parameters<Fixture['mint']>[0]) {
  const created = await fx.mint(options)
  seenSecrets.add(created.token)
  return created
}

/** Asserts the rejection's code and the behaviour table's status and challenge for it. */
async function expectFailsWith(
  promise: Promise<unknown>,
  code: M2MAuthErrorCode,
): Promise<M2MAuthError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, got a valid result`)
    },
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(M2MAuthError)
  const authError = err as M2MAuthError
  expect(authError.code).toBe(code)
  const status = {
    missing_token: 401,
    invalid_request: 400,
    invalid_token: 401,
    token_expired: 401,
    token_revoked: 401,
    insufficient_scope: 403,
    verification_unavailable: 503,
    verifier_misconfigured: 500,
  }[code]
  expect(authError.status).toBe(status)
  if (code === 'verification_unavailable') {
    expect(authError.wwwAuthenticate).toBeUndefined()
    expect(authError.retryAfterMs).toBeGreaterThan(0)
  } else if (code === 'verifier_misconfigured') {
    expect(authError.wwwAuthenticate).toBeUndefined()
  } else if (code === 'invalid_request') {
    expect(authError.wwwAuthenticate).toMatch(/^Bearer realm="api", error="invalid_request"/)
  } else if (code === 'insufficient_scope') {
    expect(authError.wwwAuthenticate).toMatch(/^Bearer realm="api", error="insufficient_scope"/)
  } else {
    expect(authError.wwwAuthenticate).toMatch(
      /^Bearer realm="api", error="invalid_token", error_description="/,
    )
  }
  for (const secret of seenSecrets) {
    expect(authError.message.includes(secret)).toBe(false)
    expect(authError.wwwAuthenticate?.includes(secret) ?? false).toBe(false)
  }
  return authError
}

/** A real client whose first verifyToken calls are replaced, in order, by `scripted`. */
function scriptedClient(...scripted: Array<() => Promise<never>>): {
  client: M2MClient
  calls: () => number
} {
  const real = createM2MClient({
    secretKey: fx.emulator.secretKey,
    apiUrl: fx.emulator.url,
    retry: false,
  })
  let calls = 0
  const client: M2MClient = Object.create(real, {
    verifyToken: {
      value: (...args: Parameters<M2MClient['verifyToken']>) =>
        scripted[calls++]?.() ?? real.verifyToken(...args),
    },
  })
  return { client, calls: () => calls }
}
type StoreCall = { op: 'get' | 'set' | 'delete'; key: string; value?: CachedVerification }

/** A memory store that records every call made to it (operation, key, value) before doing it. */
function recordingStore(options: { now?: () => number } = {}): {
  store: CacheStore
  calls: StoreCall[]
} {
  const inner = memoryCacheStore(options)
  const calls: StoreCall[] = []
  const store: CacheStore = {
    get(key) {
      calls.push({ op: 'get', key })
      return inner.get(key)
    },
    set(key, value, ttlMs) {
      calls.push({ op: 'set', key, value })
      inner.set(key, value, ttlMs)
    },
    delete(key) {
      calls.push({ op: 'delete', key })
      inner.delete(key)
    },
  }
  return { store, calls }
}

const serverError = () => Promise.reject(new M2MApiError({ status: 500, errors: [] }))

/**
 * Runs `use` against an "API" on 127.0.0.1 that answers every request with one canned response
 * (another server than Clerk: a redirect, a proxy's page), then closes it.
 */
async function withCannedApi(
  status: number,
  headers: Record<string, string>,
  body: string,
  use: (apiUrl: string, calls: () => number) => Promise<void>,
): Promise<void> {
  let calls = 0
  const server = createServer((_req, res) => {
    calls++
    res.writeHead(status, headers).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const { port } = server.address() as AddressInfo
    await use(`http://127.0.0.1:${port}`, () => calls)
  } finally {
    await new Promise((resolve) => server.close(resolve))
  }
}

describe('valid tokens and the positive cache', () => {
  test('verifies an opaque token once upstream, then from the cache', async () => {
    const created = await mint({ claims: { job: 'nightly' } })
    const verifier = fx.verifier()
    const before = fx.upstreamVerifies()
    const auth = await verifier.verify(created.token)
    expect(auth).toEqual({
      tokenType: 'm2m_token',
      format: 'opaque',
      id: created.id,
      subject: fx.caller.id,
      scopes: [fx.service.id],
      claims: { job: 'nightly' },
      expiration: created.expiration,
    })
    expect(await verifier.verify(created.token)).toEqual(auth)
    expect(await verifier.verify(created.token)).toBe(await verifier.verify(created.token))
    expect(fx.upstreamVerifies() - before).toBe(1)
    const stats = verifier.stats()
    expect(stats).toMatchObject({ hits: 3, misses: 1, upstreamCalls: 1, entries: 1 })
    // Shared with every caller, so frozen: a route cannot change what the next route sees.
    expect(Object.isFrozen(auth) && Object.isFrozen(auth.scopes)).toBe(true)
  })

  test('claims that are not an object (the spec allows any JSON) pass through; a claims policy still refuses', async () => {
    // Minted over raw HTTP, as another SDK could: this client only sends objects.
    const res = await fetch(`${fx.emulator.url}/v1/m2m_tokens`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${fx.caller.secretKey}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ seconds_until_expiration: 600, claims: ['read', 'write'] }),
    })
    expect(res.status).toBe(201)
    const { token } = (await res.json()) as { token: string }
    const verifier = fx.verifier()
    const before = fx.upstreamVerifies()
    const auth = await verifier.verify(token)
    expect(auth.claims).toEqual(['read', 'write'])
    expect(await verifier.verify(token)).toBe(auth)
    expect(fx.upstreamVerifies() - before).toBe(1)
    const guard = createM2MGuard({ verifier, requireClaims: { tier: 'gold' } })
    const result = await guard.authenticate({
      method: 'GET',
      authorization: `Bearer ${token}`,
      native: null,
    })
    expect(result.ok ? 'admitted' : result.error.code).toBe('insufficient_scope')
  })

  test('a valid result lives ttlMs, then upstream is asked again', async () => {
    const { token } = await mint()
    const verifier = fx.verifier({ cache: { ttlMs: 5_000 } })
    const before = fx.upstreamVerifies()
    await verifier.verify(token)
    fx.clock.advance(4_999)
    await verifier.verify(token)
    expect(fx.upstreamVerifies() - before).toBe(1)
    fx.clock.advance(1)
    await verifier.verify(token)
    expect(fx.upstreamVerifies() - before).toBe(2)
  })

  test('an entry never outlives its token: expiring in 2 s with ttlMs 60 s is rejected at 2 s without upstream', async () => {
    const { token } = await mint({ seconds: 2 })
    const verifier = fx.verifier({ cache: { ttlMs: 60_000 } })
    const before = fx.upstreamVerifies()
    await verifier.verify(token)
    fx.clock.advance(1_999)
    await verifier.verify(token)
    fx.clock.advance(1)
    await expectFailsWith(verifier.verify(token), 'token_expired')
    await expectFailsWith(verifier.verify(token), 'token_expired')
    expect(fx.upstreamVerifies() - before).toBe(1)
  })

  test('ttlMs 0 turns caching off: every verify asks upstream', async () => {
    const { token } = await mint()
    const verifier = fx.verifier({ cache: { ttlMs: 0 } })
    const before = fx.upstreamVerifies()
    await verifier.verify(token)
    await verifier.verify(token)
    await verifier.verify(token)
    expect(fx.upstreamVerifies() - before).toBe(3)
    expect(verifier.stats().entries).toBe(0)
  })

  test('the positive cache is bounded by maxEntries', async () => {
    const verifier = fx.verifier({ cache: { maxEntries: 2 } })
    const tokens = await Promise.all([mint(), mint(), mint()])
    for (const { token } of tokens) await verifier.verify(token)
    expect(verifier.stats().entries).toBe(2)
    // The least recently used one was evicted and costs an upstream call again.
    const before = fx.upstreamVerifies()
    await verifier.verify(tokens[0]!.token)
    expect(fx.upstreamVerifies() - before).toBe(1)
  })

  test('tokens that never expire are cached for ttlMs', async () => {
    const created = await mint({ seconds: null })
    const verifier = fx.verifier({ cache: { ttlMs: 1_000 } })
    const auth = await verifier.verify(created.token)
    expect(auth.expiration).toBeNull()
    const before = fx.upstreamVerifies()
    fx.clock.advance(1_000)
    await verifier.verify(created.token)
    expect(fx.upstreamVerifies() - before).toBe(1)
  })
})

describe('shape check before any network', () => {
  const notTokens: [string, unknown][] = [
    ['empty', ''],
    ['a basic credential', 'Basic dXNlcjpwYXNz'],
    ['an API key', 'ak_1234567890abcdefghijklmn'],
    ['a too short mt_ token', 'mt_abc'],
    ['bad characters', `mt_${'a'.repeat(30)}!`],
    ['whitespace', `mt_${'a'.repeat(30)} x`],
    ['a two-part JWT', 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtY2hfeCJ9'],
    ['over 4 KiB', `mt_${'a'.repeat(4094)}`],
    ['a 4 KiB JWT', `${'a'.repeat(2000)}.${'b'.repeat(2000)}.${'c'.repeat(100)}`],
  ]
  test.each(notTokens)('%s is invalid_token with zero upstream calls', async (_, token) => {
    const verifier = fx.verifier()
    const before = fx.emulator.stats().total
    await expectFailsWith(verifier.verify(token as string), 'invalid_token')
    expect(fx.emulator.stats().total).toBe(before)
  })

  test('a non-string is invalid_request', async () => {
    const verifier = fx.verifier()
    await expectFailsWith(verifier.verify(42 as unknown as string), 'invalid_request')
  })

  test('the legacy m2m_ prefix is accepted as a shape (and asked upstream)', async () => {
    const verifier = fx.verifier()
    const before = fx.upstreamVerifies()
    await expectFailsWith(verifier.verify(`m2m_${'a'.repeat(40)}`), 'invalid_token')
    expect(fx.upstreamVerifies() - before).toBe(1)
  })
})

describe('invalid tokens and the negative cache', () => {
  test('an unknown token is invalid_token and cached negatively for negativeTtlMs', async () => {
    const verifier = fx.verifier({ cache: { negativeTtlMs: 10_000 } })
    const token = unknownToken(1)
    const before = fx.upstreamVerifies()
    const err = await expectFailsWith(verifier.verify(token), 'invalid_token')
    expect(err.description).toBe('The token is unknown')
    await expectFailsWith(verifier.verify(token), 'invalid_token')
    expect(fx.upstreamVerifies() - before).toBe(1)
    expect(verifier.stats().negativeHits).toBe(1)
    fx.clock.advance(10_000)
    await expectFailsWith(verifier.verify(token), 'invalid_token')
    expect(fx.upstreamVerifies() - before).toBe(2)
  })

  test('revoked upstream: token_revoked; expired upstream: token_expired', async () => {
    const revoked = await mint()
    await fx.callerClient.revokeToken({ m2mTokenId: revoked.id })
    const verifier = fx.verifier()
    const err = await expectFailsWith(verifier.verify(revoked.token), 'token_revoked')
    expect(err.wwwAuthenticate).toContain('error_description="The token has been revoked"')

    const expiring = await mint({ seconds: 1 })
    fx.clock.advance(1_000)
    await expectFailsWith(verifier.verify(expiring.token), 'token_expired')
  })

  test('random tokens do not evict valid entries (separate bounded LRU)', async () => {
    const verifier = fx.verifier({ cache: { maxEntries: 2, negativeMaxEntries: 3 } })
    const { token } = await mint()
    await verifier.verify(token)
    for (let i = 0; i < 10; i++)
      await expectFailsWith(verifier.verify(unknownToken(100 + i)), 'invalid_token')
    expect(verifier.stats()).toMatchObject({ entries: 1, negativeEntries: 3 })
    const before = fx.upstreamVerifies()
    await verifier.verify(token)
    expect(fx.upstreamVerifies()).toBe(before)
  })
})

describe('defensive checks on a 200', () => {
  function rewritingFetch(patch: Record<string, unknown>) {
    // Upstream fault injection: the real emulator answers, the body is altered on the way back.
    return async (input: string, init: RequestInit): Promise<Response> => {
      const res = await fetch(input, init)
      if (!input.endsWith('/m2m_tokens/verify') || res.status !== 200) return res
      const body = { ...((await res.json()) as Record<string, unknown>), ...patch }
      return new Response(JSON.stringify(body), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      })
    }
  }

  test.each([
    ['revoked: true', { revoked: true }, 'token_revoked'],
    ['expired: true', { expired: true }, 'token_expired'],
    ['an expiration in the past', { expiration: 1 }, 'token_expired'],
  ] as const)('a 200 with %s is rejected and cached negatively', async (_, patch, code) => {
    const { token } = await mint()
    const verifier = fx.verifier({ fetch: rewritingFetch(patch) })
    const before = fx.upstreamVerifies()
    await expectFailsWith(verifier.verify(token), code)
    await expectFailsWith(verifier.verify(token), code)
    expect(fx.upstreamVerifies() - before).toBe(1)
  })

  test('an unusable 200 body is a 503, not a valid result, and is not cached', async () => {
    const { token } = await mint()
    const verifier = fx.verifier({ fetch: rewritingFetch({ subject: 'user_123' }) })
    const before = fx.upstreamVerifies()
    await expectFailsWith(verifier.verify(token), 'verification_unavailable')
    await expectFailsWith(verifier.verify(token), 'verification_unavailable')
    expect(fx.upstreamVerifies() - before).toBe(2)
  })
})

describe('coalescing', () => {
  test('N concurrent verify() of one uncached token make exactly one upstream call', async () => {
    const { token } = await mint()
    const verifier = fx.verifier()
    fx.emulator.setFaults({ latencyMs: 100 })
    const before = fx.upstreamVerifies()
    const results = await Promise.all(Array.from({ length: 50 }, () => verifier.verify(token)))
    expect(fx.upstreamVerifies() - before).toBe(1)
    expect(new Set(results).size).toBe(1)
    expect(verifier.stats().coalesced).toBe(49)
  })

  test('a failure is shared with the waiters of that call but never cached', async () => {
    const { token } = await mint()
    const verifier = fx.verifier()
    fx.emulator.setFaults({ latencyMs: 100, errorRate: 1, errorStatus: 502 })
    const before = fx.upstreamVerifies()
    const settled = await Promise.allSettled(
      Array.from({ length: 20 }, () => verifier.verify(token)),
    )
    expect(fx.upstreamVerifies() - before).toBe(1)
    for (const result of settled) {
      expect(result.status).toBe('rejected')
      expect((result as PromiseRejectedResult).reason).toMatchObject({
        code: 'verification_unavailable',
      })
    }
    fx.emulator.clearFaults()
    await verifier.verify(token)
    expect(fx.upstreamVerifies() - before).toBe(2)
  })

  test('a follower whose shared call never settles (workerd: owner request gone) makes its own call', async () => {
    const { token } = await mint()
    // The first call hangs forever, as a fetch owned by a cancelled workerd request does.
    const { client, calls } = scriptedClient(() => new Promise(() => {}))
    const verifier = fx.verifier({ client, timeoutMs: 50 })
    void verifier.verify(token).catch(() => {})
    const auth = await verifier.verify(token)
    expect(auth.subject).toBe(fx.caller.id)
    expect(calls()).toBe(2)
  })

  test('a call cancelled under its owner (AbortError) is not shared: followers make their own call', async () => {
    const { token } = await mint()
    const { client, calls } = scriptedClient(
      () =>
        new Promise((_, reject) =>
          setTimeout(
            () =>
              reject(
                new M2MConnectionError('connection_failed', 'verifyToken: request cancelled', {
                  cause: new DOMException('The operation was aborted', 'AbortError'),
                }),
              ),
            50,
          ),
        ),
    )
    const verifier = fx.verifier({ client })
    const owner = verifier.verify(token)
    const followers = Array.from({ length: 5 }, () => verifier.verify(token))
    await expectFailsWith(owner, 'verification_unavailable')
    for (const auth of await Promise.all(followers)) expect(auth.subject).toBe(fx.caller.id)
    // One cancelled call, then one fresh call shared by all five followers.
    expect(calls()).toBe(2)
    expect(verifier.stats()).toMatchObject({ failures: 0, breaker: 'closed' })
  })
})

describe('bulkhead', () => {
  test('beyond maxConcurrentUpstream + maxQueuedUpstream: 503 at once; cache hits never wait', async () => {
    const cached = await mint()
    const verifier = fx.verifier({ maxConcurrentUpstream: 2, maxQueuedUpstream: 2 })
    await verifier.verify(cached.token)
    fx.emulator.setFaults({ latencyMs: 300 })
    const before = fx.upstreamVerifies()
    let slowSettled = 0
    const spray = Array.from({ length: 10 }, (_, i) =>
      verifier
        .verify(unknownToken(200 + i))
        .then(
          () => 'valid',
          (err: M2MAuthError) => err.code,
        )
        .finally(() => slowSettled++),
    )
    await new Promise((resolve) => setImmediate(resolve))
    expect(verifier.stats()).toMatchObject({ inFlight: 2, queued: 2 })
    // The hit answers while the spray still occupies every slot.
    const hit = await verifier.verify(cached.token)
    expect(hit.id).toBe(cached.id)
    const codes = await Promise.all(spray)
    expect(codes.filter((c) => c === 'verification_unavailable')).toHaveLength(6)
    expect(codes.filter((c) => c === 'invalid_token')).toHaveLength(4)
    expect(fx.upstreamVerifies() - before).toBe(4)
    expect(slowSettled).toBe(10)
  })
})

describe('outage', () => {
  test.each([
    ['5xx', { errorRate: 1, errorStatus: 500 }],
    ['429', { rateLimit: { rate: 1, retryAfterSeconds: 7 } }],
    ['dropped connections', { dropRate: 1 }],
    ['down', { down: true }],
    ['timeouts', { latencyMs: 1_000 }],
  ] as const)(
    '%s give verification_unavailable with Retry-After, never cached',
    async (name, faults) => {
      const { token } = await mint()
      const verifier = fx.verifier({ timeoutMs: 300, breaker: false })
      fx.emulator.setFaults(faults)
      const err = await expectFailsWith(verifier.verify(token), 'verification_unavailable')
      if (name === '429') expect(err.retryAfterMs).toBe(7_000)
      expect(fx.events.some((e) => e.type === 'upstream_error')).toBe(true)
      fx.emulator.clearFaults()
      await new Promise((resolve) => setTimeout(resolve, name === 'timeouts' ? 800 : 0))
      const auth = await verifier.verify(token)
      expect(auth.subject).toBe(fx.caller.id)
    },
  )

  test("a day's Retry-After from upstream is passed on as at most a minute, the breaker's bound", async () => {
    const { token } = await mint()
    const verifier = fx.verifier({ breaker: { failureThreshold: 1 } })
    fx.emulator.setFaults({ rateLimit: { rate: 1, retryAfterSeconds: 86_400 } })
    const err = await expectFailsWith(verifier.verify(token), 'verification_unavailable')
    expect(err.retryAfterMs).toBe(60_000)
    const fast = await expectFailsWith(
      verifier.verify(unknownToken(460)),
      'verification_unavailable',
    )
    expect(fast.retryAfterMs).toBeLessThanOrEqual(60_000)
  })

  test('with client retries, a transient 503 followed by success is a valid result', async () => {
    const { token } = await mint()
    const verifier = fx.verifier({ retry: { maxRetries: 3, initialDelayMs: 1, maxDelayMs: 5 } })
    fx.emulator.setFaults({ errorRate: 0.5, seed: 3 })
    const auth = await verifier.verify(token)
    expect(auth.id).toBeDefined()
  })
})

describe('circuit breaker', () => {
  test('opens after N consecutive failures, fails fast, hits keep working, a probe closes it', async () => {
    const cached = await mint()
    const fresh = await mint()
    const events: M2MEvent[] = []
    const verifier = fx.verifier({
      breaker: { failureThreshold: 3, openMs: 10_000 },
      onEvent: (e) => events.push(e),
    })
    await verifier.verify(cached.token)
    fx.emulator.setFaults({ errorRate: 1 })
    for (let i = 0; i < 3; i++)
      await expectFailsWith(verifier.verify(unknownToken(300 + i)), 'verification_unavailable')
    expect(verifier.stats().breaker).toBe('open')
    expect(events).toContainEqual({ type: 'breaker_open', consecutiveFailures: 3 })

    const before = fx.upstreamVerifies()
    fx.clock.advance(4_000)
    const fast = await expectFailsWith(verifier.verify(fresh.token), 'verification_unavailable')
    expect(fast.retryAfterMs).toBe(6_000)
    expect(fx.upstreamVerifies()).toBe(before)
    expect((await verifier.verify(cached.token)).id).toBe(cached.id)

    fx.emulator.clearFaults()
    fx.emulator.setFaults({ latencyMs: 300 })
    fx.clock.advance(6_000)
    // Half-open: one probe; concurrent misses fail fast instead of stampeding.
    const probe = verifier.verify(fresh.token)
    await new Promise((resolve) => setImmediate(resolve))
    expect(verifier.stats().breaker).toBe('half_open')
    await expectFailsWith(verifier.verify(unknownToken(310)), 'verification_unavailable')
    expect((await probe).id).toBe(fresh.id)
    expect(fx.upstreamVerifies() - before).toBe(1)
    expect(verifier.stats().breaker).toBe('closed')
    expect(events).toContainEqual({ type: 'breaker_closed' })
  })

  test('a cancelled probe frees the half-open slot: the next miss probes and closes it', async () => {
    const { token, id } = await mint()
    const cancelled = () =>
      Promise.reject(
        new M2MConnectionError('connection_failed', 'verifyToken: request cancelled', {
          cause: new DOMException('The operation was aborted', 'AbortError'),
        }),
      )
    const { client, calls } = scriptedClient(serverError, cancelled)
    const verifier = fx.verifier({ client, breaker: { failureThreshold: 1, openMs: 1_000 } })
    await expectFailsWith(verifier.verify(unknownToken(330)), 'verification_unavailable')
    expect(verifier.stats().breaker).toBe('open')
    fx.clock.advance(1_000)
    await expectFailsWith(verifier.verify(unknownToken(331)), 'verification_unavailable')
    expect(calls()).toBe(2)
    // Without the cancel, the breaker would wait for a probe that will never report back.
    expect((await verifier.verify(token)).id).toBe(id)
    expect(calls()).toBe(3)
    expect(verifier.stats().breaker).toBe('closed')
  })

  test('a probe that never answers (workerd: its request ended) is given up after the client deadline', async () => {
    const { token, id } = await mint()
    const { client, calls } = scriptedClient(serverError, () => new Promise<never>(() => {}))
    const verifier = fx.verifier({
      client,
      timeoutMs: 2_000,
      breaker: { failureThreshold: 1, openMs: 1_000 },
    })
    await expectFailsWith(verifier.verify(unknownToken(332)), 'verification_unavailable')
    fx.clock.advance(1_000)
    void verifier.verify(unknownToken(333)).catch(() => {})
    await new Promise((resolve) => setImmediate(resolve))
    expect(calls()).toBe(2)
    // While the probe may still be alive, other misses fail fast without calling upstream.
    await expectFailsWith(verifier.verify(unknownToken(334)), 'verification_unavailable')
    expect(calls()).toBe(2)
    // Past the longest an upstream call can take (timeoutMs + 500 ms), the next miss probes.
    fx.clock.advance(2_500)
    expect((await verifier.verify(token)).id).toBe(id)
    expect(calls()).toBe(3)
    expect(verifier.stats().breaker).toBe('closed')
  })

  test('a failed probe reopens it', async () => {
    const verifier = fx.verifier({ breaker: { failureThreshold: 1, openMs: 1_000 } })
    fx.emulator.setFaults({ errorRate: 1 })
    await expectFailsWith(verifier.verify(unknownToken(320)), 'verification_unavailable')
    fx.clock.advance(1_000)
    // Its open time is up: stats() says a probe may go, before any call has asked.
    expect(verifier.stats().breaker).toBe('half_open')
    const before = fx.upstreamVerifies()
    await expectFailsWith(verifier.verify(unknownToken(321)), 'verification_unavailable')
    expect(fx.upstreamVerifies() - before).toBe(1)
    expect(verifier.stats().breaker).toBe('open')
  })
})

describe('staleIfErrorMs', () => {
  test('serves a known-good token during an outage for that long past its TTL, never past its expiry', async () => {
    const { token, id } = await mint({ seconds: 60 })
    const events: M2MEvent[] = []
    const verifier = fx.verifier({
      cache: { ttlMs: 1_000 },
      staleIfErrorMs: 5_000,
      breaker: false,
      onEvent: (e) => events.push(e),
    })
    await verifier.verify(token)
    fx.clock.advance(3_000)
    fx.emulator.setFaults({ errorRate: 1 })
    expect((await verifier.verify(token)).id).toBe(id)
    expect(events).toContainEqual({ type: 'stale_served', id, staleForMs: 2_000 })
    expect(verifier.stats().staleServed).toBe(1)
    fx.clock.advance(3_000)
    await expectFailsWith(verifier.verify(token), 'verification_unavailable')
  })

  test('stale serving stops at the token expiry', async () => {
    const { token } = await mint({ seconds: 2 })
    const verifier = fx.verifier({
      cache: { ttlMs: 1_000 },
      staleIfErrorMs: 60_000,
      breaker: false,
    })
    await verifier.verify(token)
    fx.emulator.setFaults({ errorRate: 1 })
    fx.clock.advance(1_500)
    await verifier.verify(token)
    fx.clock.advance(500)
    await expectFailsWith(verifier.verify(token), 'token_expired')
  })

  test('a token upstream has since called revoked is never served stale later', async () => {
    const created = await mint()
    const verifier = fx.verifier({
      cache: { ttlMs: 1_000, negativeTtlMs: 1_000 },
      staleIfErrorMs: 60_000,
      breaker: false,
    })
    await verifier.verify(created.token)
    await fx.callerClient.revokeToken({ m2mTokenId: created.id })
    fx.clock.advance(1_500)
    await expectFailsWith(verifier.verify(created.token), 'token_revoked')
    fx.clock.advance(1_500)
    fx.emulator.setFaults({ errorRate: 1 })
    await expectFailsWith(verifier.verify(created.token), 'verification_unavailable')
  })

  test('serves stale while the breaker is open and failing fast, within staleIfErrorMs and never past the token expiry', async () => {
    const long = await mint({ seconds: 3600 })
    const short = await mint({ seconds: 4 })
    const uncached = await mint()
    const events: M2MEvent[] = []
    const verifier = fx.verifier({
      cache: { ttlMs: 1_000 },
      staleIfErrorMs: 5_000,
      breaker: { failureThreshold: 2, openMs: 60_000 },
      onEvent: (e) => events.push(e),
    })
    await verifier.verify(long.token)
    await verifier.verify(short.token)
    fx.clock.advance(2_000)
    fx.emulator.setFaults({ errorRate: 1 })
    for (let i = 0; i < 2; i++)
      await expectFailsWith(verifier.verify(unknownToken(340 + i)), 'verification_unavailable')
    expect(verifier.stats().breaker).toBe('open')

    const before = fx.upstreamVerifies()
    expect((await verifier.verify(long.token)).id).toBe(long.id)
    expect((await verifier.verify(short.token)).id).toBe(short.id)
    expect(events).toContainEqual({ type: 'stale_served', id: long.id, staleForMs: 1_000 })
    expect(events).toContainEqual({ type: 'stale_served', id: short.id, staleForMs: 1_000 })
    await expectFailsWith(verifier.verify(uncached.token), 'verification_unavailable')
    // The short token expires at 4 s: past that it is never served, outage or not.
    fx.clock.advance(2_000)
    await expectFailsWith(verifier.verify(short.token), 'token_expired')
    expect((await verifier.verify(long.token)).id).toBe(long.id)
    expect(events).toContainEqual({ type: 'stale_served', id: long.id, staleForMs: 3_000 })
    // TTL (1 s) + staleIfErrorMs (5 s) after it was verified: no longer served.
    fx.clock.advance(2_000)
    await expectFailsWith(verifier.verify(long.token), 'verification_unavailable')
    expect(verifier.stats()).toMatchObject({ staleServed: 3, breaker: 'open' })
    // All of it while failing fast: the breaker let nothing through.
    expect(fx.upstreamVerifies()).toBe(before)
  })

  test('off by default', async () => {
    const { token } = await mint()
    const verifier = fx.verifier({ cache: { ttlMs: 1_000 }, breaker: false })
    await verifier.verify(token)
    fx.clock.advance(1_000)
    fx.emulator.setFaults({ errorRate: 1 })
    await expectFailsWith(verifier.verify(token), 'verification_unavailable')
  })
})

describe('our own key refused', () => {
  test('401 for our key is verifier_misconfigured (500) with an event, never cached', async () => {
    const { token } = await mint()
    const events: M2MEvent[] = []
    const verifier = fx.verifier({
      secretKey: 'sk_test_not_the_right_key',
      onEvent: (e) => events.push(e),
    })
    seenSecrets.add('sk_test_not_the_right_key')
    const before = fx.upstreamVerifies()
    await expectFailsWith(verifier.verify(token), 'verifier_misconfigured')
    await expectFailsWith(verifier.verify(token), 'verifier_misconfigured')
    expect(fx.upstreamVerifies() - before).toBe(2)
    expect(events.filter((e) => e.type === 'misconfigured')).toHaveLength(2)
    expect(verifier.stats().breaker).toBe('closed')
  })

  test('403 for our key is verifier_misconfigured (500) with an event, never cached, not a breaker failure', async () => {
    // The emulator answers a refused key with 401 only, so the 403 is scripted.
    const forbidden = () =>
      Promise.reject(
        new M2MApiError({
          status: 403,
          errors: [
            {
              code: 'authorization_invalid',
              message: 'Unauthorized request',
              longMessage: 'The secret key may not verify tokens.',
            },
          ],
        }),
      )
    const { token, id } = await mint()
    const { client, calls } = scriptedClient(forbidden, forbidden)
    const events: M2MEvent[] = []
    const verifier = fx.verifier({
      client,
      breaker: { failureThreshold: 1, openMs: 60_000 },
      onEvent: (e) => events.push(e),
    })
    await expectFailsWith(verifier.verify(token), 'verifier_misconfigured')
    await expectFailsWith(verifier.verify(token), 'verifier_misconfigured')
    expect(calls()).toBe(2)
    expect(events.filter((e) => e.type === 'misconfigured')).toEqual([
      { type: 'misconfigured', status: 403, message: 'Clerk API answered 403' },
      { type: 'misconfigured', status: 403, message: 'Clerk API answered 403' },
    ])
    expect(verifier.stats()).toMatchObject({
      breaker: 'closed',
      failures: 0,
      entries: 0,
      negativeEntries: 0,
    })
    // Once the key is fixed (here: upstream answers normally), the very next call verifies.
    expect((await verifier.verify(token)).id).toBe(id)
    expect(calls()).toBe(3)
  })
})

describe('machineId', () => {
  test('a token scoped to this machine passes; one that is not is insufficient_scope (403)', async () => {
    const { token } = await mint()
    expect((await fx.verifier({ machineId: fx.service.id }).verify(token)).scopes).toContain(
      fx.service.id,
    )
    const other = fx.verifier({ machineId: fx.caller.id })
    await expectFailsWith(other.verify(token), 'insufficient_scope')
    // Cached as a verified identity; the scope decision is made again on the hit.
    const before = fx.upstreamVerifies()
    await expectFailsWith(other.verify(token), 'insufficient_scope')
    expect(fx.upstreamVerifies()).toBe(before)
  })

  test('a machineId that is not mch_… is refused at construction, naming the option', () => {
    expect(() => createM2MVerifier({ secretKey: 'sk_test_x', machineId: 'svc' })).toThrow(
      /machineId/,
    )
    expect(() => createM2MVerifier({ secretKey: 'sk_test_x', cache: { ttlMs: -1 } })).toThrow(
      /cache\.ttlMs/,
    )
  })
})

describe('JWT-format tokens', () => {
  test('the key is read like the client reads it: a blank secretKey option falls back to the environment for the JWKS too', async () => {
    const jwt = await mint({ jwt: true })
    const saved = process.env['CLERK_SECRET_KEY']
    process.env['CLERK_SECRET_KEY'] = fx.emulator.secretKey
    try {
      const verifier = fx.verifier({ secretKey: ' ' })
      expect((await verifier.verify(jwt.token)).id).toBe(jwt.id)
    } finally {
      if (saved === undefined) delete process.env['CLERK_SECRET_KEY']
      else process.env['CLERK_SECRET_KEY'] = saved
    }
  })

  test('verified locally against the JWKS (fetched once), with scopes and claims from the payload', async () => {
    const a = await mint({ jwt: true, claims: { tier: 'gold' } })
    const b = await mint({ jwt: true })
    const verifier = fx.verifier({ machineId: fx.service.id })
    const jwksBefore = fx.jwksFetches()
    const verifiesBefore = fx.upstreamVerifies()
    const [authA, authB] = await Promise.all([verifier.verify(a.token), verifier.verify(b.token)])
    expect(authA).toEqual({
      tokenType: 'm2m_token',
      format: 'jwt',
      id: a.id,
      subject: fx.caller.id,
      scopes: [fx.service.id],
      claims: { tier: 'gold' },
      expiration: a.expiration,
    })
    expect(authB.claims).toBeNull()
    await verifier.verify(a.token)
    expect(fx.jwksFetches() - jwksBefore).toBe(1)
    expect(fx.upstreamVerifies()).toBe(verifiesBefore)
    expect(verifier.stats().hits).toBe(1)
  })

  test('a JWT not scoped to this machine is insufficient_scope (403), also on the cache hit', async () => {
    const { token } = await mint({ jwt: true })
    const verifier = fx.verifier({ machineId: fx.caller.id })
    const jwksBefore = fx.jwksFetches()
    const verifiesBefore = fx.upstreamVerifies()
    await expectFailsWith(verifier.verify(token), 'insufficient_scope')
    expect(verifier.stats()).toMatchObject({ entries: 1, misses: 1 })
    // Cached as a verified identity (signature checked once); the scope is decided on the hit.
    await expectFailsWith(verifier.verify(token), 'insufficient_scope')
    expect(verifier.stats().misses).toBe(1)
    expect(fx.jwksFetches() - jwksBefore).toBe(1)
    expect(fx.upstreamVerifies()).toBe(verifiesBefore)
  })

  test('with a PEM key (CLERK_JWT_KEY) no network is used at all', async () => {
    const { token } = await mint({ jwt: true })
    const verifier = fx.verifier({ jwt: { jwtKey: await fx.emulator.jwtPublicKey() } })
    const before = fx.emulator.stats().total
    expect((await verifier.verify(token)).format).toBe('jwt')
    expect(fx.emulator.stats().total).toBe(before)
  })

  test("an unusable PEM key is verifier_misconfigured (our fault, not the caller's), never cached", async () => {
    const { token } = await mint({ jwt: true })
    const events: M2MEvent[] = []
    const verifier = fx.verifier({ jwt: { jwtKey: 'not a pem' }, onEvent: (e) => events.push(e) })
    await expectFailsWith(verifier.verify(token), 'verifier_misconfigured')
    await expectFailsWith(verifier.verify(token), 'verifier_misconfigured')
    expect(events.filter((e) => e.type === 'misconfigured')).toHaveLength(2)
    expect(verifier.stats().negativeEntries).toBe(0)
  })

  test('an expired JWT is token_expired (within the clock skew it still passes), a tampered one invalid_token', async () => {
    const verifier = fx.verifier({
      jwt: { jwtKey: await fx.emulator.jwtPublicKey(), clockSkewMs: 2_000 },
      cache: { ttlMs: 60_000 },
    })
    const cached = await mint({ jwt: true, seconds: 10 })
    const fresh = await mint({ jwt: true, seconds: 10 })
    await verifier.verify(cached.token)
    fx.clock.advance(10_000)
    // The cache is stricter than the skew: an entry dies at the token's own exp.
    await expectFailsWith(verifier.verify(cached.token), 'token_expired')
    fx.clock.advance(1_000)
    expect((await verifier.verify(fresh.token)).id).toBe(fresh.id)
    fx.clock.advance(1_001)
    await expectFailsWith(verifier.verify(fresh.token), 'token_expired')
    const valid = await mint({ jwt: true })
    const [h, p, s] = valid.token.split('.') as [string, string, string]
    const tampered = `${h}.${p}.${s.slice(0, -4)}${s.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`
    await expectFailsWith(verifier.verify(tampered), 'invalid_token')
    const otherPayload = `${h}.${Buffer.from(JSON.stringify({ sub: fx.caller.id, exp: 9e9 })).toString('base64url')}.${s}`
    await expectFailsWith(verifier.verify(otherPayload), 'invalid_token')
  })

  test('a JWT whose nbf is still ahead is refused, but not remembered: it passes once nbf arrives', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    const verifier = fx.verifier({ jwt: { jwtKey: await exportSPKI(publicKey), clockSkewMs: 0 } })
    const nowS = Math.floor(fx.clock.t / 1000)
    const early = await new SignJWT({ scopes: fx.service.id })
      .setProtectedHeader({ alg: 'RS256', cat: M2M_JWT_CATEGORY })
      .setSubject('mch_abc')
      .setJti('mt_0123456789abcdef0123456789abcdef')
      .setNotBefore(nowS + 3)
      .setExpirationTime(nowS + 60)
      .sign(privateKey)
    await expectFailsWith(verifier.verify(early), 'invalid_token')
    expect(verifier.stats().negativeEntries).toBe(0)
    // Well within the negative cache's 10 s: a remembered refusal would still answer here.
    fx.clock.advance(4_000)
    expect((await verifier.verify(early)).subject).toBe('mch_abc')
  })

  test('a JWT signed with a key not yet in the JWKS is refused, but not remembered', async () => {
    const { privateKey } = await generateKeyPair('RS256')
    const verifier = fx.verifier()
    const unknownKid = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'ins_rotated_key' })
      .setSubject('mch_abc')
      .setExpirationTime(Math.floor(fx.clock.t / 1000) + 60)
      .sign(privateKey)
    await expectFailsWith(verifier.verify(unknownKid), 'invalid_token')
    expect(verifier.stats().negativeEntries).toBe(0)
  })

  test('sub must be a machine; cat must be the M2M category', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    const pem = await exportSPKI(publicKey)
    const verifier = fx.verifier({ jwt: { jwtKey: pem } })
    const sign = (sub: string, cat: string) =>
      new SignJWT({ scopes: fx.service.id })
        .setProtectedHeader({ alg: 'RS256', cat })
        .setSubject(sub)
        .setJti('mt_0123456789abcdef0123456789abcdef')
        .setIssuedAt(Math.floor(fx.clock.t / 1000))
        .setExpirationTime(Math.floor(fx.clock.t / 1000) + 60)
        .sign(privateKey)
    expect((await verifier.verify(await sign('mch_abc', M2M_JWT_CATEGORY))).subject).toBe('mch_abc')
    await expectFailsWith(
      verifier.verify(await sign('user_abc', M2M_JWT_CATEGORY)),
      'invalid_token',
    )
    await expectFailsWith(
      verifier.verify(await sign('mch_abc', 'cl_B7d4PD111AAA')),
      'invalid_token',
    )
  })

  test('an unknown kid does not cause a JWKS fetch storm (cooldown, coalesced)', async () => {
    const { privateKey } = await generateKeyPair('RS256')
    const verifier = fx.verifier()
    const legit = await mint({ jwt: true })
    await verifier.verify(legit.token)
    const before = fx.jwksFetches()
    const forged = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'RS256', kid: `ins_unknown${i}` })
          .setSubject('mch_abc')
          .setExpirationTime(Math.floor(fx.clock.t / 1000) + 60)
          .sign(privateKey),
      ),
    )
    await Promise.all(forged.map((t) => expectFailsWith(verifier.verify(t), 'invalid_token')))
    expect(fx.jwksFetches() - before).toBeLessThanOrEqual(1)
  })

  test('JWKS unreachable: one fetch, then misses fail fast for a second instead of asking again', async () => {
    const tokens = await Promise.all(Array.from({ length: 5 }, () => mint({ jwt: true })))
    const verifier = fx.verifier()
    fx.emulator.setFaults({ errorRate: 1, operations: ['getJwks'] })
    const before = fx.jwksFetches()
    for (const { token } of tokens) {
      await expectFailsWith(verifier.verify(token), 'verification_unavailable')
    }
    expect(fx.jwksFetches() - before).toBe(1)
    // One failure: the four answers from the back-off sent nothing upstream.
    expect(verifier.stats()).toMatchObject({ upstreamCalls: 1, failures: 1 })
    fx.emulator.clearFaults()
    fx.clock.advance(1_000)
    expect((await verifier.verify(tokens[0]!.token)).format).toBe('jwt')
    expect(fx.jwksFetches() - before).toBe(2)
  })

  test('JWKS unreachable: verification_unavailable; JWKS refusing our key: verifier_misconfigured', async () => {
    const { token } = await mint({ jwt: true })
    fx.emulator.setFaults({ errorRate: 1, operations: ['getJwks'] })
    await expectFailsWith(fx.verifier().verify(token), 'verification_unavailable')
    fx.emulator.clearFaults()
    const refused = fx.verifier({ secretKey: 'sk_test_wrong_key_for_jwks' })
    seenSecrets.add('sk_test_wrong_key_for_jwks')
    const jwksStatus = await fetch(`${fx.emulator.apiUrl}/jwks`, {
      headers: { authorization: 'Bearer sk_test_wrong_key_for_jwks' },
    }).then((r) => r.status)
    if (jwksStatus === 401 || jwksStatus === 403) {
      await expectFailsWith(refused.verify(token), 'verifier_misconfigured')
    } else {
      // The emulator serves its JWKS publicly (as some deployments do): the token verifies.
      expect((await refused.verify(token)).format).toBe('jwt')
    }
  })
})

describe('revoke, invalidate, revocation bus, shared store', () => {
  test('revoke() revokes upstream and evicts every cached entry of that id', async () => {
    const created = await mint()
    const verifier = fx.verifier()
    await verifier.verify(created.token)
    await verifier.revoke(created.id, 'rotated')
    const listed = await fx.callerClient.listTokens({
      subject: fx.caller.id,
      revoked: true,
      limit: 100,
    })
    expect(listed.m2mTokens.find((t) => t.id === created.id)?.revocationReason).toBe('rotated')
    const before = fx.upstreamVerifies()
    await expectFailsWith(verifier.verify(created.token), 'token_revoked')
    expect(fx.upstreamVerifies()).toBe(before)
    expect(verifier.stats().entries).toBe(0)
  })

  test('revoke() evicts every key cached under one id: an opaque token and a JWT sharing it', async () => {
    // Clerk's JWT carries the token id as jti; here a JWT is signed (with a key this verifier
    // trusts) for the id of a real opaque token, so two cache keys map to one id.
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    const verifier = fx.verifier({ jwt: { jwtKey: await exportSPKI(publicKey) } })
    const opaque = await mint()
    const nowS = Math.floor(fx.clock.t / 1000)
    const jwt = await new SignJWT({ scopes: fx.service.id })
      .setProtectedHeader({ alg: 'RS256', cat: M2M_JWT_CATEGORY })
      .setSubject(fx.caller.id)
      .setJti(opaque.id)
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + 3600)
      .sign(privateKey)
    seenSecrets.add(jwt)
    const third = await mint()
    expect((await verifier.verify(opaque.token)).format).toBe('opaque')
    expect((await verifier.verify(jwt)).id).toBe(opaque.id)
    await verifier.verify(third.token)
    expect(verifier.stats().entries).toBe(3)
    await verifier.revoke(opaque.id)
    // Both entries of that id are gone; the other token's entry is untouched.
    expect(verifier.stats().entries).toBe(1)
    const before = fx.upstreamVerifies()
    await expectFailsWith(verifier.verify(opaque.token), 'token_revoked')
    await expectFailsWith(verifier.verify(jwt), 'token_revoked')
    expect(fx.upstreamVerifies()).toBe(before)
    expect((await verifier.verify(third.token)).id).toBe(third.id)
    expect(fx.upstreamVerifies()).toBe(before)
  })

  test('a failed upstream revoke throws, and still drops the local entry', async () => {
    const created = await mint()
    const verifier = fx.verifier()
    await verifier.verify(created.token)
    fx.emulator.setFaults({ errorRate: 1, operations: ['revokeM2MToken'] })
    await expect(verifier.revoke(created.id)).rejects.toThrow()
    fx.emulator.clearFaults()
    expect(verifier.stats().entries).toBe(0)
    expect((await verifier.verify(created.token)).id).toBe(created.id)
  })

  test('revoke() reaches every verifier on the bus, without upstream calls', async () => {
    const bus = memoryRevocationBus()
    const created = await mint()
    const a = fx.verifier({ revocationBus: bus })
    const b = fx.verifier({ revocationBus: bus })
    await a.verify(created.token)
    await b.verify(created.token)
    await a.revoke(created.id)
    const before = fx.upstreamVerifies()
    await expectFailsWith(b.verify(created.token), 'token_revoked')
    expect(fx.upstreamVerifies()).toBe(before)
    await b.close()
    expect(bus.listenerCount).toBe(1)
  })

  test('without a bus, a revocation elsewhere is seen within ttlMs', async () => {
    const created = await mint()
    const verifier = fx.verifier({ cache: { ttlMs: 5_000 } })
    await verifier.verify(created.token)
    await fx.callerClient.revokeToken({ m2mTokenId: created.id })
    await verifier.verify(created.token)
    fx.clock.advance(5_000)
    await expectFailsWith(verifier.verify(created.token), 'token_revoked')
  })

  test('invalidate(token) drops the entry: the next verify asks upstream', async () => {
    const { token } = await mint()
    const verifier = fx.verifier()
    await verifier.verify(token)
    await verifier.invalidate(token)
    const before = fx.upstreamVerifies()
    await verifier.verify(token)
    expect(fx.upstreamVerifies() - before).toBe(1)
  })

  test('a shared store is a second tier: another verifier hits it without an upstream call', async () => {
    const store = memoryCacheStore({ now: fx.clock.now })
    const { token, id } = await mint()
    const events: M2MEvent[] = []
    const a = fx.verifier({ cache: { store } })
    const b = fx.verifier({ cache: { store }, onEvent: (e) => events.push(e) })
    await a.verify(token)
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(store.size).toBe(1)
    const before = fx.upstreamVerifies()
    expect((await b.verify(token)).id).toBe(id)
    expect(fx.upstreamVerifies()).toBe(before)
    expect(events).toContainEqual({ type: 'cache_hit', id, tier: 'store' })
  })

  test("a shared entry is aged from its verification against the reader's own ttlMs", async () => {
    // One store, two routes: a lax writer (60 s) and a strict reader (1 s). The strict one must
    // not accept, 2 s later, what the lax one verified: its ttlMs is its revocation bound.
    const store = memoryCacheStore({ now: fx.clock.now })
    const { token } = await mint()
    const lax = fx.verifier({ cache: { ttlMs: 60_000, store } })
    await lax.verify(token)
    await new Promise((resolve) => setTimeout(resolve, 0))
    fx.clock.advance(2_000)
    const strictEvents: M2MEvent[] = []
    const strict = fx.verifier({
      cache: { ttlMs: 1_000, store },
      onEvent: (e) => strictEvents.push(e),
    })
    let before = fx.upstreamVerifies()
    await strict.verify(token)
    expect(fx.upstreamVerifies() - before).toBe(1)
    expect(strictEvents.some((e) => e.type === 'cache_hit')).toBe(false)

    // A reader with the same ttlMs takes the entry, but only for what is left of it: it is
    // 2 s old, so 58 s more, not 60.
    const peer = fx.verifier({ cache: { ttlMs: 60_000, store } })
    before = fx.upstreamVerifies()
    await peer.verify(token)
    expect(fx.upstreamVerifies() - before).toBe(0)
    fx.clock.advance(58_000)
    await peer.verify(token)
    expect(fx.upstreamVerifies() - before).toBe(1)
  })

  test('a JWT without jti is cached in memory but not written to the shared store', async () => {
    // Without an id no instance could revoke it by id, and the stores' decoders refuse it.
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    const { store, calls } = recordingStore({ now: fx.clock.now })
    const verifier = fx.verifier({ jwt: { jwtKey: await exportSPKI(publicKey) }, cache: { store } })
    const nowS = Math.floor(fx.clock.t / 1000)
    const jwt = await new SignJWT({ scopes: fx.service.id })
      .setProtectedHeader({ alg: 'RS256', cat: M2M_JWT_CATEGORY })
      .setSubject(fx.caller.id)
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + 3600)
      .sign(privateKey)
    seenSecrets.add(jwt)
    expect((await verifier.verify(jwt)).id).toBe('')
    await verifier.verify((await mint()).token)
    await new Promise((resolve) => setTimeout(resolve, 0))
    const writes = calls.flatMap((c) => (c.op === 'set' ? [c.value?.auth.format] : []))
    expect(writes).toEqual(['opaque'])
    expect(verifier.stats().entries).toBe(2)
  })

  test('ttlMs 0 turns the shared tier off too: nothing read, nothing written', async () => {
    const { store, calls } = recordingStore({ now: fx.clock.now })
    const { token } = await mint()
    await fx.verifier({ cache: { store } }).verify(token)
    await new Promise((resolve) => setTimeout(resolve, 0))
    calls.length = 0
    const uncached = fx.verifier({ cache: { ttlMs: 0, store } })
    const before = fx.upstreamVerifies()
    await uncached.verify(token)
    await uncached.verify(token)
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(fx.upstreamVerifies() - before).toBe(2)
    expect(calls).toEqual([])
  })

  test('a shared entry from a clock well ahead of ours is a miss, not a longer life', async () => {
    const store = memoryCacheStore({ now: fx.clock.now })
    const { token } = await mint()
    const ahead = fx.verifier({ cache: { store }, now: () => fx.clock.now() + 60_000 })
    await ahead.verify(token)
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(store.size).toBe(1)
    const before = fx.upstreamVerifies()
    const events: M2MEvent[] = []
    await fx.verifier({ cache: { store }, onEvent: (e) => events.push(e) }).verify(token)
    expect(fx.upstreamVerifies() - before).toBe(1)
    // Reported, so that sharing does not stop unseen while a clock is off.
    expect(events).toContainEqual({
      type: 'store_error',
      operation: 'get',
      message: 'RangeError (stamped_ahead_of_clock)',
    })
  })

  test('store keys are namespaced hashes, never the token', async () => {
    const { store, calls } = recordingStore()
    const { token } = await mint()
    await fx.verifier({ cache: { store } }).verify(token)
    await new Promise((resolve) => setTimeout(resolve, 0))
    const keys = calls.map((c) => c.key)
    expect(keys.length).toBeGreaterThan(0)
    for (const k of keys) {
      expect(k).toMatch(/^m2m-guard:v2:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]{43}$/)
      expect(k.includes(token.slice(3))).toBe(false)
    }
  })

  test('an entry from the shared store for an id revoked on the bus is rejected', async () => {
    const bus = memoryRevocationBus()
    const inner = memoryCacheStore({ now: fx.clock.now })
    // A store that lags: deletes are lost (replica lag, a failed DEL).
    const laggy: CacheStore = { get: inner.get, set: inner.set, delete: () => {} }
    const created = await mint()
    const writer = fx.verifier({ cache: { store: laggy } })
    const reader = fx.verifier({ cache: { store: laggy }, revocationBus: bus })
    const revoker = fx.verifier({ revocationBus: bus })
    await writer.verify(created.token)
    await new Promise((resolve) => setTimeout(resolve, 0))
    await revoker.revoke(created.id)
    await expectFailsWith(reader.verify(created.token), 'token_revoked')
  })

  test('store failures are misses with a store_error event, never a failed request', async () => {
    const broken: CacheStore = {
      get: () => Promise.reject(new Error('ECONNREFUSED')),
      set: () => {
        throw new Error('ECONNREFUSED')
      },
      delete: () => Promise.reject(new Error('ECONNREFUSED')),
    }
    const events: M2MEvent[] = []
    const { token } = await mint()
    const verifier = fx.verifier({ cache: { store: broken }, onEvent: (e) => events.push(e) })
    expect((await verifier.verify(token)).subject).toBe(fx.caller.id)
    await verifier.invalidate(token)
    await new Promise((resolve) => setTimeout(resolve, 0))
    const ops = events.flatMap((e) => (e.type === 'store_error' ? [e.operation] : []))
    expect(ops).toEqual(expect.arrayContaining(['get', 'set', 'delete']))
  })
})

describe('hostile or failing surroundings (red-team findings)', () => {
  test('a store whose get never settles is a miss after a bound, never a hung request', async () => {
    const hung: CacheStore = {
      get: () => new Promise(() => {}),
      set: () => {},
      delete: () => {},
    }
    const events: M2MEvent[] = []
    const { token, id } = await mint()
    const verifier = fx.verifier({ cache: { store: hung }, onEvent: (e) => events.push(e) })
    const started = performance.now()
    expect((await verifier.verify(token)).id).toBe(id)
    expect(performance.now() - started).toBeLessThan(3_000)
    expect(events).toContainEqual({
      type: 'store_error',
      operation: 'get',
      message: 'SharedTierTimeout',
    })
  })

  test('a bus whose publish never settles: revoke() still ends, with a bus_error event', async () => {
    const events: M2MEvent[] = []
    const bus = { publish: () => new Promise<void>(() => {}), subscribe: () => () => {} }
    const created = await mint()
    const verifier = fx.verifier({ revocationBus: bus, onEvent: (e) => events.push(e) })
    await verifier.verify(created.token)
    await verifier.revoke(created.id)
    expect(events).toContainEqual({ type: 'bus_error', message: 'SharedTierTimeout' })
    await expectFailsWith(verifier.verify(created.token), 'token_revoked')
  })

  test('an async onEvent that rejects never becomes an unhandled rejection', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const { token } = await mint()
      const verifier = fx.verifier({
        onEvent: async () => {
          throw new Error('metrics sink down')
        },
      })
      expect((await verifier.verify(token)).subject).toBe(fx.caller.id)
      await expectFailsWith(verifier.verify(unknownToken(430)), 'invalid_token')
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })

  test.each([
    ['a redirect', 302, { location: 'https://elsewhere.example/' }, ''],
    ['an HTML 404 page', 404, { 'content-type': 'text/html' }, '<html>Not Found</html>'],
  ])(
    '%s from apiUrl is verifier_misconfigured (500), never blamed on the token or cached',
    async (_, status, headers, body) => {
      await withCannedApi(status, headers, body, async (apiUrl, calls) => {
        const events: M2MEvent[] = []
        const verifier = createM2MVerifier({
          apiUrl,
          secretKey: fx.emulator.secretKey,
          retry: false,
          onEvent: (e) => events.push(e),
        })
        const token = unknownToken(440 + status)
        await expectFailsWith(verifier.verify(token), 'verifier_misconfigured')
        await expectFailsWith(verifier.verify(token), 'verifier_misconfigured')
        expect(calls()).toBe(2)
        expect(verifier.stats()).toMatchObject({ negativeEntries: 0, breaker: 'closed' })
        expect(events).toContainEqual(expect.objectContaining({ type: 'misconfigured', status }))
      })
    },
  )

  test.each([
    ['an HTML 502 from a load balancer', 502],
    ['an HTML 429 from a proxy', 429],
  ])('%s is an outage (503, a breaker failure), not misconfiguration', async (_, status) => {
    const page = '<html>Bad Gateway</html>'
    await withCannedApi(status, { 'content-type': 'text/html' }, page, async (apiUrl) => {
      const events: M2MEvent[] = []
      const verifier = createM2MVerifier({
        apiUrl,
        secretKey: fx.emulator.secretKey,
        retry: false,
        breaker: { failureThreshold: 2 },
        onEvent: (e) => events.push(e),
      })
      await expectFailsWith(verifier.verify(unknownToken(450 + status)), 'verification_unavailable')
      await expectFailsWith(verifier.verify(unknownToken(451 + status)), 'verification_unavailable')
      expect(verifier.stats()).toMatchObject({ failures: 2, breaker: 'open', negativeEntries: 0 })
      expect(events.some((e) => e.type === 'misconfigured')).toBe(false)
    })
  })

  test('a clock stepped back does not stretch a cached entry past ttlMs (the revocation bound)', async () => {
    const created = await mint()
    const verifier = fx.verifier({ cache: { ttlMs: 5_000 } })
    await verifier.verify(created.token)
    await fx.callerClient.revokeToken({ m2mTokenId: created.id })
    fx.clock.advance(-3_600_000)
    try {
      const before = fx.upstreamVerifies()
      await expectFailsWith(verifier.verify(created.token), 'token_revoked')
      expect(fx.upstreamVerifies() - before).toBe(1)
    } finally {
      fx.clock.advance(3_600_000)
    }
  })

  test('entries from a custom store are checked field by field: garbage is a miss, never an identity', async () => {
    const created = await mint()
    const good = {
      tokenType: 'm2m_token',
      format: 'opaque',
      id: created.id,
      subject: fx.caller.id,
      scopes: [fx.service.id],
      claims: null,
      expiration: null,
    }
    const t = fx.clock.t
    const values = [
      { auth: good, verifiedAt: t, expiresAt: Number.NaN },
      { auth: good, verifiedAt: Number.NaN, expiresAt: t + 60_000 },
      { auth: good, expiresAt: t + 60_000 },
      { auth: { ...good, expiration: Number.NaN }, verifiedAt: t, expiresAt: t + 60_000 },
      { auth: { ...good, claims: undefined }, verifiedAt: t, expiresAt: t + 60_000 },
      { auth: { ...good, scopes: [null] }, verifiedAt: t, expiresAt: t + 60_000 },
      { auth: { ...good, subject: 'not-a-machine' }, verifiedAt: t, expiresAt: t + 60_000 },
    ]
    for (const value of values) {
      const events: M2MEvent[] = []
      // Planted as a store would hand it back, past the type system: that is the point.
      const planted = value as unknown as CachedVerification
      const store: CacheStore = { get: async () => planted, set: () => {}, delete: () => {} }
      const verifier = fx.verifier({ cache: { store }, onEvent: (e) => events.push(e) })
      const before = fx.upstreamVerifies()
      // Answered by upstream (one call), not by the planted value.
      expect((await verifier.verify(created.token)).id).toBe(created.id)
      expect(fx.upstreamVerifies() - before).toBe(1)
      expect(events).toContainEqual(
        expect.objectContaining({ type: 'store_error', operation: 'get' }),
      )
    }
  })

  test('cached claims are frozen all the way down: one route cannot change what the next sees', async () => {
    const created = await mint({ claims: { roles: ['reader'], limits: { rps: 10 } } })
    const verifier = fx.verifier()
    const auth = await verifier.verify(created.token)
    const claims = auth.claims as { roles: string[]; limits: { rps: number } }
    expect(() => claims.roles.push('admin')).toThrow(TypeError)
    expect(() => {
      claims.limits.rps = 1e9
    }).toThrow(TypeError)
    expect((await verifier.verify(created.token)).claims).toEqual({
      roles: ['reader'],
      limits: { rps: 10 },
    })
  })

  test('a bus delivering something that is not an id changes nothing and throws nothing', async () => {
    let deliver: (id: string) => void = () => {}
    const bus = {
      publish: async () => {},
      subscribe: (listener: (id: string) => void) => {
        deliver = listener
        return () => {}
      },
    }
    const created = await mint()
    const verifier = fx.verifier({ revocationBus: bus })
    await verifier.verify(created.token)
    for (const junk of [undefined, null, 42, '', {}])
      expect(() => deliver(junk as never)).not.toThrow()
    expect((await verifier.verify(created.token)).id).toBe(created.id)
  })
})

describe('events and stats', () => {
  test('a throwing onEvent does not break verify', async () => {
    const { token } = await mint()
    const verifier = fx.verifier({
      onEvent: () => {
        throw new Error('listener bug')
      },
    })
    expect((await verifier.verify(token)).subject).toBe(fx.caller.id)
    expect((await verifier.verify(token)).subject).toBe(fx.caller.id)
    await expectFailsWith(verifier.verify(unknownToken(400)), 'invalid_token')
  })

  test('stats().failures counts each transient upstream failure, and nothing else', async () => {
    const { token } = await mint()
    const verifier = fx.verifier({ breaker: false })
    await expectFailsWith(verifier.verify(unknownToken(410)), 'invalid_token')
    await verifier.verify(token)
    expect(verifier.stats().failures).toBe(0)
    fx.emulator.setFaults({ errorRate: 1 })
    for (let i = 0; i < 3; i++)
      await expectFailsWith(verifier.verify(unknownToken(420 + i)), 'verification_unavailable')
    await expectFailsWith(verifier.verify(unknownToken(420)), 'verification_unavailable')
    expect(verifier.stats()).toMatchObject({ failures: 4, upstreamCalls: 6, misses: 6 })
  })

  test('emits verified, cache_hit, cache_miss, rejected', async () => {
    const { token, id } = await mint()
    const events: M2MEvent[] = []
    const verifier = fx.verifier({ onEvent: (e) => events.push(e) })
    await verifier.verify(token)
    await verifier.verify(token)
    await verifier.verify(unknownToken(401)).catch(() => {})
    expect(events).toEqual([
      { type: 'cache_miss' },
      { type: 'verified', id, subject: fx.caller.id, format: 'opaque', source: 'upstream' },
      { type: 'cache_hit', id, tier: 'memory' },
      { type: 'cache_miss' },
      { type: 'rejected', code: 'invalid_token' },
    ])
  })
})
