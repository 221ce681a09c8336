/** JWT-format M2M tokens: RS256, shaped like Clerk's so `@clerk/backend` verifies them locally. */
import {
  calculateJwkThumbprint,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  importJWK,
  type JWK,
  jwtVerify,
  SignJWT,
} from 'jose'
import { ApiError, notFound } from './http/errors.js'
import { newTokenId, TOKEN_ID_RE } from './ids.js'
import type { Caller, WireToken } from './store.js'

/**
 * Clerk's JWT header `cat` for M2M tokens; `@clerk/backend` rejects M2M JWTs with another one.
 *
 * @example
 * decodeProtectedHeader(token).cat === M2M_JWT_CATEGORY // a JWT-format M2M token
 */
export const M2M_JWT_CATEGORY = 'cl_B7d4PD333AAA'
/** Structural claims the emulator sets; custom claims never override them. */
const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'scopes'])
const JWT_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey']

export class JwtSigner {
  private constructor(
    private readonly privateKey: SigningKey,
    private readonly publicKey: SigningKey,
    readonly kid: string,
    readonly publicJwk: JWK,
    readonly privateJwk: JWK,
    readonly publicPem: string,
    private readonly issuer: string,
  ) {}

  /** Loads the persisted key, or generates a new one. */
  static async create(issuer: string, persisted?: Record<string, unknown>): Promise<JwtSigner> {
    let privateJwk: JWK
    if (persisted && typeof persisted.n === 'string' && typeof persisted.d === 'string') {
      privateJwk = persisted as JWK
    } else {
      const pair = await generateKeyPair('RS256', { extractable: true })
      privateJwk = await exportJWK(pair.privateKey)
    }
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = privateJwk
    const kid = `ins_${(await calculateJwkThumbprint(pub)).slice(0, 27)}`
    const publicJwk: JWK = { kty: pub.kty, n: pub.n, e: pub.e, kid, alg: 'RS256', use: 'sig' }
    const privateKey = (await importJWK({ ...privateJwk, alg: 'RS256' }, 'RS256', {
      extractable: true,
    })) as SigningKey
    const publicKey = (await importJWK({ ...publicJwk }, 'RS256', {
      extractable: true,
    })) as SigningKey
    const publicPem = await exportSPKI(publicKey)
    return new JwtSigner(
      privateKey,
      publicKey,
      kid,
      publicJwk,
      { ...privateJwk, kid },
      publicPem,
      issuer,
    )
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk] }
  }

  /**
   * Signs a token; custom claims go at the top level, as Clerk's do. JWT times are whole seconds,
   * so a fractional lifetime is rounded up: `exp > now` on issue (never born expired), and the
   * record's `expiration` is exactly `exp * 1000`.
   */
  async sign(input: {
    subject: string
    scopes: string[]
    claims: Record<string, unknown> | null
    nowMs: number
    lifetimeSeconds: number
  }): Promise<WireToken> {
    const iat = Math.floor(input.nowMs / 1000)
    const exp = iat + Math.max(1, Math.ceil(input.lifetimeSeconds))
    const id = newTokenId()
    const custom = Object.fromEntries(
      Object.entries(input.claims ?? {}).filter(([key]) => !RESERVED.has(key)),
    )
    const payload: Record<string, unknown> = {
      ...custom,
      iss: this.issuer,
      sub: input.subject,
      ...(input.scopes.length > 0 ? { aud: input.scopes } : {}),
      scopes: input.scopes.join(' '),
      jti: id,
      iat,
      nbf: iat - 5,
      exp,
    }
    const token = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: this.kid, cat: M2M_JWT_CATEGORY })
      .sign(this.privateKey)
    return {
      object: 'machine_to_machine_token',
      id,
      subject: input.subject,
      claims: Object.keys(custom).length > 0 ? custom : null,
      scopes: input.scopes,
      token,
      revoked: false,
      revocation_reason: null,
      expired: false,
      expiration: exp * 1000,
      last_used_at: null,
      created_at: iat * 1000,
      updated_at: iat * 1000,
    }
  }

  /** Verify endpoint for JWTs: signature, times, scope rule. Every failure is a 404, as for opaque. */
  async verify(caller: Caller, token: string, nowMs: number): Promise<WireToken> {
    let payload: Record<string, unknown>
    try {
      const result = await jwtVerify(token, this.publicKey, {
        algorithms: ['RS256'],
        currentDate: new Date(nowMs),
        issuer: this.issuer,
      })
      payload = result.payload as Record<string, unknown>
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_JWT_EXPIRED') {
        throw new ApiError(404, 'token_expired', 'token expired', 'The M2M token has expired.')
      }
      throw notFound('M2M token')
    }
    const sub = payload.sub
    const jti = payload.jti
    const scopes =
      typeof payload.scopes === 'string' && payload.scopes ? payload.scopes.split(' ') : []
    if (typeof sub !== 'string' || typeof jti !== 'string' || !TOKEN_ID_RE.test(jti)) {
      throw notFound('M2M token')
    }
    if (caller.kind === 'machine' && !scopes.includes(caller.machineId)) throw notFound('M2M token')
    const custom = Object.fromEntries(Object.entries(payload).filter(([k]) => !RESERVED.has(k)))
    const iat = typeof payload.iat === 'number' ? payload.iat * 1000 : nowMs
    return {
      object: 'machine_to_machine_token',
      id: jti,
      subject: sub,
      claims: Object.keys(custom).length > 0 ? custom : null,
      scopes,
      revoked: false,
      revocation_reason: null,
      expired: false,
      expiration: typeof payload.exp === 'number' ? payload.exp * 1000 : null,
      last_used_at: null,
      created_at: iat,
      updated_at: iat,
    }
  }
}

export function looksLikeJwt(token: string): boolean {
  return JWT_RE.test(token)
}
