import { createM2MVerifier, M2MAuthError, type M2MVerifier } from '@m2m-guard/core'
import { type Context, Hono } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { type M2MMiddleware, type RequireM2MOptions, requireM2M } from '../src/index.js'
import { startWorld, type World } from './world.js'

/** Asserts one row of the behaviour table: exact status, challenge, Retry-After and body. */
async function expectFailsWith(
  res: Response,
  status: number,
  body: { error: string; error_description: string },
  extra: { challenge?: string; retryAfter?: string } = {},
) {
  expect({ status: res.status, body: await res.json() }).toEqual({ status, body })
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(res.headers.get('www-authenticate')).toBe(extra.challenge ?? null)
  expect(res.headers.get('retry-after')).toBe(extra.retryAfter ?? null)
}

let world: World
let shared: M2MVerifier
const middlewares: M2MMiddleware[] = []

beforeAll(async () => {
  world = await startWorld()
  shared = createM2MVerifier(world.verifierOptions)
})
afterAll(async () => {
  await shared.close()
  await world.emulator.close()
})
afterEach(async () => {
  world.emulator.clearFaults()
  vi.unstubAllEnvs()
  await Promise.all(middlewares.splice(0).map((m) => m.close()))
})

function guarded(options: Parameters<typeof requireM2M>[0], extend?: (app: Hono) => void) {
  const app = new Hono()
  const guard = requireM2M(options)
  middlewares.push(guard)
  app.use('/internal/*', guard)
  app.get('/internal/whoami', (c) => c.json({ m2m: c.var.m2m ?? null }))
  extend?.(app)
  return app
}

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })

describe('@m2m-guard/hono on Node', () => {
  it('200: the handler runs with the identity in c.get("m2m")', async () => {
    const app = guarded({ verifier: shared })
    const minted = await world.mint(world.caller, { claims: { tenant: 'acme' } })
    const res = await app.request('/internal/whoami', bearer(minted.token))
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({
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

  it('401 missing_token, no upstream call', async () => {
    const app = guarded({ verifier: shared, realm: 'reports' })
    const before = world.verifyCalls()
    await expectFailsWith(
      await app.request('/internal/whoami'),
      401,
      {
        error: 'missing_token',
        error_description: 'No Bearer token was sent; send Authorization: Bearer <M2M token>',
      },
      { challenge: 'Bearer realm="reports"' },
    )
    expect(world.verifyCalls()).toBe(before)
  })

  it('400 invalid_request: malformed, and repeated (fetch joins them with a comma)', async () => {
    const app = guarded({ verifier: shared })
    const minted = await world.mint(world.caller)
    const before = world.verifyCalls()
    await expectFailsWith(
      await app.request('/internal/whoami', { headers: { authorization: `Bearer ${'é'}` } }),
      400,
      {
        error: 'invalid_request',
        error_description: 'The Bearer token contains characters not allowed by RFC 6750',
      },
      {
        challenge:
          'Bearer realm="api", error="invalid_request", error_description="The Bearer token contains characters not allowed by RFC 6750"',
      },
    )
    const headers = new Headers()
    headers.append('authorization', `Bearer ${minted.token}`)
    headers.append('authorization', `Bearer ${minted.token}`)
    const repeated = await app.request('/internal/whoami', { headers })
    expect(repeated.status).toBe(400)
    const text = await repeated.text()
    expect(JSON.parse(text)).toEqual({
      error: 'invalid_request',
      error_description: 'The Authorization header was sent more than once',
    })
    expect(text).not.toContain(minted.token)
    expect(world.verifyCalls()).toBe(before)
  })

  it('401 invalid_token: bad shape (no upstream call), unknown, revoked', async () => {
    const app = guarded({ verifier: shared })
    const before = world.verifyCalls()
    await expectFailsWith(
      await app.request('/internal/whoami', bearer('not-a-token')),
      401,
      { error: 'invalid_token', error_description: 'The token is not an M2M token' },
      {
        challenge:
          'Bearer realm="api", error="invalid_token", error_description="The token is not an M2M token"',
      },
    )
    expect(world.verifyCalls()).toBe(before)
    await expectFailsWith(
      await app.request('/internal/whoami', bearer(`mt_${'h'.repeat(48)}`)),
      401,
      { error: 'invalid_token', error_description: 'The token is unknown' },
      {
        challenge:
          'Bearer realm="api", error="invalid_token", error_description="The token is unknown"',
      },
    )
    const minted = await world.mint(world.caller)
    await world.revoke(world.caller, minted.id)
    await expectFailsWith(
      await app.request('/internal/whoami', bearer(minted.token)),
      401,
      { error: 'token_revoked', error_description: 'The token has been revoked' },
      {
        challenge:
          'Bearer realm="api", error="invalid_token", error_description="The token has been revoked"',
      },
    )
  })

  it('403 insufficient_scope: machineId, allowedSubjects, requireClaims', async () => {
    const byMachine = guarded({ verifier: shared })
    const bySubject = guarded({ verifier: shared, allowedSubjects: [world.outsider.id] })
    const byClaims = guarded({ verifier: shared, requireClaims: (claims) => claims?.ok === true })
    const outsider = await world.mint(world.outsider)
    const caller = await world.mint(world.caller, { claims: { ok: false } })
    await expectFailsWith(
      await byMachine.request('/internal/whoami', bearer(outsider.token)),
      403,
      { error: 'insufficient_scope', error_description: 'The token is not scoped to this machine' },
      {
        challenge:
          'Bearer realm="api", error="insufficient_scope", error_description="The token is not scoped to this machine"',
      },
    )
    const description = `Machine ${world.caller.id} is not allowed to call this resource`
    await expectFailsWith(
      await bySubject.request('/internal/whoami', bearer(caller.token)),
      403,
      { error: 'insufficient_scope', error_description: description },
      {
        challenge: `Bearer realm="api", error="insufficient_scope", error_description="${description}"`,
      },
    )
    const claims = await byClaims.request('/internal/whoami', bearer(caller.token))
    expect(claims.status).toBe(403)
    expect((await claims.json()).error_description).toBe(
      "The token's claims do not meet the requirements of this resource",
    )
  })

  it('503 + Retry-After when the emulator is down; 500 when it refuses our key', async () => {
    const down = guarded({ ...world.verifierOptions, retry: false, timeoutMs: 1000 })
    const wrongKey = guarded({ ...world.verifierOptions, secretKey: 'sk_test_wrong' })
    const minted = await world.mint(world.caller)
    const misconfigured = await wrongKey.request('/internal/whoami', bearer(minted.token))
    await expectFailsWith(misconfigured, 500, {
      error: 'verifier_misconfigured',
      error_description:
        'The Clerk API refused the verifier secret key; check the secretKey option, CLERK_MACHINE_SECRET_KEY or CLERK_SECRET_KEY',
    })
    world.emulator.setFaults({ down: true })
    await expectFailsWith(
      await down.request('/internal/whoami', bearer(minted.token)),
      503,
      {
        error: 'verification_unavailable',
        error_description: 'Token verification is temporarily unavailable',
      },
      { retryAfter: '1' },
    )
  })

  it('optional: no credentials → no identity; bad credentials → 401', async () => {
    const app = guarded({ verifier: shared, optional: true })
    const anonymous = await app.request('/internal/whoami')
    expect({ status: anonymous.status, body: await anonymous.json() }).toEqual({
      status: 200,
      body: { m2m: null },
    })
    expect((await app.request('/internal/whoami', bearer('mt_x y'))).status).toBe(400)
  })

  it('gives a CORS preflight no exception: 401 missing_token, and app.all never runs', async () => {
    const ran: Array<string | null> = []
    const app = guarded({ verifier: shared }, (app) => {
      app.all('/internal/any', (c) => {
        ran.push(c.var.m2m?.subject ?? null)
        return c.json({ m2m: c.var.m2m ?? null }, 200, { 'access-control-allow-methods': 'GET' })
      })
    })
    const minted = await world.mint(world.caller)
    const before = world.verifyCalls()
    const preflight = { origin: 'https://example.test', 'access-control-request-method': 'GET' }
    const res = await app.request('/internal/any', { method: 'OPTIONS', headers: preflight })
    expect(res.headers.get('access-control-allow-methods')).toBeNull()
    await expectFailsWith(
      res,
      401,
      {
        error: 'missing_token',
        error_description: 'No Bearer token was sent; send Authorization: Bearer <M2M token>',
      },
      { challenge: 'Bearer realm="api"' },
    )
    expect(ran).toEqual([])
    expect(world.verifyCalls()).toBe(before)
    // With a token it is verified and let through like any request.
    const verified = await app.request('/internal/any', {
      method: 'OPTIONS',
      headers: { ...preflight, authorization: `Bearer ${minted.token}` },
    })
    expect(verified.status).toBe(200)
    expect(((await verified.json()) as { m2m: { subject: string } }).m2m.subject).toBe(
      world.caller.id,
    )
    expect(ran).toEqual([world.caller.id])
    expect(world.verifyCalls()).toBe(before + 1)
  })

  it('rejections are HTTPExceptions that app.onError sees, carrying the M2MAuthError', async () => {
    const seen: unknown[] = []
    const app = guarded({ verifier: shared }, (app) => {
      app.onError((err, c) => {
        seen.push(err)
        if (err instanceof HTTPException) {
          const res = err.getResponse()
          res.headers.set('x-seen', '1')
          return res
        }
        return c.text('unexpected', 500)
      })
    })
    const res = await app.request('/internal/whoami')
    expect(res.status).toBe(401)
    expect(res.headers.get('x-seen')).toBe('1')
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="api"')
    expect(seen).toHaveLength(1)
    const err = seen[0] as HTTPException
    expect(err).toBeInstanceOf(HTTPException)
    expect(err.status).toBe(401)
    expect(err.message).toBe('No Bearer token was sent; send Authorization: Bearer <M2M token>')
    expect(err.cause).toBeInstanceOf(M2MAuthError)
    expect((err.cause as M2MAuthError).code).toBe('missing_token')
  })

  it('getToken and onError receive the Hono context', async () => {
    const onError = vi.fn()
    const app = guarded({
      verifier: shared,
      getToken: (c: Context) => c.req.header('x-m2m-token'),
      onError,
    })
    const minted = await world.mint(world.caller)
    const ok = await app.request('/internal/whoami', { headers: { 'x-m2m-token': minted.token } })
    expect(ok.status).toBe(200)
    await app.request('/internal/whoami?from=test')
    expect(onError).toHaveBeenCalledTimes(1)
    expect(onError.mock.calls[0]?.[1]?.req.url).toBe('http://localhost/internal/whoami?from=test')
  })

  describe('environment and lazy construction', () => {
    it('reads keys from c.env (Workers bindings); builds the verifier once, not per request', async () => {
      const options = vi.fn((c: Context): RequireM2MOptions => ({ machineId: c.env.MACHINE_ID }))
      const app = guarded(options)
      const env = {
        CLERK_SECRET_KEY: world.emulator.secretKey,
        CLERK_API_URL: world.emulator.url,
        MACHINE_ID: world.receiver.id,
      }
      const minted = await world.mint(world.caller)
      const before = world.verifyCalls()
      for (let i = 0; i < 3; i++) {
        // A fresh but equal env object each time, as some runtimes and tests do.
        const res = await app.request('/internal/whoami', bearer(minted.token), { ...env })
        expect(res.status).toBe(200)
      }
      // One verifier: the first request went upstream, the others hit its cache.
      expect(world.verifyCalls()).toBe(before + 1)
      expect(options).toHaveBeenCalledTimes(1)
      // machineId came from the bindings: the outsider's token is refused by it.
      const outsider = await world.mint(world.outsider)
      const refused = await app.request('/internal/whoami', bearer(outsider.token), env)
      expect(refused.status).toBe(403)
      // Another key is another environment: its own guard, which the emulator refuses (500).
      const otherEnv = { ...env, CLERK_SECRET_KEY: 'sk_test_not_known_to_the_emulator' }
      const other = await app.request('/internal/whoami', bearer(minted.token), otherEnv)
      expect(other.status).toBe(500)
      expect(options).toHaveBeenCalledTimes(2)
      expect((await app.request('/internal/whoami', bearer(minted.token), env)).status).toBe(200)
      expect(options).toHaveBeenCalledTimes(2)
    })

    it('reads keys from process.env on Node when c.env has none', async () => {
      vi.stubEnv('CLERK_MACHINE_SECRET_KEY', '')
      vi.stubEnv('CLERK_SECRET_KEY', world.emulator.secretKey)
      vi.stubEnv('CLERK_API_URL', world.emulator.url)
      const app = guarded({ machineId: world.receiver.id })
      const minted = await world.mint(world.caller)
      const res = await app.request('/internal/whoami', bearer(minted.token))
      expect(res.status).toBe(200)
    })

    it('reads process.env once, on the first request, not per request', async () => {
      vi.stubEnv('CLERK_MACHINE_SECRET_KEY', '')
      vi.stubEnv('CLERK_SECRET_KEY', world.emulator.secretKey)
      vi.stubEnv('CLERK_API_URL', world.emulator.url)
      const options = vi.fn((): RequireM2MOptions => ({ machineId: world.receiver.id }))
      const app = guarded(options)
      const minted = await world.mint(world.caller)
      expect((await app.request('/internal/whoami', bearer(minted.token))).status).toBe(200)
      // Changed after the first request: the snapshot taken then is what counts.
      vi.stubEnv('CLERK_SECRET_KEY', 'sk_test_not_known_to_the_emulator')
      const before = world.verifyCalls()
      expect((await app.request('/internal/whoami', bearer(minted.token))).status).toBe(200)
      expect(world.verifyCalls()).toBe(before)
      expect(options).toHaveBeenCalledTimes(1)
    })

    it('explicit options win over the environment', async () => {
      const app = guarded({ ...world.verifierOptions, secretKey: 'sk_test_explicit_wrong' })
      const minted = await world.mint(world.caller)
      const env = { CLERK_SECRET_KEY: world.emulator.secretKey, CLERK_API_URL: world.emulator.url }
      const res = await app.request('/internal/whoami', bearer(minted.token), env)
      expect(res.status).toBe(500)
    })

    it('fails closed (500) when no secret key is configured anywhere, and says why once', async () => {
      vi.stubEnv('CLERK_MACHINE_SECRET_KEY', '')
      vi.stubEnv('CLERK_SECRET_KEY', '')
      const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
      const seen: M2MAuthError[] = []
      const events: unknown[] = []
      try {
        const app = guarded({
          onError: (err) => {
            seen.push(err)
          },
          onEvent: (event) => {
            events.push(event)
          },
        })
        let caught: unknown
        app.onError((err) => {
          caught = err
          return (err as HTTPException).getResponse()
        })
        for (let i = 0; i < 2; i++) {
          const res = await app.request('/internal/whoami', bearer(`mt_${'k'.repeat(48)}`))
          await expectFailsWith(res, 500, {
            error: 'verifier_misconfigured',
            error_description:
              'The request could not be authenticated because of an internal error in the server',
          })
        }
        // The reason is printed once (not per request) and names the fix, never a value.
        expect(logged).toHaveBeenCalledTimes(1)
        expect(String(logged.mock.calls[0]?.[0])).toMatch(
          /^@m2m-guard\/hono: requireM2M cannot verify any request: .*no secret key.*CLERK_SECRET_KEY/,
        )
        expect(events).toEqual([
          { type: 'misconfigured', status: 0, message: expect.stringContaining('no secret key') },
        ])
        // onError sees every rejection, these too; app.onError gets the M2MAuthError as cause.
        expect(seen.map((err) => err.code)).toEqual([
          'verifier_misconfigured',
          'verifier_misconfigured',
        ])
        expect(seen[0]?.cause).toBeInstanceOf(TypeError)
        expect((caught as HTTPException).cause).toBe(seen[1])
      } finally {
        logged.mockRestore()
      }
    })

    it('async observers that reject on that path never become unhandled rejections', async () => {
      vi.stubEnv('CLERK_MACHINE_SECRET_KEY', '')
      vi.stubEnv('CLERK_SECRET_KEY', '')
      const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
      const unhandled: unknown[] = []
      const onUnhandled = (reason: unknown) => unhandled.push(reason)
      process.on('unhandledRejection', onUnhandled)
      try {
        const app = guarded({
          onError: async () => {
            throw new Error('sink down')
          },
          onEvent: async () => {
            throw new Error('events down')
          },
        })
        const res = await app.request('/internal/whoami', bearer(`mt_${'k'.repeat(48)}`))
        expect(res.status).toBe(500)
        await new Promise((resolve) => setTimeout(resolve, 20))
        expect(unhandled).toEqual([])
      } finally {
        process.off('unhandledRejection', onUnhandled)
        logged.mockRestore()
      }
    })

    it('validates static options at once', () => {
      expect(() => requireM2M({ allowedSubjects: 'mch_a' } as never)).toThrow(
        new TypeError('requireM2M: allowedSubjects must be an array of machine ids (mch_…)'),
      )
      expect(() => requireM2M({ nope: true } as never)).toThrow(
        new TypeError('requireM2M: unknown option `nope`'),
      )
    })
  })
})
