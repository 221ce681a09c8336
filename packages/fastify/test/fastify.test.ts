import { createM2MVerifier, M2MAuthError, type M2MVerifier } from '@m2m-guard/core'
import type { FastifyInstance } from 'fastify'
import fastify4 from 'fastify4'
import fastify5 from 'fastify5'
import fastify40 from 'fastify40'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { type M2MFastifyOptions, m2mGuard } from '../src/index.js'
import { startWorld, type World } from './world.js'

type AppFactory = () => FastifyInstance
const versions: [string, AppFactory][] = [
  // The bottom of the declared peer range: request.routeOptions and routeConfig do not exist yet.
  ['Fastify 4.0.0', fastify40 as unknown as AppFactory],
  ['Fastify 4', fastify4 as unknown as AppFactory],
  ['Fastify 5', fastify5 as unknown as AppFactory],
]

type Injected = Awaited<ReturnType<FastifyInstance['inject']>>

/** Asserts one row of the behaviour table: exact status, challenge, Retry-After and body. */
function expectFailsWith(
  res: Injected,
  status: number,
  body: { error: string; error_description: string },
  extra: { challenge?: string; retryAfter?: string } = {},
) {
  expect({ status: res.statusCode, body: res.json() }).toEqual({ status, body })
  expect(res.headers['content-type']).toBe('application/json; charset=utf-8')
  expect(res.headers['cache-control']).toBe('no-store')
  expect(res.headers['www-authenticate']).toBe(extra.challenge)
  expect(res.headers['retry-after']).toBe(extra.retryAfter)
}

let world: World
beforeAll(async () => {
  world = await startWorld()
})
afterAll(async () => {
  await world.emulator.close()
})
afterEach(() => {
  world.emulator.clearFaults()
})

describe.each(versions)('%s', (_name, createApp) => {
  const apps: FastifyInstance[] = []
  const verifiers: M2MVerifier[] = []
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()))
    await Promise.all(verifiers.splice(0).map((v) => v.close()))
  })

  function sharedVerifier() {
    const verifier = createM2MVerifier(world.verifierOptions)
    verifiers.push(verifier)
    return verifier
  }

  /** `/whoami` (guarded by default), `/health` (open), plus routes added by `extend`. */
  async function app(options: M2MFastifyOptions, extend?: (app: FastifyInstance) => void) {
    const app = createApp()
    apps.push(app)
    await app.register(m2mGuard, options)
    app.get('/whoami', async (request) => ({ m2m: request.m2m }))
    app.get('/health', { config: { m2m: false } }, async (request) => ({ m2m: request.m2m }))
    extend?.(app)
    await app.ready()
    return app
  }

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

  it('200: the route runs with the verified identity on request.m2m', async () => {
    const server = await app({ verifier: sharedVerifier() })
    const minted = await world.mint(world.caller, { claims: { tenant: 'acme' } })
    const res = await server.inject({ url: '/whoami', headers: bearer(minted.token) })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({
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
  })

  it('401 missing_token: a challenge without an error attribute, no upstream call', async () => {
    const server = await app({ verifier: sharedVerifier() })
    const before = world.verifyCalls()
    expectFailsWith(
      await server.inject({ url: '/whoami' }),
      401,
      {
        error: 'missing_token',
        error_description: 'No Bearer token was sent; send Authorization: Bearer <M2M token>',
      },
      { challenge: 'Bearer realm="api"' },
    )
    expect(world.verifyCalls()).toBe(before)
  })

  it('400 invalid_request: malformed and repeated headers, no upstream call', async () => {
    const server = await app({ verifier: sharedVerifier(), realm: 'reports' })
    const minted = await world.mint(world.caller)
    const before = world.verifyCalls()
    expectFailsWith(
      await server.inject({ url: '/whoami', headers: { authorization: 'Bearer' } }),
      400,
      { error: 'invalid_request', error_description: 'The Bearer credentials are missing a token' },
      {
        challenge:
          'Bearer realm="reports", error="invalid_request", error_description="The Bearer credentials are missing a token"',
      },
    )
    const repeated = await server.inject({
      url: '/whoami',
      // light-my-request sends an array as a repeated header; its types only admit strings.
      headers: {
        authorization: [`Bearer ${minted.token}`, `Bearer ${minted.token}`],
      } as unknown as Record<string, string>,
    })
    expect(repeated.statusCode).toBe(400)
    expect(repeated.json()).toEqual({
      error: 'invalid_request',
      error_description: 'The Authorization header was sent more than once',
    })
    expect(repeated.body).not.toContain(minted.token)
    expect(world.verifyCalls()).toBe(before)
  })

  it('401 invalid_token: not an M2M token shape, no upstream call', async () => {
    const server = await app({ verifier: sharedVerifier() })
    const before = world.verifyCalls()
    expectFailsWith(
      await server.inject({ url: '/whoami', headers: bearer('not-a-token') }),
      401,
      { error: 'invalid_token', error_description: 'The token is not an M2M token' },
      {
        challenge:
          'Bearer realm="api", error="invalid_token", error_description="The token is not an M2M token"',
      },
    )
    expect(world.verifyCalls()).toBe(before)
  })

  it('401: unknown and revoked tokens', async () => {
    const server = await app({ verifier: sharedVerifier() })
    expectFailsWith(
      await server.inject({ url: '/whoami', headers: bearer(`mt_${'u'.repeat(48)}`) }),
      401,
      { error: 'invalid_token', error_description: 'The token is unknown' },
      {
        challenge:
          'Bearer realm="api", error="invalid_token", error_description="The token is unknown"',
      },
    )
    const minted = await world.mint(world.caller)
    await world.revoke(world.caller, minted.id)
    expectFailsWith(
      await server.inject({ url: '/whoami', headers: bearer(minted.token) }),
      401,
      { error: 'token_revoked', error_description: 'The token has been revoked' },
      {
        challenge:
          'Bearer realm="api", error="invalid_token", error_description="The token has been revoked"',
      },
    )
  })

  it('403 insufficient_scope: not scoped to this machine (machineId)', async () => {
    const server = await app({ verifier: sharedVerifier() })
    const minted = await world.mint(world.outsider)
    expectFailsWith(
      await server.inject({ url: '/whoami', headers: bearer(minted.token) }),
      403,
      { error: 'insufficient_scope', error_description: 'The token is not scoped to this machine' },
      {
        challenge:
          'Bearer realm="api", error="insufficient_scope", error_description="The token is not scoped to this machine"',
      },
    )
  })

  it('per-route config: false opens, an object sets allowedSubjects / requireClaims', async () => {
    const server = await app({ verifier: sharedVerifier() }, (app) => {
      app.get(
        '/others-only',
        { config: { m2m: { allowedSubjects: [world.outsider.id] } } },
        async () => 'no',
      )
      app.get(
        '/acme-only',
        { config: { m2m: { requireClaims: { tenant: 'acme' } } } },
        async (request) => ({ subject: request.m2m?.subject }),
      )
    })
    const open = await server.inject({ url: '/health' })
    expect({ status: open.statusCode, body: open.json() }).toEqual({
      status: 200,
      body: { m2m: null },
    })
    const acme = await world.mint(world.caller, { claims: { tenant: 'acme' } })
    const other = await world.mint(world.caller, { claims: { tenant: 'other' } })
    const ok = await server.inject({ url: '/acme-only', headers: bearer(acme.token) })
    expect({ status: ok.statusCode, body: ok.json() }).toEqual({
      status: 200,
      body: { subject: world.caller.id },
    })
    const description = `Machine ${world.caller.id} is not allowed to call this resource`
    expectFailsWith(
      await server.inject({ url: '/others-only', headers: bearer(acme.token) }),
      403,
      { error: 'insufficient_scope', error_description: description },
      {
        challenge: `Bearer realm="api", error="insufficient_scope", error_description="${description}"`,
      },
    )
    expectFailsWith(
      await server.inject({ url: '/acme-only', headers: bearer(other.token) }),
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
  })

  it('global: false guards only routes that ask: config.m2m or fastify.requireM2M()', async () => {
    const server = await app({ verifier: sharedVerifier(), global: false }, (app) => {
      app.get('/flagged', { config: { m2m: true } }, async (request) => request.m2m?.subject)
      app.get(
        '/hooked',
        { onRequest: app.requireM2M({ allowedSubjects: [world.caller.id] }) },
        async (request) => request.m2m?.subject,
      )
      app.get(
        '/hooked-other',
        { onRequest: app.requireM2M({ allowedSubjects: [world.outsider.id] }) },
        async () => 'no',
      )
    })
    expect((await server.inject({ url: '/whoami' })).json()).toEqual({ m2m: null })
    expect((await server.inject({ url: '/flagged' })).statusCode).toBe(401)
    expect((await server.inject({ url: '/hooked' })).statusCode).toBe(401)
    const minted = await world.mint(world.caller)
    const flagged = await server.inject({ url: '/flagged', headers: bearer(minted.token) })
    expect({ status: flagged.statusCode, body: flagged.body }).toEqual({
      status: 200,
      body: world.caller.id,
    })
    const hooked = await server.inject({ url: '/hooked', headers: bearer(minted.token) })
    expect({ status: hooked.statusCode, body: hooked.body }).toEqual({
      status: 200,
      body: world.caller.id,
    })
    const denied = await server.inject({ url: '/hooked-other', headers: bearer(minted.token) })
    expect(denied.statusCode).toBe(403)
  })

  // The status alone cannot show that a rejected request stayed out of the route: a route that
  // ran after the hook answered would have its side effect behind a correct-looking 401.
  it('a rejected request never runs the route: 400, 401, 403, 500 and 503', async () => {
    let runs = 0
    const routes = (app: FastifyInstance) => {
      app.post('/act', async () => {
        runs++
        return { done: true }
      })
    }
    const server = await app({ verifier: sharedVerifier() }, routes)
    const outsider = await world.mint(world.outsider)
    const caller = await world.mint(world.caller)
    const statuses = []
    for (const headers of [
      {},
      { authorization: 'Bearer a b' },
      bearer('not-m2m'),
      bearer(outsider.token),
    ]) {
      statuses.push((await server.inject({ method: 'POST', url: '/act', headers })).statusCode)
    }
    const misconfigured = await app(
      { ...world.verifierOptions, secretKey: 'sk_test_unknown' },
      routes,
    )
    statuses.push(
      (await misconfigured.inject({ method: 'POST', url: '/act', headers: bearer(caller.token) }))
        .statusCode,
    )
    const down = await app({ ...world.verifierOptions, retry: false, timeoutMs: 1000 }, routes)
    world.emulator.setFaults({ down: true })
    statuses.push(
      (await down.inject({ method: 'POST', url: '/act', headers: bearer(caller.token) }))
        .statusCode,
    )
    expect(statuses).toEqual([401, 400, 401, 403, 500, 503])
    expect(runs).toBe(0)
  })

  it('503 verification_unavailable + Retry-After when the emulator is down', async () => {
    const server = await app({ ...world.verifierOptions, retry: false, timeoutMs: 1000 })
    const minted = await world.mint(world.caller)
    world.emulator.setFaults({ down: true })
    expectFailsWith(
      await server.inject({ url: '/whoami', headers: bearer(minted.token) }),
      503,
      {
        error: 'verification_unavailable',
        error_description: 'Token verification is temporarily unavailable',
      },
      { retryAfter: '1' },
    )
  })

  it('500 verifier_misconfigured when the API refuses our secret key', async () => {
    const server = await app({ ...world.verifierOptions, secretKey: 'sk_test_wrong' })
    const minted = await world.mint(world.caller)
    const res = await server.inject({ url: '/whoami', headers: bearer(minted.token) })
    expectFailsWith(res, 500, {
      error: 'verifier_misconfigured',
      error_description:
        'The Clerk API refused the verifier secret key; check the secretKey option, CLERK_MACHINE_SECRET_KEY or CLERK_SECRET_KEY',
    })
    expect(res.body).not.toContain('sk_test_wrong')
  })

  it('optional: no credentials → request.m2m is null; bad credentials → 401', async () => {
    const server = await app({ verifier: sharedVerifier(), optional: true }, (app) => {
      app.get('/strict', { config: { m2m: { optional: false } } }, async () => 'no')
    })
    const anonymous = await server.inject({ url: '/whoami' })
    expect({ status: anonymous.statusCode, body: anonymous.json() }).toEqual({
      status: 200,
      body: { m2m: null },
    })
    const bad = await server.inject({ url: '/whoami', headers: bearer(`mt_${'b'.repeat(48)}`) })
    expect(bad.statusCode).toBe(401)
    expect((await server.inject({ url: '/strict' })).statusCode).toBe(401)
  })

  it('gives a CORS preflight no exception: 401 missing_token, and app.all never runs', async () => {
    const ran: Array<string | null> = []
    const server = await app({ verifier: sharedVerifier() }, (app) => {
      app.all('/any', async (request, reply) => {
        ran.push(request.m2m?.subject ?? null)
        return reply.header('access-control-allow-methods', 'GET').send({ m2m: request.m2m })
      })
    })
    const minted = await world.mint(world.caller)
    const before = world.verifyCalls()
    const preflight = { origin: 'https://example.test', 'access-control-request-method': 'GET' }
    const res = await server.inject({ method: 'OPTIONS', url: '/any', headers: preflight })
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
    const verified = await server.inject({
      method: 'OPTIONS',
      url: '/any',
      headers: { ...preflight, ...bearer(minted.token) },
    })
    expect(verified.statusCode).toBe(200)
    expect(verified.json().m2m.subject).toBe(world.caller.id)
    expect(ran).toEqual([world.caller.id])
    expect(world.verifyCalls()).toBe(before + 1)
  })

  it('onError and getToken receive the Fastify request', async () => {
    const onError = vi.fn()
    const server = await app({
      verifier: sharedVerifier(),
      onError,
      getToken: (request) => {
        const value = request.headers['x-m2m-token']
        return typeof value === 'string' ? value : undefined
      },
    })
    const minted = await world.mint(world.caller)
    const ok = await server.inject({ url: '/whoami', headers: { 'x-m2m-token': minted.token } })
    expect(ok.json().m2m.subject).toBe(world.caller.id)
    await server.inject({ url: '/whoami?from=test' })
    expect(onError).toHaveBeenCalledTimes(1)
    expect(onError.mock.calls[0]?.[0]).toBeInstanceOf(M2MAuthError)
    expect(onError.mock.calls[0]?.[1]?.url).toBe('/whoami?from=test')
  })

  it('fails at startup on a wrong option or a wrong route config.m2m', async () => {
    const bad = createApp()
    apps.push(bad)
    await expect(
      bad.register(m2mGuard, { allowedSubjects: 'mch_a' } as never).ready(),
    ).rejects.toThrow('@m2m-guard/fastify: allowedSubjects must be an array of machine ids (mch_…)')
    const badRoute = createApp()
    apps.push(badRoute)
    await badRoute.register(m2mGuard, { verifier: sharedVerifier() })
    expect(() =>
      badRoute.get('/x', { config: { m2m: { requireClaims: 5 } as never } }, async () => 'x'),
    ).toThrow(
      '@m2m-guard/fastify: config.m2m of GET /x: requireClaims must be an object of expected claim values or a predicate function',
    )
  })

  it('leaves a shared verifier open when the app closes', async () => {
    const shared = sharedVerifier()
    const close = vi.spyOn(shared, 'close')
    const server = await app({ verifier: shared })
    await server.close()
    expect(close).not.toHaveBeenCalled()
  })
})
