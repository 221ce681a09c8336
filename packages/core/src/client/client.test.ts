import { inspect } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  clerkErrors,
  closedPort,
  exampleBody,
  exampleToken,
  type FakeClerk,
  startFakeClerk,
} from '../../test/support/fake-clerk.js'
import { M2MApiError, M2MConnectionError } from '../errors.js'
import type { M2MClientOptions } from '../types.js'
import { buildM2MClient, type ClientInternals } from './client.js'
import { send as sendWithFetch } from './transport-fetch.js'
import { send as sendWithUndici } from './transport-node.js'

const SECRET = 'sk_test_Sup3rS3cretKeyValueThatMustNeverLeak0123'
const SUBJECT = 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk'
const TOKEN_ID = 'mt_f7f0ba8c3b4843ce7d85fcdd5e71853e'
const OPAQUE_TOKEN = 'mt_0123456789abcdefOPAQUEsecretTokenValue'

/** The spec example token, camelCased as the client must return it. */
const EXAMPLE_TOKEN = {
  object: 'machine_to_machine_token',
  id: TOKEN_ID,
  subject: SUBJECT,
  claims: { important_metadata: 'Some useful data' },
  scopes: ['mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk', 'mch_2yGkLpQ7Y3rXSwtU24CzTk9I7Em'],
  revoked: false,
  revocationReason: 'Revoked by user',
  expired: false,
  expiration: 1716883200000,
  lastUsedAt: 1716883200000,
  createdAt: 1716883200000,
  updatedAt: 1716883200000,
}

interface Variant {
  name: string
  options: Partial<M2MClientOptions>
  internals: ClientInternals
}

// The same suite runs over each way the client can reach the network.
const variants: Variant[] = [
  { name: 'undici transport', options: {}, internals: { transport: sendWithUndici } },
  { name: 'fetch transport', options: {}, internals: { transport: sendWithFetch } },
  {
    name: 'fetch option',
    options: { fetch: (url, init) => globalThis.fetch(url, init) },
    internals: {},
  },
]

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the promise to reject')
}

function everythingSaid(error: unknown): string {
  const e = error as Error
  return `${String(e)}\n${e.message}\n${e.stack}\n${inspect(e, { depth: 10 })}\n${JSON.stringify(e)}`
}

describe.each(variants)('createM2MClient over $name', (variant) => {
  let fake: FakeClerk
  let sleeps: number[]

  beforeEach(async () => {
    fake = await startFakeClerk()
    sleeps = []
  })

  afterEach(async () => {
    await fake.close()
    expect(fake.violations).toEqual([])
  })

  function client(options: Partial<M2MClientOptions> = {}, internals: ClientInternals = {}) {
    return buildM2MClient(
      { secretKey: SECRET, apiUrl: fake.url, ...variant.options, ...options },
      {
        random: () => 0.5,
        sleep: async (ms) => {
          sleeps.push(ms)
        },
        ...variant.internals,
        ...internals,
      },
    )
  }

  describe('operations and wire encoding', () => {
    it('createToken sends an empty JSON object and decodes the 201', async () => {
      const created = await client().createToken()
      expect(created).toEqual({ ...EXAMPLE_TOKEN, token: 'mt_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX' })
      expect(fake.requests).toHaveLength(1)
      const [request] = fake.requests
      expect(request).toMatchObject({ method: 'POST', path: '/v1/m2m_tokens', body: {} })
      expect(request!.headers.authorization).toBe(`Bearer ${SECRET}`)
      expect(request!.headers['content-type']).toBe('application/json')
      expect(request!.headers.accept).toBe('application/json')
      expect(request!.headers['user-agent']).toBe('m2m-guard/0.1.0')
    })

    it('createToken encodes every parameter in snake_case', async () => {
      await client().createToken({
        secondsUntilExpiration: 9240.85,
        claims: { job: 'nightly', nested: { a: [1, 2] } },
        tokenFormat: 'jwt',
        minRemainingTtlSeconds: 240,
      })
      expect(fake.requests[0]!.body).toEqual({
        seconds_until_expiration: 9240.85,
        claims: { job: 'nightly', nested: { a: [1, 2] } },
        token_format: 'jwt',
        min_remaining_ttl_seconds: 240,
      })
    })

    it('createToken sends null lifetime and null claims as null', async () => {
      await client().createToken({
        secondsUntilExpiration: null,
        claims: null,
        tokenFormat: 'opaque',
      })
      expect(fake.requests[0]!.body).toEqual({
        seconds_until_expiration: null,
        claims: null,
        token_format: 'opaque',
      })
    })

    it('listTokens encodes every filter in the query and decodes the page', async () => {
      const page = await client().listTokens({
        subject: SUBJECT,
        revoked: true,
        expired: false,
        limit: 50,
        offset: 10,
      })
      expect(page).toEqual({ m2mTokens: [EXAMPLE_TOKEN], totalCount: 1 })
      const [request] = fake.requests
      expect(request).toMatchObject({ method: 'GET', path: '/v1/m2m_tokens', rawBody: '' })
      expect(request!.rawQuery).toBe(
        `subject=${SUBJECT}&revoked=true&expired=false&limit=50&offset=10`,
      )
      expect(request!.headers['content-type']).toBeUndefined()
      expect(request!.headers.authorization).toBe(`Bearer ${SECRET}`)
    })

    it('listTokens sends only the subject when nothing else is given', async () => {
      await client().listTokens({ subject: SUBJECT })
      expect(fake.requests[0]!.query).toEqual({ subject: SUBJECT })
    })

    it('listAllTokens pages with limit/offset until totalCount', async () => {
      const all = Array.from({ length: 5 }, (_, i) => exampleToken(i))
      fake.handle((request) => {
        const limit = Number(request.query.limit)
        const offset = Number(request.query.offset)
        return {
          status: 200,
          json: { m2m_tokens: all.slice(offset, offset + limit), total_count: all.length },
        }
      })
      const ids: string[] = []
      for await (const token of client().listAllTokens({
        subject: SUBJECT,
        revoked: true,
        pageSize: 2,
      })) {
        ids.push(token.id)
      }
      expect(ids).toEqual(all.map((t) => t.id))
      expect(fake.requests.map((r) => r.query)).toEqual([
        { subject: SUBJECT, revoked: 'true', limit: '2', offset: '0' },
        { subject: SUBJECT, revoked: 'true', limit: '2', offset: '2' },
        { subject: SUBJECT, revoked: 'true', limit: '2', offset: '4' },
      ])
    })

    it('listAllTokens uses pages of 100 and stops on an empty page even if the count says more', async () => {
      fake.enqueue(
        { status: 200, json: { m2m_tokens: [exampleToken(1)], total_count: 7 } },
        { status: 200, json: { m2m_tokens: [], total_count: 7 } },
      )
      const ids: string[] = []
      for await (const token of client().listAllTokens({ subject: SUBJECT })) ids.push(token.id)
      expect(ids).toEqual([exampleToken(1).id])
      expect(fake.requests.map((r) => r.query.limit)).toEqual(['100', '100'])
      expect(fake.requests.map((r) => r.query.offset)).toEqual(['0', '1'])
    })

    it('listAllTokens restarts from the first page on each iteration', async () => {
      const iterable = client().listAllTokens({ subject: SUBJECT })
      for await (const _ of iterable) {
        // drain
      }
      for await (const _ of iterable) {
        // drain again
      }
      expect(fake.requests.map((r) => r.query.offset)).toEqual(['0', '0'])
    })

    it('revokeToken posts the reason to the id path', async () => {
      const revoked = await client().revokeToken({
        m2mTokenId: TOKEN_ID,
        revocationReason: 'rotated',
      })
      expect(revoked).toMatchObject({ id: TOKEN_ID, revoked: true, revocationReason: 'rotated' })
      expect(fake.requests[0]).toMatchObject({
        method: 'POST',
        path: `/v1/m2m_tokens/${TOKEN_ID}/revoke`,
        body: { revocation_reason: 'rotated' },
      })
    })

    it('revokeToken sends {} without a reason and null when the reason is null', async () => {
      await client().revokeToken({ m2mTokenId: TOKEN_ID })
      await client().revokeToken({ m2mTokenId: TOKEN_ID, revocationReason: null })
      expect(fake.requests.map((r) => r.body)).toEqual([{}, { revocation_reason: null }])
    })

    it('verifyToken posts the token and decodes the record', async () => {
      const verified = await client().verifyToken({ token: OPAQUE_TOKEN })
      expect(verified).toEqual(EXAMPLE_TOKEN)
      expect(fake.requests[0]).toMatchObject({
        method: 'POST',
        path: '/v1/m2m_tokens/verify',
        body: { token: OPAQUE_TOKEN },
      })
    })

    it('decodes a never-expiring, never-used token without claims or scopes', async () => {
      fake.enqueue({
        status: 200,
        json: {
          ...exampleBody('verifyM2MToken', 200),
          claims: null,
          scopes: [],
          expiration: null,
          last_used_at: null,
          revocation_reason: null,
        },
      })
      const verified = await client().verifyToken({ token: OPAQUE_TOKEN })
      expect(verified).toMatchObject({
        claims: null,
        scopes: [],
        expiration: null,
        lastUsedAt: null,
        revocationReason: null,
      })
    })

    it.each([
      ['the origin', ''],
      ['a trailing slash', '/'],
      ['/v1', '/v1'],
      ['/v1/', '/v1/'],
    ])('accepts apiUrl with %s', async (_, suffix) => {
      const c = client({ apiUrl: fake.url + suffix })
      expect(c.apiUrl).toBe(`${fake.url}/v1`)
      await c.verifyToken({ token: OPAQUE_TOKEN })
      expect(fake.requests[0]!.path).toBe('/v1/m2m_tokens/verify')
    })
  })

  describe('API errors', () => {
    const documented = [
      ['createToken', 'createM2MToken', 400],
      ['createToken', 'createM2MToken', 409],
      ['listTokens', 'getM2MTokens', 400],
      ['listTokens', 'getM2MTokens', 403],
      ['listTokens', 'getM2MTokens', 404],
      ['revokeToken', 'revokeM2MToken', 400],
      ['revokeToken', 'revokeM2MToken', 404],
      ['verifyToken', 'verifyM2MToken', 400],
      ['verifyToken', 'verifyM2MToken', 404],
    ] as const

    function call(name: (typeof documented)[number][0]) {
      const c = client()
      switch (name) {
        case 'createToken':
          return c.createToken({ secondsUntilExpiration: 60 })
        case 'listTokens':
          return c.listTokens({ subject: SUBJECT })
        case 'revokeToken':
          return c.revokeToken({ m2mTokenId: TOKEN_ID })
        case 'verifyToken':
          return c.verifyToken({ token: OPAQUE_TOKEN })
      }
    }

    it.each(documented)(
      '%s: %s %i gives M2MApiError with the spec example, no retry',
      async (name, op, status) => {
        const body = exampleBody(op, status)
        fake.enqueue({ status, json: body, headers: { 'x-clerk-trace-id': 'trace-from-header' } })
        const error = await rejection(call(name))
        expect(error).toBeInstanceOf(M2MApiError)
        const apiError = error as M2MApiError
        const wireEntry = (body.errors as Record<string, string>[])[0]!
        expect(apiError.status).toBe(status)
        expect(apiError.code).toBe('api_error')
        expect(apiError.errors).toEqual([
          { code: wireEntry.code, message: wireEntry.message, longMessage: wireEntry.long_message },
        ])
        expect(apiError.clerkTraceId).toBe('trace-from-header')
        expect(apiError.retryAfterMs).toBeUndefined()
        expect(apiError.message).toContain(`${name}: Clerk API answered ${status}`)
        expect(apiError.message).toContain(wireEntry.code)
        expect(fake.requests).toHaveLength(1)
      },
    )

    it('401 decodes every field, meta included, and prefers the body trace id', async () => {
      fake.enqueue({
        status: 401,
        json: {
          errors: [
            {
              code: 'authentication_invalid',
              message: 'Unauthorized',
              long_message: 'The provided secret key is invalid',
              meta: { param_name: 'Authorization' },
            },
            { code: 'second', message: 'two', long_message: 'second entry' },
          ],
          clerk_trace_id: 'trace-from-body',
        },
        headers: { 'x-clerk-trace-id': 'trace-from-header' },
      })
      const error = (await rejection(client().verifyToken({ token: OPAQUE_TOKEN }))) as M2MApiError
      expect(error).toBeInstanceOf(M2MApiError)
      expect(error.status).toBe(401)
      expect(error.errors).toEqual([
        {
          code: 'authentication_invalid',
          message: 'Unauthorized',
          longMessage: 'The provided secret key is invalid',
          meta: { param_name: 'Authorization' },
        },
        { code: 'second', message: 'two', longMessage: 'second entry' },
      ])
      expect(error.clerkTraceId).toBe('trace-from-body')
      expect(error.message).toBe(
        'verifyToken: Clerk API answered 401 Unauthorized: authentication_invalid: The provided secret key is invalid',
      )
      expect(fake.requests).toHaveLength(1)
    })

    it('an HTML error page gives a clear error that quotes a capped excerpt', async () => {
      const html = `<html><head><title>502 Bad Gateway</title></head><body>${'x'.repeat(100_000)}</body></html>`
      fake.enqueue(
        ...Array.from({ length: 3 }, () => ({
          status: 502,
          text: html,
          headers: { 'content-type': 'text/html; charset=utf-8' },
        })),
      )
      const error = (await rejection(client().verifyToken({ token: OPAQUE_TOKEN }))) as M2MApiError
      expect(error).toBeInstanceOf(M2MApiError)
      expect(error.status).toBe(502)
      expect(error.errors).toHaveLength(1)
      expect(error.errors[0]).toMatchObject({
        code: 'unexpected_response',
        message: 'HTTP 502 Bad Gateway',
        meta: { contentType: 'text/html', bodyLength: html.length },
      })
      expect(error.message).toContain('502')
      expect(error.message).toContain('HTML')
      expect(error.message).toContain('<title>502 Bad Gateway</title>')
      expect(error.message.length).toBeLessThan(500)
      expect(fake.requests).toHaveLength(3)
    })

    it('an empty error body still says what happened', async () => {
      fake.enqueue({ status: 403, text: '' })
      const error = (await rejection(client().listTokens({ subject: SUBJECT }))) as M2MApiError
      expect(error).toBeInstanceOf(M2MApiError)
      expect(error.status).toBe(403)
      expect(error.errors[0]!.code).toBe('unexpected_response')
      expect(error.message).toContain('403')
      expect(error.message).toContain('empty body')
    })

    it('a cut-off JSON error body still gives the status', async () => {
      fake.enqueue({
        status: 400,
        text: '{"errors":[{"code":"form_param_inva',
        headers: { 'content-type': 'application/json' },
      })
      const error = (await rejection(client().createToken())) as M2MApiError
      expect(error).toBeInstanceOf(M2MApiError)
      expect(error.status).toBe(400)
      expect(error.errors[0]!.code).toBe('unexpected_response')
      expect(error.message).toContain('not JSON, possibly truncated')
    })

    it('JSON that is not the Clerk error shape is described, not trusted', async () => {
      fake.enqueue({ status: 404, json: { message: 'nope' }, offSpec: true })
      const error = (await rejection(client().verifyToken({ token: OPAQUE_TOKEN }))) as M2MApiError
      expect(error.status).toBe(404)
      expect(error.errors[0]!.code).toBe('unexpected_response')
      expect(error.message).toContain("not Clerk's error shape")
    })

    it('an error body cut off by a dropped connection is a connection failure, not a verdict', async () => {
      // A cut 404 must not read as "unknown token": the verifier would cache it negatively.
      fake.enqueue({ truncate: true, status: 404, text: '{"errors":[{"co', declaredLength: 500 })
      const error = (await rejection(
        client({ retry: false }).verifyToken({ token: OPAQUE_TOKEN }),
      )) as M2MConnectionError
      expect(error).toBeInstanceOf(M2MConnectionError)
      expect(error.code).toBe('connection_failed')
      expect(error.message).toContain('closed while reading the answer')
      expect(fake.requests).toHaveLength(1)
    })

    it('does not follow redirects (the key must not travel to another host)', async () => {
      const other = await startFakeClerk()
      try {
        fake.enqueue({
          status: 307,
          text: '',
          headers: { location: `${other.url}/v1/m2m_tokens/verify` },
        })
        const error = (await rejection(
          client().verifyToken({ token: OPAQUE_TOKEN }),
        )) as M2MApiError
        expect(error).toBeInstanceOf(M2MApiError)
        expect(error.status).toBe(307)
        expect(other.requests).toHaveLength(0)
      } finally {
        await other.close()
      }
    })
  })

  describe('invalid 2xx answers', () => {
    it('a 2xx body that is not JSON is invalid_response and not retried', async () => {
      fake.enqueue({ status: 200, text: 'OK', headers: { 'content-type': 'text/plain' } })
      const error = (await rejection(
        client().verifyToken({ token: OPAQUE_TOKEN }),
      )) as M2MConnectionError
      expect(error).toBeInstanceOf(M2MConnectionError)
      expect(error.code).toBe('invalid_response')
      expect(error.message).toContain('not valid JSON')
      expect(fake.requests).toHaveLength(1)
    })

    it('a 2xx body of the wrong shape is invalid_response, naming the field', async () => {
      fake.enqueue({
        status: 201,
        json: { ...exampleBody('createM2MToken', 201), token: undefined, expiration: 'soon' },
        offSpec: true,
      })
      const error = (await rejection(client().createToken())) as M2MConnectionError
      expect(error.code).toBe('invalid_response')
      expect(error.message).toContain('`expiration`')
    })

    it('a 2xx body cut off by a dropped connection is connection_failed', async () => {
      const body = JSON.stringify(exampleBody('verifyM2MToken', 200))
      fake.enqueue(
        ...Array.from({ length: 3 }, () => ({
          truncate: true as const,
          status: 200,
          text: body.slice(0, 40),
          declaredLength: body.length,
        })),
      )
      const error = (await rejection(
        client().verifyToken({ token: OPAQUE_TOKEN }),
      )) as M2MConnectionError
      expect(error).toBeInstanceOf(M2MConnectionError)
      expect(error.code).toBe('connection_failed')
      expect(error.message).toContain('closed while reading')
      expect(fake.requests).toHaveLength(3)
    })

    it('createToken is not retried when the answer was cut off (the token may exist)', async () => {
      const body = JSON.stringify(exampleBody('createM2MToken', 201))
      fake.enqueue({
        truncate: true,
        status: 201,
        text: body.slice(0, 40),
        declaredLength: body.length,
      })
      const error = (await rejection(client().createToken())) as M2MConnectionError
      expect(error.code).toBe('connection_failed')
      expect(fake.requests).toHaveLength(1)
    })
  })

  describe('retries', () => {
    const busy = { status: 503, json: clerkErrors('service_unavailable', 'try later') }

    it('retries 5xx with full-jitter exponential backoff, then gives the last error', async () => {
      fake.enqueue(busy, busy, busy)
      const error = (await rejection(client().verifyToken({ token: OPAQUE_TOKEN }))) as M2MApiError
      expect(error).toBeInstanceOf(M2MApiError)
      expect(error.status).toBe(503)
      expect(fake.requests).toHaveLength(3)
      // random() = 0.5 → half of 100·2^n
      expect(sleeps).toEqual([50, 100])
    })

    it('succeeds when a retry succeeds', async () => {
      fake.enqueue({ status: 500, json: clerkErrors('internal', 'oops') })
      const verified = await client().verifyToken({ token: OPAQUE_TOKEN })
      expect(verified.id).toBe(TOKEN_ID)
      expect(fake.requests).toHaveLength(2)
      expect(fake.requests[1]!.body).toEqual({ token: OPAQUE_TOKEN })
    })

    it('caps the backoff at maxDelayMs', async () => {
      fake.enqueue(busy, busy, busy, busy)
      await rejection(
        client({ retry: { maxRetries: 3, initialDelayMs: 400, maxDelayMs: 1000 } }).listTokens({
          subject: SUBJECT,
        }),
      )
      expect(sleeps).toEqual([200, 400, 500])
      expect(fake.requests).toHaveLength(4)
    })

    it('honours Retry-After in seconds on 429', async () => {
      fake.enqueue({
        status: 429,
        json: clerkErrors('too_many_requests', 'slow down'),
        headers: { 'retry-after': '1' },
      })
      await client().revokeToken({ m2mTokenId: TOKEN_ID })
      expect(sleeps).toEqual([1000])
      expect(fake.requests).toHaveLength(2)
    })

    it('honours Retry-After as an HTTP-date', async () => {
      const now = Date.UTC(2026, 0, 1, 12, 0, 0)
      fake.enqueue({
        status: 503,
        json: clerkErrors('unavailable', 'maintenance'),
        headers: { 'retry-after': new Date(now + 3000).toUTCString() },
      })
      await client({}, { now: () => now }).verifyToken(
        { token: OPAQUE_TOKEN },
        { timeoutMs: 10_000 },
      )
      expect(sleeps).toEqual([3000])
    })

    it('gives up at once with the 429 when Retry-After is past the deadline', async () => {
      fake.enqueue({
        status: 429,
        json: clerkErrors('too_many_requests', 'slow down'),
        headers: { 'retry-after': '30' },
      })
      const error = (await rejection(client().verifyToken({ token: OPAQUE_TOKEN }))) as M2MApiError
      expect(error).toBeInstanceOf(M2MApiError)
      expect(error.status).toBe(429)
      expect(error.retryAfterMs).toBe(30_000)
      expect(sleeps).toEqual([])
      expect(fake.requests).toHaveLength(1)
    })

    it('does not retry 4xx other than 429', async () => {
      fake.enqueue({ status: 409, json: exampleBody('createM2MToken', 409) })
      await rejection(client().createToken())
      fake.enqueue({ status: 401, json: clerkErrors('authentication_invalid', 'bad key') })
      await rejection(client().verifyToken({ token: OPAQUE_TOKEN }))
      expect(fake.requests).toHaveLength(2)
      expect(sleeps).toEqual([])
    })

    it('createToken is not retried on 5xx (the server may have minted a token)', async () => {
      fake.enqueue(busy)
      const error = (await rejection(client().createToken())) as M2MApiError
      expect(error.status).toBe(503)
      expect(fake.requests).toHaveLength(1)
    })

    it('createToken is retried on 429, which Clerk answers before acting', async () => {
      fake.enqueue({ status: 429, json: clerkErrors('too_many_requests', 'slow down') })
      const created = await client().createToken({ secondsUntilExpiration: 60 })
      expect(created.token).toBe('mt_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX')
      expect(fake.requests).toHaveLength(2)
    })

    it('retries a reset connection for idempotent calls', async () => {
      fake.enqueue({ reset: true }, { reset: true }, { reset: true })
      const error = (await rejection(
        client().verifyToken({ token: OPAQUE_TOKEN }),
      )) as M2MConnectionError
      expect(error).toBeInstanceOf(M2MConnectionError)
      expect(error.code).toBe('connection_failed')
      expect(error.cause).toBeDefined()
      expect(fake.requests).toHaveLength(3)
    })

    it('createToken is not retried after a reset (the request reached the server)', async () => {
      fake.enqueue({ reset: true })
      const error = (await rejection(client().createToken())) as M2MConnectionError
      expect(error.code).toBe('connection_failed')
      expect(fake.requests).toHaveLength(1)
    })

    it('createToken is retried when the connection was refused (nothing was sent)', async () => {
      const port = await closedPort()
      const error = (await rejection(
        client({ apiUrl: `http://127.0.0.1:${port}` }).createToken(),
      )) as M2MConnectionError
      expect(error).toBeInstanceOf(M2MConnectionError)
      expect(error.code).toBe('connection_failed')
      expect(error.message).toContain('ECONNREFUSED')
      expect(error.message).toContain(`http://127.0.0.1:${port}`)
      expect(sleeps).toHaveLength(2)
    })

    it('retryConnectionErrors: false stops connection retries', async () => {
      fake.enqueue({ reset: true })
      await rejection(
        client({ retry: { retryConnectionErrors: false } }).verifyToken({ token: OPAQUE_TOKEN }),
      )
      expect(fake.requests).toHaveLength(1)
    })

    it('retry: false per call disables retries; a call policy overrides the client', async () => {
      fake.enqueue(busy)
      await rejection(client().verifyToken({ token: OPAQUE_TOKEN }, { retry: false }))
      expect(fake.requests).toHaveLength(1)

      fake.enqueue(busy, busy, busy)
      await rejection(
        client({ retry: false }).verifyToken({ token: OPAQUE_TOKEN }, { retry: { maxRetries: 1 } }),
      )
      expect(fake.requests).toHaveLength(3)

      fake.enqueue(busy)
      await rejection(client({ retry: false }).verifyToken({ token: OPAQUE_TOKEN }))
      expect(fake.requests).toHaveLength(4)

      fake.enqueue(busy, busy, busy, busy, busy)
      await rejection(client({ retry: { maxRetries: 4 } }).listTokens({ subject: SUBJECT }))
      expect(fake.requests).toHaveLength(9)
    })
  })

  describe('timeouts and abort', () => {
    it('times out a call that gets no answer, without retrying past the deadline', async () => {
      fake.enqueue({ hang: true })
      // A deadline the request reaches the fake server well within, even on a loaded machine:
      // the request count below is the server's, not bound to the client's timer.
      const error = (await rejection(
        client({ timeoutMs: 1000 }).verifyToken({ token: OPAQUE_TOKEN }),
      )) as M2MConnectionError
      expect(error).toBeInstanceOf(M2MConnectionError)
      expect(error.code).toBe('timeout')
      expect(error.message).toBe(
        'verifyToken: no answer from the Clerk API within 1000 ms (1 attempt)',
      )
      expect(fake.requests).toHaveLength(1)
    })

    it('the per-call timeout wins over the client timeout', async () => {
      fake.enqueue({ hang: true })
      const error = (await rejection(
        client({ timeoutMs: 60_000 }).listTokens({ subject: SUBJECT }, { timeoutMs: 100 }),
      )) as M2MConnectionError
      expect(error.code).toBe('timeout')
      expect(error.message).toContain('100 ms')
    })

    it('the deadline covers retries; the timeout keeps the last failure as cause', async () => {
      fake.enqueue({ status: 503, json: clerkErrors('unavailable', 'busy') }, { hang: true })
      const error = (await rejection(
        client({ timeoutMs: 1000 }).verifyToken({ token: OPAQUE_TOKEN }),
      )) as M2MConnectionError
      expect(error.code).toBe('timeout')
      expect(error.message).toContain('(2 attempts)')
      expect(error.cause).toBeInstanceOf(M2MApiError)
      expect(fake.requests).toHaveLength(2)
    })

    it("the caller's abort rejects with the signal's reason and is not retried", async () => {
      fake.enqueue({ hang: true })
      const controller = new AbortController()
      const reason = new Error('caller gave up')
      const pending = client().verifyToken({ token: OPAQUE_TOKEN }, { signal: controller.signal })
      await expect.poll(() => fake.requests.length).toBe(1)
      controller.abort(reason)
      expect(await rejection(pending)).toBe(reason)
      expect(fake.requests).toHaveLength(1)
      expect(sleeps).toEqual([])
    })

    it('an already aborted signal makes no request', async () => {
      const reason = new Error('already aborted')
      const error = await rejection(client().createToken({}, { signal: AbortSignal.abort(reason) }))
      expect(error).toBe(reason)
      expect(fake.requests).toHaveLength(0)
    })

    it('aborting during the backoff stops at once', async () => {
      fake.enqueue({ status: 503, json: clerkErrors('unavailable', 'busy') })
      const controller = new AbortController()
      const pending = buildM2MClient(
        {
          secretKey: SECRET,
          apiUrl: fake.url,
          retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
          timeoutMs: 120_000,
          ...variant.options,
        },
        { random: () => 0.99, ...variant.internals },
      ).verifyToken({ token: OPAQUE_TOKEN }, { signal: controller.signal })
      await expect.poll(() => fake.requests.length).toBe(1)
      await new Promise((resolve) => setTimeout(resolve, 20))
      controller.abort('stop')
      expect(await rejection(pending)).toBe('stop')
      expect(fake.requests).toHaveLength(1)
    })
  })

  describe('secrets never leak', () => {
    it('not from an error body that echoes the key and the token', async () => {
      fake.handle((request) => ({
        status: 400,
        json: clerkErrors('echo', `you sent ${request.headers.authorization}`, {
          longMessage: `key ${SECRET} token ${OPAQUE_TOKEN}`,
          meta: { header: request.headers.authorization, body: request.rawBody },
          traceId: SECRET,
        }),
      }))
      const error = (await rejection(client().verifyToken({ token: OPAQUE_TOKEN }))) as M2MApiError
      expect(error.status).toBe(400)
      const said = everythingSaid(error)
      expect(said).not.toContain(SECRET)
      expect(said).not.toContain(OPAQUE_TOKEN)
      expect(said).toContain('[redacted]')
    })

    it('not from an HTML body that echoes the key', async () => {
      fake.handle((request) => ({
        status: 500,
        text: `<html><body>Request headers: ${request.headers.authorization}</body></html>`,
        headers: { 'content-type': 'text/html' },
      }))
      const error = await rejection(client().verifyToken({ token: OPAQUE_TOKEN }, { retry: false }))
      expect(everythingSaid(error)).not.toContain(SECRET)
    })

    it('not from connection errors, timeouts or invalid answers', async () => {
      const port = await closedPort()
      const refused = await rejection(
        client({ apiUrl: `http://127.0.0.1:${port}` }).verifyToken({ token: OPAQUE_TOKEN }),
      )
      fake.enqueue({ hang: true })
      const timedOut = await rejection(
        client({ timeoutMs: 100 }).verifyToken({ token: OPAQUE_TOKEN }),
      )
      fake.enqueue({ status: 200, text: `{"token":"${OPAQUE_TOKEN}", "key": "${SECRET}"` })
      const invalid = await rejection(client().verifyToken({ token: OPAQUE_TOKEN }))
      for (const error of [refused, timedOut, invalid]) {
        expect(error).toBeInstanceOf(M2MConnectionError)
        const said = everythingSaid(error)
        expect(said).not.toContain(SECRET)
        expect(said).not.toContain(OPAQUE_TOKEN)
      }
    })
  })

  describe('validation before any request', () => {
    const cases: [string, (c: ReturnType<typeof client>) => unknown, ErrorConstructor, RegExp][] = [
      [
        'limit 0',
        (c) => c.listTokens({ subject: SUBJECT, limit: 0 }),
        RangeError,
        /`limit` must be an integer from 1 to 100, got 0/,
      ],
      [
        'limit 101',
        (c) => c.listTokens({ subject: SUBJECT, limit: 101 }),
        RangeError,
        /`limit`.*got 101/,
      ],
      ['limit 2.5', (c) => c.listTokens({ subject: SUBJECT, limit: 2.5 }), RangeError, /`limit`/],
      [
        'limit as string',
        (c) => c.listTokens({ subject: SUBJECT, limit: '5' as never }),
        TypeError,
        /`limit` must be a number, got a string/,
      ],
      [
        'offset -1',
        (c) => c.listTokens({ subject: SUBJECT, offset: -1 }),
        RangeError,
        /`offset` must be an integer >= 0/,
      ],
      [
        'subject not mch_',
        (c) => c.listTokens({ subject: 'user_123' }),
        TypeError,
        /listTokens: `subject` must be a machine ID/,
      ],
      ['subject missing', (c) => c.listTokens({} as never), TypeError, /`subject`/],
      [
        'params missing',
        (c) => c.listTokens(undefined as never),
        TypeError,
        /listTokens: `params` must be an object/,
      ],
      [
        'revoked as string',
        (c) => c.listTokens({ subject: SUBJECT, revoked: 'yes' as never }),
        TypeError,
        /`revoked` must be a boolean/,
      ],
      [
        'snake_case parameter',
        (c) => c.createToken({ seconds_until_expiration: 5 } as never),
        TypeError,
        /unknown parameter `seconds_until_expiration` \(did you mean `secondsUntilExpiration`\?\)/,
      ],
      [
        'token id not mt_',
        (c) => c.revokeToken({ m2mTokenId: 'mt_nothex' }),
        TypeError,
        /revokeToken: `m2mTokenId` must be a token ID/,
      ],
      [
        'revocationReason number',
        (c) => c.revokeToken({ m2mTokenId: TOKEN_ID, revocationReason: 5 as never }),
        TypeError,
        /`revocationReason`/,
      ],
      [
        'empty token',
        (c) => c.verifyToken({ token: '' }),
        TypeError,
        /verifyToken: `token` must be a non-empty string, got an empty string/,
      ],
      [
        'token not a string',
        (c) => c.verifyToken({ token: 42 as never }),
        TypeError,
        /`token` must be a non-empty string/,
      ],
      [
        'negative seconds',
        (c) => c.createToken({ secondsUntilExpiration: -1 }),
        RangeError,
        /`secondsUntilExpiration` must be a finite number > 0, got -1/,
      ],
      [
        'zero seconds',
        (c) => c.createToken({ secondsUntilExpiration: 0 }),
        RangeError,
        /`secondsUntilExpiration`/,
      ],
      [
        'infinite seconds',
        (c) => c.createToken({ secondsUntilExpiration: Number.POSITIVE_INFINITY }),
        RangeError,
        /`secondsUntilExpiration`/,
      ],
      [
        'minRemainingTtlSeconds negative',
        (c) => c.createToken({ minRemainingTtlSeconds: -5 }),
        RangeError,
        /`minRemainingTtlSeconds` must be an integer >= 0/,
      ],
      [
        'minRemainingTtlSeconds fractional',
        (c) => c.createToken({ minRemainingTtlSeconds: 1.5 }),
        RangeError,
        /`minRemainingTtlSeconds`/,
      ],
      [
        'minRemainingTtlSeconds >= lifetime',
        (c) => c.createToken({ secondsUntilExpiration: 60, minRemainingTtlSeconds: 60 }),
        RangeError,
        /must be less than `secondsUntilExpiration`/,
      ],
      [
        'tokenFormat x',
        (c) => c.createToken({ tokenFormat: 'x' as never }),
        TypeError,
        /`tokenFormat` must be 'opaque' or 'jwt'/,
      ],
      [
        'claims array',
        (c) => c.createToken({ claims: [] as never }),
        TypeError,
        /`claims` must be a plain object or null, got an array/,
      ],
      ['claims Date', (c) => c.createToken({ claims: new Date() as never }), TypeError, /`claims`/],
      [
        'timeoutMs 0',
        (c) => c.verifyToken({ token: OPAQUE_TOKEN }, { timeoutMs: 0 }),
        RangeError,
        /verifyToken: `timeoutMs`/,
      ],
      [
        'retry.maxRetries -1',
        (c) => c.verifyToken({ token: OPAQUE_TOKEN }, { retry: { maxRetries: -1 } }),
        RangeError,
        /`retry.maxRetries`/,
      ],
      [
        'signal not a signal',
        (c) => c.verifyToken({ token: OPAQUE_TOKEN }, { signal: {} as never }),
        TypeError,
        /`signal` must be an AbortSignal/,
      ],
      [
        'pageSize 101',
        (c) => c.listAllTokens({ subject: SUBJECT, pageSize: 101 }),
        RangeError,
        /listAllTokens: `pageSize`/,
      ],
      [
        'listAllTokens limit',
        (c) => c.listAllTokens({ subject: SUBJECT, limit: 5 } as never),
        TypeError,
        /unknown parameter `limit`/,
      ],
    ]

    it.each(cases)('%s', async (_, act, ErrorClass, message) => {
      let error: unknown
      try {
        await act(client())
      } catch (caught) {
        error = caught
      }
      expect(error).toBeInstanceOf(ErrorClass)
      expect((error as Error).message).toMatch(message)
      expect(fake.requests).toHaveLength(0)
    })

    it('never echoes a token passed where an id belongs', async () => {
      const error = await rejection(client().revokeToken({ m2mTokenId: OPAQUE_TOKEN }))
      expect(error).toBeInstanceOf(TypeError)
      expect((error as Error).message).not.toContain(OPAQUE_TOKEN)
    })

    it('listAllTokens throws where it is called, not on iteration', () => {
      expect(() => client().listAllTokens({ subject: 'nope' })).toThrow(TypeError)
    })
  })
})

// A custom fetch is user code: the deadline must hold even when it ignores its AbortSignal.
describe('a custom fetch that ignores its signal', () => {
  const never = () => new Promise<never>(() => {})

  /** How long `promise` takes to reject, failing the test if it is still pending after `limitMs`. */
  async function timedRejection(promise: Promise<unknown>, limitMs: number) {
    const started = performance.now()
    let guard: ReturnType<typeof setTimeout> | undefined
    const stillPending = new Promise<never>((_, reject) => {
      guard = setTimeout(() => reject(new Error(`still pending after ${limitMs} ms`)), limitMs)
    })
    try {
      const error = await rejection(Promise.race([promise, stillPending]))
      return { error, elapsedMs: performance.now() - started }
    } finally {
      clearTimeout(guard)
    }
  }

  function clientWith(fetch: M2MClientOptions['fetch'], timeoutMs = 150) {
    return buildM2MClient({ secretKey: SECRET, apiUrl: 'http://127.0.0.1:9', fetch, timeoutMs })
  }

  it('rejects by the deadline with the timeout error when fetch never settles', async () => {
    const { error, elapsedMs } = await timedRejection(
      clientWith(never).verifyToken({ token: OPAQUE_TOKEN }),
      2000,
    )
    expect(error).toBeInstanceOf(M2MConnectionError)
    expect((error as M2MConnectionError).code).toBe('timeout')
    expect((error as Error).message).toBe(
      'verifyToken: no answer from the Clerk API within 150 ms (1 attempt)',
    )
    expect(elapsedMs).toBeGreaterThanOrEqual(140)
    expect(elapsedMs).toBeLessThan(1000)
    expect(everythingSaid(error)).not.toContain(SECRET)
    expect(everythingSaid(error)).not.toContain(OPAQUE_TOKEN)
  })

  it('rejects by the deadline when the body never ends', async () => {
    const endless = async () =>
      new Response(new ReadableStream({ pull: () => never() }), { status: 200 })
    const { error, elapsedMs } = await timedRejection(
      clientWith(endless).listTokens({ subject: SUBJECT }),
      2000,
    )
    expect((error as M2MConnectionError).code).toBe('timeout')
    expect(elapsedMs).toBeLessThan(1000)
  })

  it("rejects with the caller's reason when the caller aborts", async () => {
    const controller = new AbortController()
    const pending = clientWith(never, 60_000).verifyToken(
      { token: OPAQUE_TOKEN },
      { signal: controller.signal },
    )
    setTimeout(() => controller.abort('caller gave up'), 20)
    const { error } = await timedRejection(pending, 2000)
    expect(error).toBe('caller gave up')
  })

  it('a late failure of the abandoned fetch is not an unhandled rejection', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const late = () =>
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('late')), 120))
      const { error } = await timedRejection(
        clientWith(late, 30).verifyToken({ token: OPAQUE_TOKEN }),
        2000,
      )
      expect((error as M2MConnectionError).code).toBe('timeout')
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })
})
