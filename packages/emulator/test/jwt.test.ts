import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  importSPKI,
  jwtVerify,
} from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Emulator,
  type EmulatorMachine,
  M2M_JWT_CATEGORY,
  startEmulator,
} from '../src/index.js'
import { type Call, client, errorCode, type Token } from './helpers.js'

let emulator: Emulator
let call: Call
let caller: EmulatorMachine
let api: EmulatorMachine
let other: EmulatorMachine

beforeAll(async () => {
  emulator = await startEmulator()
  call = client(emulator)
  api = await emulator.createMachine({ name: 'api' })
  other = await emulator.createMachine({ name: 'other' })
  caller = await emulator.createMachine({ name: 'caller', scopedMachines: [api.id, other.id] })
})
afterAll(() => emulator.close())

const mintJwt = (body: Record<string, unknown> = {}) =>
  call<Token>('createM2MToken', 'POST', '/m2m_tokens', {
    key: caller.secretKey,
    body: { token_format: 'jwt', ...body },
  })

interface Jwks {
  keys: { kty: string; kid: string; alg: string; use: string; n: string; e: string; d?: string }[]
}

describe('JWKS', () => {
  it.each(['/v1', ''] as const)(
    'serves the public key under %j/jwks to any valid key',
    async (prefix) => {
      for (const key of [emulator.secretKey, caller.secretKey]) {
        const res = await call<Jwks>('getJwks', 'GET', '/jwks', { key, prefix })
        expect(res.status).toBe(200)
        expect(res.headers.get('content-type')).toBe('application/json')
        expect(res.body.keys).toHaveLength(1)
        expect(res.body.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig', e: 'AQAB' })
        expect(res.body.keys[0]).not.toHaveProperty('d')
      }
      const anonymous = await call(undefined, 'GET', '/jwks', { prefix })
      expect(anonymous.status).toBe(401)
    },
  )
})

describe('JWT-format tokens', () => {
  it('are RS256 JWTs Clerk-shaped, verifiable with jose against /v1/jwks', async () => {
    const res = await mintJwt({
      seconds_until_expiration: 120,
      claims: { role: 'reader', sub: 'ignored' },
    })
    expect(res.status).toBe(201)
    const t = res.body
    expect(t).toMatchObject({
      subject: caller.id,
      scopes: [api.id, other.id],
      claims: { role: 'reader' },
      revoked: false,
      expired: false,
      last_used_at: null,
    })
    const header = decodeProtectedHeader(t.token)
    expect(header).toMatchObject({ alg: 'RS256', typ: 'JWT', cat: M2M_JWT_CATEGORY })
    const jwks = await call<Jwks>('getJwks', 'GET', '/jwks', { key: emulator.secretKey })
    expect(header.kid).toBe(jwks.body.keys[0]?.kid)

    const remote = createRemoteJWKSet(new URL(emulator.jwksUrl), {
      headers: { authorization: `Bearer ${emulator.secretKey}` },
    })
    const { payload } = await jwtVerify(t.token, remote, {
      algorithms: ['RS256'],
      audience: api.id,
    })
    expect(payload).toMatchObject({
      sub: caller.id,
      jti: t.id,
      scopes: `${api.id} ${other.id}`,
      aud: [api.id, other.id],
      role: 'reader',
    })
    expect(payload.exp).toBe((t.expiration as number) / 1000)
    expect(payload.exp! - payload.iat!).toBe(120)
    expect(payload.nbf).toBeLessThanOrEqual(payload.iat!)
    expect(typeof payload.iss).toBe('string')

    // The PEM (what CLERK_JWT_KEY holds) verifies it too.
    const pem = await importSPKI(await emulator.jwtPublicKey(), 'RS256')
    expect((await jwtVerify(t.token, pem, { algorithms: ['RS256'] })).payload).toEqual(payload)
  })

  it('are signed with nothing else: a tampered payload fails', async () => {
    const t = (await mintJwt()).body.token
    const [h, p, s] = t.split('.')
    const claims = JSON.parse(Buffer.from(p as string, 'base64url').toString()) as Record<
      string,
      unknown
    >
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: api.id })).toString('base64url')}.${s}`
    const jwks = await call<Jwks>('getJwks', 'GET', '/jwks', { key: emulator.secretKey })
    await expect(jwtVerify(forged, createLocalJWKSet(jwks.body))).rejects.toThrow()
    const verify = await call('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: emulator.secretKey,
      body: { token: forged },
    })
    expect(verify.status).toBe(404)
  })

  it('without an expiration use the machine default (a JWT always expires)', async () => {
    const t = (await mintJwt({ seconds_until_expiration: null })).body
    expect((t.expiration as number) - t.created_at).toBe(3600_000)
  })

  it('are verified by the verify endpoint with the same scope rule as opaque tokens', async () => {
    const t = (await mintJwt({ claims: { a: 1 } })).body
    const ok = await call<Token>('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: api.secretKey,
      body: { token: t.token },
    })
    expect(ok.status).toBe(200)
    expect(ok.body).toMatchObject({
      id: t.id,
      subject: caller.id,
      claims: { a: 1 },
      scopes: [api.id, other.id],
    })
    const outOfScope = await call('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: caller.secretKey,
      body: { token: t.token },
    })
    expect(outOfScope.status).toBe(404)
  })

  it('are not listed, not revocable, never reused', async () => {
    const t = (await mintJwt({ min_remaining_ttl_seconds: 10 })).body
    const again = (await mintJwt({ min_remaining_ttl_seconds: 10 })).body
    expect(again.id).not.toBe(t.id)
    const list = await call<{ m2m_tokens: Token[] }>(
      'getM2MTokens',
      'GET',
      `/m2m_tokens?subject=${caller.id}`,
      {
        key: emulator.secretKey,
      },
    )
    expect(list.body.m2m_tokens.map((x) => x.id)).not.toContain(t.id)
    const revoke = await call('revokeM2MToken', 'POST', `/m2m_tokens/${t.id}/revoke`, {
      key: emulator.secretKey,
      body: {},
    })
    expect(revoke.status).toBe(404)
  })

  it('reject claims that are not an object', async () => {
    const res = await mintJwt({ claims: [1, 2] })
    expect(res.status).toBe(400)
    expect(errorCode(res)).toBe('form_param_value_invalid')
  })
})

describe('expired JWT', () => {
  it('verify answers 404 token_expired', async () => {
    let now = Date.now()
    const e = await startEmulator({ now: () => now })
    const c = client(e)
    const m = await e.createMachine({ name: 'm' })
    const t = await c<Token>('createM2MToken', 'POST', '/m2m_tokens', {
      key: m.secretKey,
      body: { token_format: 'jwt', seconds_until_expiration: 30 },
    })
    now += 31_000
    const res = await c('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: e.secretKey,
      body: { token: t.body.token },
    })
    expect(res.status).toBe(404)
    expect(errorCode(res)).toBe('token_expired')
    await e.close()
  })
})
