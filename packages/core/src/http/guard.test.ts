import { describe, expect, it, vi } from 'vitest'
import { unhandledRejectionsOf } from '../../test/support/unhandled.js'
import { M2MAuthError } from '../errors.js'
import type { M2MAuth, M2MVerifier } from '../verifier/types.js'
import { createM2MGuard, type M2MGuardOptions } from './guard.js'

const TOKEN = 'mt_0123456789abcdef0123456789abcdef'
const auth: M2MAuth = {
  tokenType: 'm2m_token',
  format: 'opaque',
  id: 'mt_00000000000000000000000000000001',
  subject: 'mch_caller',
  scopes: ['mch_receiver'],
  claims: { tenant: 'acme' },
  expiration: null,
}

/** A verifier double: the guard's own logic is under test here; adapters test the real one. */
function fakeVerifier(verify: (token: string) => Promise<M2MAuth> = async () => auth) {
  const calls: string[] = []
  const verifier: M2MVerifier = {
    verify: vi.fn(async (token: string) => {
      calls.push(token)
      return verify(token)
    }),
    invalidate: async () => {},
    revoke: async () => {},
    stats: () => {
      throw new Error('unused')
    },
    close: vi.fn(async () => {}),
  }
  return { verifier, calls }
}

function guardWith(
  options: Omit<M2MGuardOptions<string>, 'verifier'> = {},
  verify?: () => Promise<M2MAuth>,
) {
  const { verifier, calls } = fakeVerifier(verify)
  return { guard: createM2MGuard<string>({ verifier, ...options }), calls, verifier }
}

const get = (authorization?: string | string[]) => ({
  method: 'GET',
  authorization,
  native: 'req',
})

describe('createM2MGuard: authenticate', () => {
  it('verifies a Bearer token and returns the identity', async () => {
    const { guard, calls } = guardWith()
    expect(await guard.authenticate(get(`Bearer ${TOKEN}`))).toEqual({ ok: true, auth })
    expect(calls).toEqual([TOKEN])
  })

  it('answers missing_token with a bare challenge, without calling the verifier', async () => {
    const { guard, calls } = guardWith({ realm: 'reports' })
    const result = await guard.authenticate(get())
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.error.code).toBe('missing_token')
    expect(result.response).toEqual({
      status: 401,
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
        'www-authenticate': 'Bearer realm="reports"',
      },
      body: {
        error: 'missing_token',
        error_description: 'No Bearer token was sent; send Authorization: Bearer <M2M token>',
      },
      bodyText:
        '{"error":"missing_token","error_description":"No Bearer token was sent; send Authorization: Bearer <M2M token>"}',
    })
    expect(calls).toEqual([])
  })

  it('answers a malformed header 400 without calling the verifier', async () => {
    const { guard, calls } = guardWith()
    const result = await guard.authenticate(get([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]))
    expect(!result.ok && result.response.status).toBe(400)
    expect(!result.ok && result.response.headers['www-authenticate']).toBe(
      'Bearer realm="api", error="invalid_request", error_description="The Authorization header was sent more than once"',
    )
    expect(calls).toEqual([])
  })

  it('passes the verifier error through, rendered with the guard realm', async () => {
    const { guard } = guardWith({ realm: 'r' }, async () => {
      throw new M2MAuthError('token_revoked', 'The token was revoked')
    })
    const result = await guard.authenticate(get(`Bearer ${TOKEN}`))
    expect(!result.ok && result.response.status).toBe(401)
    expect(!result.ok && result.response.headers['www-authenticate']).toBe(
      'Bearer realm="r", error="invalid_token", error_description="The token was revoked"',
    )
    expect(!result.ok && result.response.body.error).toBe('token_revoked')
  })

  it('fails closed (500) when the verifier throws something unexpected, and never rejects', async () => {
    const { guard } = guardWith({}, async () => {
      throw new TypeError(`boom ${TOKEN}`)
    })
    const result = await guard.authenticate(get(`Bearer ${TOKEN}`))
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.response.status).toBe(500)
    expect(result.response.bodyText).not.toContain(TOKEN)
    expect(result.error.cause).toBeInstanceOf(TypeError)
  })

  it('gives a CORS preflight no exception: 401 missing_token, without calling the verifier', async () => {
    const { guard, calls } = guardWith()
    // Shaped as an adapter written for an older guard would still send it: the extra field
    // must not open a way around the token.
    const preflight = {
      method: 'OPTIONS',
      authorization: undefined,
      accessControlRequestMethod: 'GET',
      native: 'req',
    }
    const result = await guard.authenticate(preflight)
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.error.code).toBe('missing_token')
    expect(result.response.status).toBe(401)
    expect(result.response.headers['www-authenticate']).toBe('Bearer realm="api"')
    expect(calls).toEqual([])
  })

  it('verifies a CORS preflight that carries a token like any request', async () => {
    const { guard, calls } = guardWith()
    const preflight = {
      method: 'OPTIONS',
      authorization: `Bearer ${TOKEN}`,
      accessControlRequestMethod: 'GET',
      native: 'req',
    }
    expect(await guard.authenticate(preflight)).toEqual({ ok: true, auth })
    expect(calls).toEqual([TOKEN])
  })

  describe('optional', () => {
    it('continues without identity when there are no Bearer credentials', async () => {
      const { guard, calls } = guardWith({ optional: true })
      expect(await guard.authenticate(get())).toEqual({ ok: true, auth: null })
      expect(await guard.authenticate(get('Basic dXNlcg=='))).toEqual({ ok: true, auth: null })
      expect(calls).toEqual([])
    })

    it('still rejects malformed and invalid credentials', async () => {
      const { guard } = guardWith({ optional: true }, async () => {
        throw new M2MAuthError('invalid_token', 'Unknown token')
      })
      expect((await guard.authenticate(get('Bearer '))).ok).toBe(false)
      const result = await guard.authenticate(get(`Bearer ${TOKEN}`))
      expect(!result.ok && result.error.code).toBe('invalid_token')
    })

    it('still applies the policy to a verified identity', async () => {
      const { guard } = guardWith({ optional: true, allowedSubjects: ['mch_other'] })
      const result = await guard.authenticate(get(`Bearer ${TOKEN}`))
      expect(!result.ok && result.response.status).toBe(403)
    })
  })

  it('applies allowedSubjects and requireClaims (403 insufficient_scope)', async () => {
    const { guard } = guardWith({ allowedSubjects: ['mch_caller'], requireClaims: { tenant: 'x' } })
    const result = await guard.authenticate(get(`Bearer ${TOKEN}`))
    expect(!result.ok && result.response.status).toBe(403)
    expect(!result.ok && result.response.headers['www-authenticate']).toBe(
      `Bearer realm="api", error="insufficient_scope", error_description="The token's claims do not meet the requirements of this resource"`,
    )
  })

  it('fails closed (500) when a requireClaims predicate throws', async () => {
    const { guard } = guardWith({
      requireClaims: () => {
        throw new Error('bug')
      },
    })
    const result = await guard.authenticate(get(`Bearer ${TOKEN}`))
    expect(!result.ok && result.response.status).toBe(500)
  })

  describe('getToken', () => {
    it('replaces the header, receives the native request, and is syntax-checked', async () => {
      const getToken = vi.fn((req: string) => (req === 'with' ? TOKEN : undefined))
      const { guard, calls } = guardWith({ getToken })
      const ok = await guard.authenticate({
        method: 'GET',
        authorization: 'Basic x',
        native: 'with',
      })
      expect(ok).toEqual({ ok: true, auth })
      expect(getToken).toHaveBeenCalledWith('with')
      expect(calls).toEqual([TOKEN])
      const none = await guard.authenticate({
        method: 'GET',
        authorization: `Bearer ${TOKEN}`,
        native: 'x',
      })
      expect(!none.ok && none.error.code).toBe('missing_token')
    })

    it('rejects a malformed extracted token (400) and a throwing getToken (500)', async () => {
      const bad = guardWith({ getToken: () => 'two words' })
      expect(
        ((await bad.guard.authenticate(get())) as { response: { status: number } }).response.status,
      ).toBe(400)
      const throwing = guardWith({
        getToken: () => {
          throw new Error('bug')
        },
      })
      const result = await throwing.guard.authenticate(get())
      expect(!result.ok && result.response.status).toBe(500)
    })

    it('answers 500 for an async getToken, and leaves no unhandled rejection', async () => {
      const asyncGetToken = (async () => {
        throw new Error('lookup failed')
      }) as unknown as () => string
      const { guard, calls } = guardWith({ getToken: asyncGetToken })
      const unhandled = await unhandledRejectionsOf(async () => {
        const result = await guard.authenticate(get())
        expect(!result.ok && [result.error.code, result.response.status]).toEqual([
          'verifier_misconfigured',
          500,
        ])
        expect(!result.ok && (result.error.cause as Error).message).toBe(
          'getToken returned a promise; it must return the token synchronously',
        )
      })
      expect(unhandled).toEqual([])
      expect(calls).toEqual([])
    })
  })

  describe('onError', () => {
    it('sees every rejection with the native request, and cannot change it', async () => {
      const seen: [string, string][] = []
      const { guard } = guardWith({
        onError: (error, req) => {
          seen.push([error.code, req])
          throw new Error('observer bug')
        },
      })
      const result = await guard.authenticate(get())
      expect(!result.ok && result.response.status).toBe(401)
      expect(seen).toEqual([['missing_token', 'req']])
    })

    it('an async observer that rejects changes nothing and leaves no unhandled rejection', async () => {
      const { guard } = guardWith({
        onError: async () => {
          throw new Error('log sink down')
        },
      })
      const unhandled = await unhandledRejectionsOf(async () => {
        const result = await guard.authenticate(get())
        expect(!result.ok && [result.error.code, result.response.status]).toEqual([
          'missing_token',
          401,
        ])
      })
      expect(unhandled).toEqual([])
    })

    it('is not called on success', async () => {
      const onError = vi.fn()
      const { guard } = guardWith({ onError })
      await guard.authenticate(get(`Bearer ${TOKEN}`))
      expect(onError).not.toHaveBeenCalled()
    })
  })
})

describe('createM2MGuard: route policies', () => {
  it('merges a route policy over the guard defaults', async () => {
    const { guard } = guardWith({ allowedSubjects: ['mch_other'], optional: true })
    const route = guard.policy({ allowedSubjects: ['mch_caller'] })
    expect(route).toEqual({
      allowedSubjects: ['mch_caller'],
      requireClaims: undefined,
      optional: true,
      compiled: true,
    })
    expect((await guard.authenticate(get(`Bearer ${TOKEN}`), route)).ok).toBe(true)
    expect((await guard.authenticate(get(`Bearer ${TOKEN}`))).ok).toBe(false)
  })

  it('validates a route policy when it is compiled, naming the route', () => {
    const { guard } = guardWith()
    expect(() => guard.policy({ allowedSubjects: 'x' } as never, 'GET /a')).toThrow(
      'GET /a: allowedSubjects must be an array of machine ids (mch_…)',
    )
  })
})

describe('createM2MGuard: options', () => {
  const { verifier } = fakeVerifier()

  it.each([
    [
      { verifier, alowedSubjects: ['x'] },
      'createM2MGuard: unknown option `alowedSubjects` (did you mean `allowedSubjects`?)',
    ],
    // A misspelt machineId would silently turn the scope check off: never ignored.
    [
      { machineID: 'mch_x' },
      'createM2MGuard: unknown option `machineID` (did you mean `machineId`?)',
    ],
    [
      { cache: { ttl: 0 } },
      'createM2MGuard: unknown option `cache.ttl` (did you mean `cache.ttlMs`?)',
    ],
    [
      { verifier, allowedSubjects: 'x' },
      'createM2MGuard: allowedSubjects must be an array of machine ids (mch_…)',
    ],
    [
      { verifier, requireClaims: 5 },
      'createM2MGuard: requireClaims must be an object of expected claim values or a predicate function',
    ],
    [{ verifier, optional: 1 }, 'createM2MGuard: optional must be a boolean'],
    [
      { verifier, getToken: 'x' },
      'createM2MGuard: getToken must be a function (request) => string | undefined',
    ],
    [
      { verifier, onError: 1 },
      'createM2MGuard: onError must be a function (error, request) => void',
    ],
    [
      { verifier, realm: '' },
      'createM2MGuard: realm must be a non-empty string without control characters or characters above U+00FF',
    ],
    [
      { verifier, realm: 'a\r\nb' },
      'createM2MGuard: realm must be a non-empty string without control characters or characters above U+00FF',
    ],
    [
      { verifier, realm: 'api \u65e5\u672c' },
      'createM2MGuard: realm must be a non-empty string without control characters or characters above U+00FF',
    ],
    [
      { verifier: {} },
      'createM2MGuard: verifier must be an M2MVerifier (from createM2MVerifier())',
    ],
    [
      { verifier, machineId: 'mch_a', secretKey: 'sk_x' },
      'createM2MGuard: pass either a shared `verifier` or verifier options (machineId, secretKey), not both; set them where the verifier is created',
    ],
  ])('rejects %j', (options, message) => {
    expect(() => createM2MGuard(options as never)).toThrow(new TypeError(message))
  })

  it('names the adapter and accepts its own options', () => {
    expect(() =>
      createM2MGuard({ verifier, passErrors: true } as never, {
        name: 'requireM2M',
        adapterOptions: ['passErrors'],
      }),
    ).not.toThrow()
    expect(() => createM2MGuard({ verifier, nope: 1 } as never, { name: 'requireM2M' })).toThrow(
      'requireM2M: unknown option `nope`',
    )
  })

  it('closes only a verifier it built', async () => {
    const shared = fakeVerifier().verifier
    await createM2MGuard({ verifier: shared }).close()
    expect(shared.close).not.toHaveBeenCalled()
  })
})
