import type { Server } from 'node:http'
import { createM2MVerifier, M2MAuthError, type M2MVerifier } from '@m2m-guard/core'
import type { ErrorRequestHandler, Express } from 'express'
import express4 from 'express4'
import express5 from 'express5'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { getM2M, type M2MMiddleware, type RequireM2MOptions, requireM2M } from '../src/index.js'
import { closeServer, listen, rawRequest, startWorld, type World } from './world.js'

type AppFactory = () => Express
const versions: [string, AppFactory][] = [
  ['Express 4', express4 as unknown as AppFactory],
  ['Express 5', express5 as unknown as AppFactory],
]

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
}

/** Asserts one row of the behaviour table: exact status, challenge, Retry-After and body. */
function expectFailsWith(
  res: request.Response,
  status: number,
  body: { error: string; error_description: string },
  extra: { challenge?: string; retryAfter?: string } = {},
) {
  expect({ status: res.status, body: res.body }).toEqual({ status, body })
  expect(res.headers['content-type']).toBe(JSON_HEADERS['content-type'])
  expect(res.headers['cache-control']).toBe(JSON_HEADERS['cache-control'])
  expect(res.headers['www-authenticate']).toBe(extra.challenge)
  expect(res.headers['retry-after']).toBe(extra.retryAfter)
}

let world: World
const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)

beforeAll(async () => {
  world = await startWorld()
  process.on('unhandledRejection', onUnhandled)
})
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled)
  await world.emulator.close()
})
afterEach(() => {
  world.emulator.clearFaults()
  expect(unhandled).toEqual([])
})

describe.each(versions)('%s', (_name, createApp) => {
  const servers: Server[] = []
  const middlewares: M2MMiddleware[] = []
  let shared: M2MVerifier

  beforeEach(() => {
    shared = createM2MVerifier(world.verifierOptions)
  })
  afterEach(async () => {
    await Promise.all(servers.splice(0).map(closeServer))
    await Promise.all(middlewares.splice(0).map((m) => m.close()))
    await shared.close()
  })

  /** `/internal/*` behind requireM2M; the handlers echo what they see. */
  async function app(options: RequireM2MOptions, extend?: (app: Express) => void) {
    const app = createApp()
    const guard = requireM2M(options)
    middlewares.push(guard)
    app.use('/internal', guard)
    app.get('/internal/whoami', (req, res) => {
      res.json({ m2m: req.m2m ?? null })
    })
    app.get('/internal/strict', (req, res) => {
      res.json({ subject: getM2M(req).subject })
    })
    extend?.(app)
    const server = await listen(app)
    servers.push(server)
    return server
  }

  it('200: the handler runs with the verified identity on req.m2m', async () => {
    const server = await app({ verifier: shared })
    const minted = await world.mint(world.caller, { claims: { tenant: 'acme' } })
    const res = await request(server)
      .get('/internal/whoami')
      .set('Authorization', `Bearer ${minted.token}`)
    expect(res.status).toBe(200)
    expect(res.body).toEqual({
      m2m: {
        tokenType: 'm2m_token',
        format: 'opaque',
        id: minted.id,
        subject: world.caller.id,
        scopes: [world.receiver.id],
        claims: { tenant: 'acme' },
        expiration: minted.expiration,
      },
    })
    const strict = await request(server)
      .get('/internal/strict')
      .set('Authorization', `bearer ${minted.token}`)
    expect(strict.body).toEqual({ subject: world.caller.id })
  })

  it('401 missing_token: a challenge without an error attribute, no upstream call', async () => {
    const server = await app({ verifier: shared })
    const before = world.verifyCalls()
    const res = await request(server).get('/internal/whoami')
    expectFailsWith(
      res,
      401,
      {
        error: 'missing_token',
        error_description: 'No Bearer token was sent; send Authorization: Bearer <M2M token>',
      },
      { challenge: 'Bearer realm="api"' },
    )
    const basic = await request(server)
      .get('/internal/whoami')
      .set('Authorization', 'Basic dXNlcg==')
    expect(basic.status).toBe(401)
    expect(basic.headers['www-authenticate']).toBe('Bearer realm="api"')
    expect(world.verifyCalls()).toBe(before)
  })

  it('400 invalid_request: malformed header, no upstream call', async () => {
    const server = await app({ verifier: shared, realm: 'reports' })
    const before = world.verifyCalls()
    const res = await request(server).get('/internal/whoami').set('Authorization', 'Bearer a b')
    expectFailsWith(
      res,
      400,
      {
        error: 'invalid_request',
        error_description: 'Expected exactly one space after "Bearer" and a single token',
      },
      {
        challenge:
          'Bearer realm="reports", error="invalid_request", error_description="Expected exactly one space after \\"Bearer\\" and a single token"',
      },
    )
    expect(world.verifyCalls()).toBe(before)
  })

  it('400 invalid_request: a repeated Authorization header (Node keeps only the first)', async () => {
    const server = await app({ verifier: shared })
    const minted = await world.mint(world.caller)
    const before = world.verifyCalls()
    const res = await rawRequest(server, '/internal/whoami', [
      'Authorization',
      `Bearer ${minted.token}`,
      'Authorization',
      `Bearer ${minted.token}`,
    ])
    expect(res.status).toBe(400)
    expect(JSON.parse(res.body)).toEqual({
      error: 'invalid_request',
      error_description: 'The Authorization header was sent more than once',
    })
    expect(res.body).not.toContain(minted.token)
    expect(world.verifyCalls()).toBe(before)
  })

  it('401 invalid_token: not an M2M token shape, no upstream call', async () => {
    const server = await app({ verifier: shared })
    const before = world.verifyCalls()
    const res = await request(server)
      .get('/internal/whoami')
      .set('Authorization', 'Bearer not-a-token')
    expectFailsWith(
      res,
      401,
      { error: 'invalid_token', error_description: 'The token is not an M2M token' },
      {
        challenge:
          'Bearer realm="api", error="invalid_token", error_description="The token is not an M2M token"',
      },
    )
    expect(world.verifyCalls()).toBe(before)
  })

  it('401 invalid_token: unknown token', async () => {
    const server = await app({ verifier: shared })
    const res = await request(server)
      .get('/internal/whoami')
      .set('Authorization', `Bearer mt_${'x'.repeat(48)}`)
    expectFailsWith(
      res,
      401,
      { error: 'invalid_token', error_description: 'The token is unknown' },
      {
        challenge:
          'Bearer realm="api", error="invalid_token", error_description="The token is unknown"',
      },
    )
  })

  it('401 token_revoked: a revoked token', async () => {
    const server = await app({ verifier: shared })
    const minted = await world.mint(world.caller)
    await world.revoke(world.caller, minted.id)
    const res = await request(server)
      .get('/internal/whoami')
      .set('Authorization', `Bearer ${minted.token}`)
    expectFailsWith(
      res,
      401,
      { error: 'token_revoked', error_description: 'The token has been revoked' },
      {
        challenge:
          'Bearer realm="api", error="invalid_token", error_description="The token has been revoked"',
      },
    )
    expect(JSON.stringify(res.headers) + res.text).not.toContain(minted.token)
  })

  describe('403 insufficient_scope', () => {
    it('the token is not scoped to this machine (machineId)', async () => {
      const server = await app({ verifier: shared })
      const minted = await world.mint(world.outsider)
      const res = await request(server)
        .get('/internal/whoami')
        .set('Authorization', `Bearer ${minted.token}`)
      expectFailsWith(
        res,
        403,
        {
          error: 'insufficient_scope',
          error_description: 'The token is not scoped to this machine',
        },
        {
          challenge:
            'Bearer realm="api", error="insufficient_scope", error_description="The token is not scoped to this machine"',
        },
      )
    })

    it('allowedSubjects', async () => {
      const server = await app({ verifier: shared, allowedSubjects: [world.outsider.id] })
      const minted = await world.mint(world.caller)
      const res = await request(server)
        .get('/internal/whoami')
        .set('Authorization', `Bearer ${minted.token}`)
      const description = `Machine ${world.caller.id} is not allowed to call this resource`
      expectFailsWith(
        res,
        403,
        { error: 'insufficient_scope', error_description: description },
        {
          challenge: `Bearer realm="api", error="insufficient_scope", error_description="${description}"`,
        },
      )
    })

    it('requireClaims (object and predicate)', async () => {
      const byValue = await app({ verifier: shared, requireClaims: { tenant: 'acme' } })
      const byPredicate = await app({
        verifier: shared,
        requireClaims: (claims) => claims?.tier === 'gold',
      })
      const acme = await world.mint(world.caller, { claims: { tenant: 'acme', tier: 'silver' } })
      const other = await world.mint(world.caller, { claims: { tenant: 'other', tier: 'gold' } })
      const call = (server: Server, token: string) =>
        request(server).get('/internal/whoami').set('Authorization', `Bearer ${token}`)
      expect((await call(byValue, acme.token)).status).toBe(200)
      expect((await call(byPredicate, other.token)).status).toBe(200)
      for (const res of [await call(byValue, other.token), await call(byPredicate, acme.token)]) {
        expectFailsWith(
          res,
          403,
          {
            error: 'insufficient_scope',
            error_description: "The token's claims do not meet the requirements of this resource",
          },
          {
            challenge:
              'Bearer realm="api", error="insufficient_scope", error_description="The token\'s claims do not meet the requirements of this resource"',
          },
        )
      }
    })
  })

  // The status alone cannot show that a rejected request stayed out of the route: a handler that
  // ran after the middleware answered would have its side effect behind a correct-looking 401.
  it('a rejected request never runs the route: 400, 401, 403, 500 and 503', async () => {
    let runs = 0
    const routes = (app: Express) => {
      app.post('/internal/act', (_req, res) => {
        runs++
        res.json({ done: true })
      })
    }
    const server = await app({ verifier: shared }, routes)
    const outsider = await world.mint(world.outsider)
    const caller = await world.mint(world.caller)
    const statuses = []
    for (const auth of [undefined, 'Bearer a b', 'Bearer not-m2m', `Bearer ${outsider.token}`]) {
      const req = request(server).post('/internal/act')
      statuses.push((await (auth === undefined ? req : req.set('Authorization', auth))).status)
    }
    const misconfigured = await app(
      { ...world.verifierOptions, secretKey: 'sk_test_unknown' },
      routes,
    )
    const down = await app({ ...world.verifierOptions, retry: false, timeoutMs: 1000 }, routes)
    for (const target of [misconfigured, down]) {
      if (target === down) world.emulator.setFaults({ down: true })
      const res = await request(target)
        .post('/internal/act')
        .set('Authorization', `Bearer ${caller.token}`)
      statuses.push(res.status)
    }
    expect(statuses).toEqual([401, 400, 401, 403, 500, 503])
    expect(runs).toBe(0)
  })

  it('503 verification_unavailable + Retry-After when the emulator is down', async () => {
    const server = await app({ ...world.verifierOptions, retry: false, timeoutMs: 1000 })
    const minted = await world.mint(world.caller)
    world.emulator.setFaults({ down: true })
    const res = await request(server)
      .get('/internal/whoami')
      .set('Authorization', `Bearer ${minted.token}`)
    expectFailsWith(
      res,
      503,
      {
        error: 'verification_unavailable',
        error_description: 'Token verification is temporarily unavailable',
      },
      { retryAfter: '1' },
    )
  })

  it('503 with the upstream Retry-After when the emulator rate-limits', async () => {
    const server = await app({ ...world.verifierOptions, retry: false })
    const minted = await world.mint(world.caller)
    world.emulator.setFaults({ rateLimit: { rate: 1, retryAfterSeconds: 7 } })
    const res = await request(server)
      .get('/internal/whoami')
      .set('Authorization', `Bearer ${minted.token}`)
    expect(res.status).toBe(503)
    expect(res.headers['retry-after']).toBe('7')
    expect(res.body.error).toBe('verification_unavailable')
  })

  it('500 verifier_misconfigured when the API refuses our secret key', async () => {
    const server = await app({ ...world.verifierOptions, secretKey: 'sk_test_wrong' })
    const minted = await world.mint(world.caller)
    const res = await request(server)
      .get('/internal/whoami')
      .set('Authorization', `Bearer ${minted.token}`)
    expectFailsWith(res, 500, {
      error: 'verifier_misconfigured',
      error_description:
        'The Clerk API refused the verifier secret key; check the secretKey option, CLERK_MACHINE_SECRET_KEY or CLERK_SECRET_KEY',
    })
    expect(res.text).not.toContain('sk_test_wrong')
  })

  describe('optional', () => {
    it('no credentials: the handler runs without req.m2m', async () => {
      const server = await app({ verifier: shared, optional: true })
      const res = await request(server).get('/internal/whoami')
      expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { m2m: null } })
    })

    it('bad credentials are still rejected', async () => {
      const server = await app({ verifier: shared, optional: true })
      const res = await request(server)
        .get('/internal/whoami')
        .set('Authorization', `Bearer mt_${'y'.repeat(48)}`)
      expect(res.status).toBe(401)
      expect(res.body.error).toBe('invalid_token')
    })

    it('getM2M(req) fails closed (500) on an optional route without credentials', async () => {
      const server = await app({ verifier: shared, optional: true })
      const res = await request(server).get('/internal/strict')
      expect(res.status).toBe(500)
    })
  })

  it('gives a CORS preflight no exception: 401 missing_token, and app.all never runs', async () => {
    const ran: Array<string | null> = []
    const server = await app({ verifier: shared }, (app) => {
      app.all('/internal/any', (req, res) => {
        ran.push(req.m2m?.subject ?? null)
        res.set('access-control-allow-methods', 'GET').json({ m2m: req.m2m ?? null })
      })
    })
    const minted = await world.mint(world.caller)
    const before = world.verifyCalls()
    const preflight = () =>
      request(server)
        .options('/internal/any')
        .set('Origin', 'https://example.test')
        .set('Access-Control-Request-Method', 'GET')
    const res = await preflight()
    expectFailsWith(
      res,
      401,
      {
        error: 'missing_token',
        error_description: 'No Bearer token was sent; send Authorization: Bearer <M2M token>',
      },
      { challenge: 'Bearer realm="api"' },
    )
    expect(res.headers['access-control-allow-methods']).toBeUndefined()
    expect(ran).toEqual([])
    expect(world.verifyCalls()).toBe(before)
    // With a token it is verified and let through like any request.
    const verified = await preflight().set('Authorization', `Bearer ${minted.token}`)
    expect(verified.status).toBe(200)
    expect(verified.body.m2m.subject).toBe(world.caller.id)
    expect(ran).toEqual([world.caller.id])
    expect(world.verifyCalls()).toBe(before + 1)
  })

  it('passErrors: hands the M2MAuthError to the error handler', async () => {
    const seen: unknown[] = []
    const handler: ErrorRequestHandler = (err, _req, res, _next) => {
      seen.push(err)
      res.status(err instanceof M2MAuthError ? err.status : 500).json({ mine: err.code })
    }
    const server = await app({ verifier: shared, passErrors: true }, (app) => app.use(handler))
    const res = await request(server).get('/internal/whoami')
    expect({ status: res.status, body: res.body }).toEqual({
      status: 401,
      body: { mine: 'missing_token' },
    })
    expect(seen).toHaveLength(1)
    expect(seen[0]).toBeInstanceOf(M2MAuthError)
    expect(seen[0]).toMatchObject({ code: 'missing_token', status: 401 })
  })

  it('onError observes every rejection with the Express request', async () => {
    const onError = vi.fn()
    const server = await app({ verifier: shared, onError })
    await request(server).get('/internal/whoami?x=1')
    expect(onError).toHaveBeenCalledTimes(1)
    expect(onError.mock.calls[0]?.[0]).toMatchObject({ code: 'missing_token' })
    expect(onError.mock.calls[0]?.[1]?.originalUrl).toBe('/internal/whoami?x=1')
  })

  it('getToken: custom extraction from the Express request', async () => {
    const server = await app({
      verifier: shared,
      getToken: (req) => req.get('x-m2m-token'),
    })
    const minted = await world.mint(world.caller)
    const res = await request(server).get('/internal/whoami').set('X-M2M-Token', minted.token)
    expect(res.status).toBe(200)
    expect(res.body.m2m.subject).toBe(world.caller.id)
  })
})

describe('requireM2M options', () => {
  const verifier = {} as M2MVerifier
  it.each([
    [
      { allowedSubjects: 'mch_a' },
      'requireM2M: allowedSubjects must be an array of machine ids (mch_…)',
    ],
    [
      { requireClaims: 5 },
      'requireM2M: requireClaims must be an object of expected claim values or a predicate function',
    ],
    [{ passErrors: 'yes' }, 'requireM2M: passErrors must be a boolean'],
    [
      { allowedSubject: ['mch_a'] },
      'requireM2M: unknown option `allowedSubject` (did you mean `allowedSubjects`?)',
    ],
    [
      { cache: { ttlMS: 0 } },
      'requireM2M: unknown option `cache.ttlMS` (did you mean `cache.ttlMs`?)',
    ],
    [{ verifier }, 'requireM2M: verifier must be an M2MVerifier (from createM2MVerifier())'],
  ])('rejects %j at construction', (options, message) => {
    expect(() => requireM2M(options as never)).toThrow(new TypeError(message))
  })
})

describe('getM2M', () => {
  it('throws an M2MAuthError (500) when no identity was attached', () => {
    const req = {} as Parameters<typeof getM2M>[0]
    expect(() => getM2M(req)).toThrow(M2MAuthError)
    expect(() => getM2M(req)).toThrow(/mount requireM2M\(\) before this route/)
  })
})
