import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import * as jose from 'jose'
import { exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose'
import { afterAll, beforeAll, beforeEach, describe, expect, test, vi } from 'vitest'
import { M2MAuthError } from '../errors.js'
import type { FetchLike } from '../types.js'
import { type Fixture, startFixture } from '../verifier/__fixtures__/emulator.js'
import { createJwtVerifier, type JwtVerification, M2M_JWT_CATEGORY } from './verify-jwt.js'

// importSPKI is wrapped (same behaviour) so tests can count how often the PEM is imported.
vi.mock('jose', async (importOriginal) => {
  const actual = await importOriginal<typeof import('jose')>()
  return { ...actual, importSPKI: vi.fn(actual.importSPKI) }
})

let fx: Fixture
let pem: string
beforeAll(async () => {
  fx = await startFixture()
  pem = await fx.emulator.jwtPublicKey()
})
afterAll(() => fx.close())
beforeEach(() => {
  vi.mocked(jose.importSPKI).mockClear()
})

const nowS = () => Math.floor(fx.clock.t / 1000)

/** A token signed with `alg` by `key`, claims shaped like Clerk's, subject a machine. */
function sign(
  alg: string,
  key: CryptoKey | KeyObject,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT({ scopes: fx.service.id })
    .setProtectedHeader({ alg, cat: M2M_JWT_CATEGORY, ...header })
    .setSubject('mch_forged')
    .setJti('mt_0123456789abcdef0123456789abcdef')
    .setIssuedAt(nowS())
    .setExpirationTime(nowS() + 60)
    .sign(key)
}

/** A JWT whose header says `header` and whose signature is junk: what anyone can send. */
function forged(header: Record<string, unknown>): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const payload = { sub: 'mch_forged', exp: nowS() + 60 }
  return `${enc({ cat: M2M_JWT_CATEGORY, ...header })}.${enc(payload)}.${'A'.repeat(86)}`
}

function pemVerifier(jwtKey: string) {
  return createJwtVerifier({ jwtKey, clockSkewMs: 5_000, now: fx.clock.now })
}

function expectInvalid(result: JwtVerification): void {
  expect(result).toMatchObject({ kind: 'invalid', code: 'invalid_token' })
}

describe('JWT verification with a PEM key: the token header never blames our key', () => {
  test('a header naming an algorithm Clerk does not sign with is invalid_token, not misconfigured', async () => {
    const verifyJwt = pemVerifier(pem)
    const ec = await generateKeyPair('ES256')
    const ed = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const rsa = await generateKeyPair('PS256')
    const tokens = [
      await sign('ES256', ec.privateKey),
      await sign('EdDSA', ed.privateKey),
      await sign('PS256', rsa.privateKey),
      forged({ alg: 'ES384' }),
      forged({ alg: 'ES512' }),
      forged({ alg: 'Ed25519' }),
      forged({ alg: 'PS512' }),
      forged({ alg: 'HS256' }),
      forged({ alg: 'none' }),
    ]
    for (const token of tokens) expectInvalid(await verifyJwt(token))
    // The key itself is fine: a real token from the emulator still verifies.
    const real = await fx.mint({ jwt: true })
    expect(await verifyJwt(real.token)).toMatchObject({ kind: 'valid' })
  })

  test('an RS384/RS512 header is checked against the same RSA key: a bad signature is invalid_token', async () => {
    const verifyJwt = pemVerifier(pem)
    for (const alg of ['RS256', 'RS384', 'RS512']) expectInvalid(await verifyJwt(forged({ alg })))
    const other = await generateKeyPair('RS512')
    expectInvalid(await verifyJwt(await sign('RS512', other.privateKey)))
  })

  test('the RS256 family all verify against one RSA PEM', async () => {
    // A KeyObject is not bound to one hash, so it can sign with each of the family.
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const verifyJwt = pemVerifier(publicKey.export({ type: 'spki', format: 'pem' }).toString())
    for (const alg of ['RS256', 'RS384', 'RS512']) {
      expect(await verifyJwt(await sign(alg, privateKey))).toMatchObject({
        kind: 'valid',
        auth: { subject: 'mch_forged', scopes: [fx.service.id] },
      })
    }
  })

  test('through the verifier: a forged ES256/EdDSA JWT is a 401 invalid_token, no misconfigured event', async () => {
    const verifier = fx.verifier({ jwt: { jwtKey: pem } })
    const before = fx.events.length
    for (const alg of ['ES256', 'EdDSA', 'PS256']) {
      const err = await verifier.verify(forged({ alg })).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(M2MAuthError)
      expect(err).toMatchObject({ code: 'invalid_token', status: 401 })
    }
    const events = fx.events.slice(before)
    expect(events.filter((e) => e.type === 'misconfigured')).toEqual([])
    const real = await fx.mint({ jwt: true })
    expect((await verifier.verify(real.token)).format).toBe('jwt')
  })

  test('the PEM is imported once, however many tokens and header algorithms arrive', async () => {
    const verifyJwt = pemVerifier(pem)
    const real = await fx.mint({ jwt: true })
    expect(await verifyJwt(real.token)).toMatchObject({ kind: 'valid' })
    const afterFirst = vi.mocked(jose.importSPKI).mock.calls.length
    expect(afterFirst).toBeGreaterThan(0)
    for (const alg of ['RS256', 'RS384', 'RS512', 'ES256', 'EdDSA', 'PS256']) {
      await verifyJwt(forged({ alg }))
    }
    await verifyJwt(real.token)
    expect(vi.mocked(jose.importSPKI).mock.calls.length).toBe(afterFirst)
  })
})

describe('JWT verification with an unusable PEM key: verifier_misconfigured, decided once', () => {
  const unusable: [string, () => Promise<string>][] = [
    ['not a PEM at all', async () => 'not a pem'],
    [
      'an EC public key (Clerk signs with RSA)',
      async () => exportSPKI((await generateKeyPair('ES256', { extractable: true })).publicKey),
    ],
    [
      'an Ed25519 public key',
      async () =>
        exportSPKI(
          (await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })).publicKey,
        ),
    ],
    [
      'an RSA key under 2048 bits',
      async () =>
        generateKeyPairSync('rsa', { modulusLength: 1024 })
          .publicKey.export({ type: 'spki', format: 'pem' })
          .toString(),
    ],
  ]

  test.each(unusable)('%s', async (_name, makePem) => {
    const verifyJwt = pemVerifier(await makePem())
    const real = await fx.mint({ jwt: true })
    const first = await verifyJwt(real.token)
    expect(first).toMatchObject({ kind: 'misconfigured' })
    const description = (first as { description: string }).description
    expect(description).toMatch(/jwt\.jwtKey \(CLERK_JWT_KEY\)/)
    expect(description).not.toContain(real.token)
    expect(description).not.toContain('-----BEGIN')
    const imports = vi.mocked(jose.importSPKI).mock.calls.length
    // Every well-formed token is refused the same way; the key is not imported again.
    expect(await verifyJwt(real.token)).toMatchObject({ kind: 'misconfigured' })
    expect(await verifyJwt(forged({ alg: 'RS512' }))).toMatchObject({ kind: 'misconfigured' })
    expect(vi.mocked(jose.importSPKI).mock.calls.length).toBe(imports)
    // A header outside the accepted algorithms is the token's fault, whatever our key.
    expectInvalid(await verifyJwt(forged({ alg: 'ES256' })))
  })
})

describe('JWT verification with a JWKS: a key of one type, a header of another', () => {
  let rsa: { privateKey: CryptoKey; jwk: JWK }
  let ec: { privateKey: CryptoKey; jwk: JWK }
  beforeAll(async () => {
    const r = await generateKeyPair('RS256', { extractable: true })
    const e = await generateKeyPair('ES256', { extractable: true })
    rsa = {
      privateKey: r.privateKey,
      jwk: { ...(await exportJWK(r.publicKey)), kid: 'ins_rsa', alg: 'RS256', use: 'sig' },
    }
    ec = {
      privateKey: e.privateKey,
      jwk: { ...(await exportJWK(e.publicKey)), kid: 'ins_ec', use: 'sig' },
    }
  })

  function jwksVerifier() {
    let fetches = 0
    const fetch: FetchLike = async () => {
      fetches++
      return new Response(JSON.stringify({ keys: [rsa.jwk, ec.jwk] }), {
        headers: { 'content-type': 'application/json' },
      })
    }
    const verifyJwt = createJwtVerifier({
      jwksUrl: 'https://jwks.invalid/v1/jwks',
      clockSkewMs: 5_000,
      now: fx.clock.now,
      fetch,
      // No cooldown: any key lookup that misses would show as one more fetch.
      jwksCooldownMs: 0,
    })
    return { verifyJwt, fetches: () => fetches }
  }

  test('a JWKS key is only used with its own type and algorithm; mismatches are invalid_token', async () => {
    const { verifyJwt, fetches } = jwksVerifier()
    expect(await verifyJwt(await sign('RS256', rsa.privateKey, { kid: 'ins_rsa' }))).toMatchObject({
      kind: 'valid',
    })
    const cases = [
      // An EC key in the JWKS does not make ES256 acceptable: Clerk signs with RSA.
      await sign('ES256', ec.privateKey, { kid: 'ins_ec' }),
      // An RSA header naming the EC key's kid.
      forged({ alg: 'RS256', kid: 'ins_ec' }),
      // The RSA key is published for RS256 only.
      forged({ alg: 'RS384', kid: 'ins_rsa' }),
      forged({ alg: 'EdDSA', kid: 'ins_rsa' }),
      forged({ alg: 'PS256', kid: 'ins_rsa' }),
    ]
    for (const token of cases) {
      const result = await verifyJwt(token)
      expectInvalid(result)
    }
    // Headers outside the accepted algorithms are refused before any key lookup: no refetch.
    const before = fetches()
    expectInvalid(await verifyJwt(forged({ alg: 'ES256', kid: 'ins_unknown' })))
    expectInvalid(await verifyJwt(forged({ alg: 'EdDSA', kid: 'ins_unknown' })))
    expect(fetches()).toBe(before)
  })
})
