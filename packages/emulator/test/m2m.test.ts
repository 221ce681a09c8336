import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type Emulator, type EmulatorMachine, startEmulator } from '../src/index.js'
import { type Call, client, errorCode, manualClock, type Token } from './helpers.js'

let emulator: Emulator
let call: Call
let clock: ReturnType<typeof manualClock>
let caller: EmulatorMachine
let api: EmulatorMachine
let other: EmulatorMachine

beforeEach(async () => {
  clock = manualClock(Date.now())
  emulator = await startEmulator({ now: clock.now })
  call = client(emulator)
  api = await emulator.createMachine({ name: 'api' })
  caller = await emulator.createMachine({ name: 'caller', scopedMachines: [api.id] })
  other = await emulator.createMachine({ name: 'other' })
})
afterEach(() => emulator.close())

const create = (key: string, body: unknown = {}, prefix: '' | '/v1' = '/v1') =>
  call<Token>('createM2MToken', 'POST', '/m2m_tokens', { key, body, prefix })
const verify = (key: string, token: string, prefix: '' | '/v1' = '/v1') =>
  call<Token>('verifyM2MToken', 'POST', '/m2m_tokens/verify', { key, body: { token }, prefix })

describe('startEmulator', () => {
  it('listens on 127.0.0.1 with a generated sk_test_ key', () => {
    expect(emulator.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(emulator.apiUrl).toBe(`${emulator.url}/v1`)
    expect(emulator.secretKey).toMatch(/^sk_test_\w{40}$/)
    expect(caller.id).toMatch(/^mch_\w{27}$/)
    expect(caller.secretKey).toMatch(/^ak_\w+$/)
    expect(caller.scopedMachines).toEqual([api.id])
  })

  it('takes a given secret key', async () => {
    const e = await startEmulator({ secretKey: 'sk_test_given' })
    expect(e.secretKey).toBe('sk_test_given')
    await e.close()
  })

  it('close() is idempotent', async () => {
    await emulator.close()
    await emulator.close()
    await expect(fetch(emulator.url)).rejects.toThrow()
  })
})

describe.each(['/v1', ''] as const)('token lifecycle under prefix %j', (prefix) => {
  it('create → list → verify → revoke → verify 404', async () => {
    const created = await create(caller.secretKey, { claims: { team: 'x' } }, prefix)
    expect(created.status).toBe(201)
    const t = created.body
    expect(t.token).toMatch(/^mt_[A-Za-z0-9]{32,}$/)
    expect(t.id).toMatch(/^mt_[0-9a-f]{32}$/)
    expect(t).toMatchObject({
      object: 'machine_to_machine_token',
      subject: caller.id,
      scopes: [api.id],
      claims: { team: 'x' },
      revoked: false,
      revocation_reason: null,
      expired: false,
      expiration: clock.now() + 3600_000,
      last_used_at: null,
      created_at: clock.now(),
    })

    const listed = await call<{ m2m_tokens: Token[]; total_count: number }>(
      'getM2MTokens',
      'GET',
      `/m2m_tokens?subject=${caller.id}`,
      { key: emulator.secretKey, prefix },
    )
    expect(listed.status).toBe(200)
    expect(listed.body.total_count).toBe(1)
    expect(listed.body.m2m_tokens[0]?.id).toBe(t.id)
    expect(listed.body.m2m_tokens[0]).not.toHaveProperty('token')

    clock.advance(1000)
    const verified = await verify(api.secretKey, t.token, prefix)
    expect(verified.status).toBe(200)
    expect(verified.body.id).toBe(t.id)
    expect(verified.body.last_used_at).toBe(clock.now())
    expect(verified.body).not.toHaveProperty('token')

    const revoked = await call<Token>('revokeM2MToken', 'POST', `/m2m_tokens/${t.id}/revoke`, {
      key: emulator.secretKey,
      body: { revocation_reason: 'rotated' },
      prefix,
    })
    expect(revoked.status).toBe(200)
    expect(revoked.body).toMatchObject({ id: t.id, revoked: true, revocation_reason: 'rotated' })

    const after = await verify(api.secretKey, t.token, prefix)
    expect(after.status).toBe(404)
    expect(errorCode(after)).toBe('token_revoked')
  })
})

describe('createM2MToken', () => {
  it('needs a machine key: the instance key gets 403', async () => {
    const res = await create(emulator.secretKey)
    expect(res.status).toBe(403)
    expect(errorCode(res)).toBe('authorization_invalid')
  })

  it('401 without a key, with an unknown key, and with a malformed header', async () => {
    const variants: Record<string, string>[] = [
      {},
      { authorization: 'Bearer ak_unknown' },
      { authorization: 'Basic abc' },
    ]
    for (const headers of variants) {
      const res = await call('createM2MToken', 'POST', '/m2m_tokens', { body: {}, headers })
      expect(res.status).toBe(401)
      expect(res.body).toMatchObject({ errors: [{ message: 'Invalid authentication' }] })
    }
    const sk = await call('createM2MToken', 'POST', '/m2m_tokens', {
      key: 'sk_test_wrong',
      body: {},
    })
    expect(sk.status).toBe(401)
    expect(errorCode(sk)).toBe('clerk_key_invalid')
  })

  it('expiration from seconds_until_expiration, the machine default, or null', async () => {
    const short = await emulator.createMachine({ name: 'short', defaultTokenTtl: 60 })
    expect((await create(short.secretKey)).body.expiration).toBe(clock.now() + 60_000)
    expect((await create(short.secretKey, { seconds_until_expiration: 5 })).body.expiration).toBe(
      clock.now() + 5000,
    )
    const forever = await create(short.secretKey, { seconds_until_expiration: null })
    expect(forever.body.expiration).toBeNull()
    clock.advance(10 * 365 * 86_400_000)
    expect((await verify(emulator.secretKey, forever.body.token)).status).toBe(200)
  })

  it('empty body and an empty JSON object both mean the defaults', async () => {
    const raw = await call<Token>('createM2MToken', 'POST', '/m2m_tokens', {
      key: caller.secretKey,
      raw: '',
    })
    expect(raw.status).toBe(201)
    expect(raw.body.claims).toBeNull()
    expect(raw.body.scopes).toEqual([api.id])
  })

  it('echoes claims of any JSON type', async () => {
    for (const claims of [{ a: [1, { b: null }] }, 'text', 42, [1, 2], null]) {
      const res = await create(caller.secretKey, { claims })
      expect(res.status).toBe(201)
      expect(res.body.claims).toEqual(claims)
    }
  })

  it('scopes are the scoped machines at creation time', async () => {
    await emulator.addScope(caller.id, other.id)
    const t = await create(caller.secretKey)
    expect(t.body.scopes).toEqual([api.id, other.id])
    await emulator.removeScope(caller.id, other.id)
    const verified = await verify(emulator.secretKey, t.body.token)
    expect(verified.body.scopes).toEqual([api.id, other.id])
    expect((await create(caller.secretKey)).body.scopes).toEqual([api.id])
  })

  describe('min_remaining_ttl_seconds', () => {
    it('reuses a live token with identical claims and enough lifetime (201, same token)', async () => {
      const first = await create(caller.secretKey, {
        seconds_until_expiration: 600,
        claims: { a: 1, b: 2 },
      })
      clock.advance(100_000)
      const again = await create(caller.secretKey, {
        seconds_until_expiration: 600,
        claims: { b: 2, a: 1 },
        min_remaining_ttl_seconds: 400,
      })
      expect(again.status).toBe(201)
      expect(again.body.id).toBe(first.body.id)
      expect(again.body.token).toBe(first.body.token)
    })

    it('mints a new token when remaining lifetime is too short, claims differ, or it was revoked', async () => {
      const first = await create(caller.secretKey, { seconds_until_expiration: 600 })
      clock.advance(300_000)
      const tooShort = await create(caller.secretKey, {
        seconds_until_expiration: 600,
        min_remaining_ttl_seconds: 301,
      })
      expect(tooShort.body.id).not.toBe(first.body.id)
      const otherClaims = await create(caller.secretKey, {
        claims: { x: 1 },
        min_remaining_ttl_seconds: 10,
      })
      expect([first.body.id, tooShort.body.id]).not.toContain(otherClaims.body.id)
      await call('revokeM2MToken', 'POST', `/m2m_tokens/${otherClaims.body.id}/revoke`, {
        key: caller.secretKey,
        body: {},
      })
      const afterRevoke = await create(caller.secretKey, {
        claims: { x: 1 },
        min_remaining_ttl_seconds: 10,
      })
      expect(afterRevoke.body.id).not.toBe(otherClaims.body.id)
    })

    it('never reuses another machine’s token or one minted with other scopes', async () => {
      const a = await create(caller.secretKey, { min_remaining_ttl_seconds: 10 })
      const b = await create(other.secretKey, { min_remaining_ttl_seconds: 10 })
      expect(b.body.id).not.toBe(a.body.id)
      await emulator.addScope(caller.id, other.id)
      const c = await create(caller.secretKey, { min_remaining_ttl_seconds: 10 })
      expect(c.body.id).not.toBe(a.body.id)
    })

    it('400 when it is not less than the lifetime', async () => {
      for (const body of [
        { seconds_until_expiration: 60, min_remaining_ttl_seconds: 60 },
        { seconds_until_expiration: 60, min_remaining_ttl_seconds: 61 },
        { min_remaining_ttl_seconds: 3600 },
      ]) {
        const res = await create(caller.secretKey, body)
        expect(res.status).toBe(400)
        expect(errorCode(res)).toBe('form_param_value_invalid')
      }
      expect(
        (
          await create(caller.secretKey, {
            seconds_until_expiration: null,
            min_remaining_ttl_seconds: 10 ** 9,
          })
        ).status,
      ).toBe(201)
    })
  })
})

describe('verifyM2MToken', () => {
  it('a machine key verifies only tokens whose scopes include it; others look unknown (404)', async () => {
    const t = (await create(caller.secretKey)).body
    expect((await verify(api.secretKey, t.token)).status).toBe(200)
    expect((await verify(emulator.secretKey, t.token)).status).toBe(200)
    const outOfScope = await verify(other.secretKey, t.token)
    expect(outOfScope.status).toBe(404)
    expect(errorCode(outOfScope)).toBe('resource_not_found')
    // Its own token is not in its own scopes either.
    expect((await verify(caller.secretKey, t.token)).status).toBe(404)
  })

  it('404 for an unknown token, token_expired after expiry', async () => {
    const unknown = await verify(emulator.secretKey, 'mt_doesnotexist')
    expect(unknown.status).toBe(404)
    expect(errorCode(unknown)).toBe('resource_not_found')
    const t = (await create(caller.secretKey, { seconds_until_expiration: 10 })).body
    clock.advance(9_999)
    expect((await verify(api.secretKey, t.token)).status).toBe(200)
    clock.advance(1)
    const expired = await verify(api.secretKey, t.token)
    expect(expired.status).toBe(404)
    expect(errorCode(expired)).toBe('token_expired')
  })

  it('revoked wins over expired, and the 404 is the same whoever asks', async () => {
    const t = (await create(caller.secretKey, { seconds_until_expiration: 10 })).body
    await call('revokeM2MToken', 'POST', `/m2m_tokens/${t.id}/revoke`, {
      key: caller.secretKey,
      body: {},
    })
    clock.advance(20_000)
    expect(errorCode(await verify(api.secretKey, t.token))).toBe('token_revoked')
    expect(errorCode(await verify(other.secretKey, t.token))).toBe('resource_not_found')
  })

  it('401 without a valid key', async () => {
    const res = await call('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      body: { token: 'mt_x' },
    })
    expect(res.status).toBe(401)
  })
})

describe('getM2MTokens', () => {
  it('a machine lists its own tokens; another subject is 403', async () => {
    await create(caller.secretKey)
    const own = await call<{ total_count: number }>(
      'getM2MTokens',
      'GET',
      `/m2m_tokens?subject=${caller.id}`,
      {
        key: caller.secretKey,
      },
    )
    expect(own.status).toBe(200)
    expect(own.body.total_count).toBe(1)
    const foreign = await call('getM2MTokens', 'GET', `/m2m_tokens?subject=${caller.id}`, {
      key: api.secretKey,
    })
    expect(foreign.status).toBe(403)
  })

  it('filters revoked and expired by default, includes them on request, pages newest first', async () => {
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      ids.push(
        (await create(caller.secretKey, { seconds_until_expiration: i === 1 ? 101 : 1000 })).body
          .id,
      )
      clock.advance(1)
    }
    await call('revokeM2MToken', 'POST', `/m2m_tokens/${ids[0]}/revoke`, {
      key: emulator.secretKey,
      body: {},
    })
    clock.advance(101_495)
    type List = { m2m_tokens: Token[]; total_count: number }
    const list = (q: string) =>
      call<List>('getM2MTokens', 'GET', `/m2m_tokens?subject=${caller.id}${q}`, {
        key: emulator.secretKey,
      })
    // ids[0] revoked; ids[1] (lifetime 101 s) expired by now; ids[2..4] live.
    expect((await list('')).body.m2m_tokens.map((t) => t.id)).toEqual([ids[4], ids[3], ids[2]])
    expect((await list('&revoked=true')).body.total_count).toBe(4)
    expect((await list('&expired=true')).body.total_count).toBe(4)
    const all = await list('&revoked=true&expired=true&limit=2&offset=1')
    expect(all.body.total_count).toBe(5)
    expect(all.body.m2m_tokens.map((t) => t.id)).toEqual([ids[3], ids[2]])
    expect(all.body.m2m_tokens.every((t) => typeof t.expired === 'boolean')).toBe(true)
    // Integral floats, as some Clerk SDKs send them.
    expect((await list('&limit=10.0&offset=0.0')).status).toBe(200)
  })

  it('400 for a missing or malformed subject and out-of-range paging; 404 for an unknown machine', async () => {
    const key = emulator.secretKey
    for (const q of [
      '',
      '?subject=',
      '?subject=abc',
      `?subject=${caller.id}&limit=0`,
      `?subject=${caller.id}&limit=101`,
      `?subject=${caller.id}&offset=-1`,
      `?subject=${caller.id}&limit=1.5`,
      `?subject=${caller.id}&revoked=maybe`,
      `?subject=${caller.id}&subject=${api.id}`,
    ]) {
      const res = await call('getM2MTokens', 'GET', `/m2m_tokens${q}`, { key })
      expect(res.status, q).toBe(400)
    }
    const unknown = await call('getM2MTokens', 'GET', `/m2m_tokens?subject=mch_${'0'.repeat(27)}`, {
      key,
    })
    expect(unknown.status).toBe(404)
  })
})

describe('revokeM2MToken', () => {
  it('a machine revokes only its own tokens; others get 404', async () => {
    const t = (await create(caller.secretKey)).body
    const foreign = await call('revokeM2MToken', 'POST', `/m2m_tokens/${t.id}/revoke`, {
      key: api.secretKey,
      body: {},
    })
    expect(foreign.status).toBe(404)
    const own = await call<Token>('revokeM2MToken', 'POST', `/m2m_tokens/${t.id}/revoke`, {
      key: caller.secretKey,
      body: { revocation_reason: null },
    })
    expect(own.status).toBe(200)
    expect(own.body).toMatchObject({ revoked: true, revocation_reason: null })
  })

  it('revoking twice keeps the first reason', async () => {
    const t = (await create(caller.secretKey)).body
    const path = `/m2m_tokens/${t.id}/revoke`
    await call('revokeM2MToken', 'POST', path, {
      key: emulator.secretKey,
      body: { revocation_reason: 'first' },
    })
    const again = await call<Token>('revokeM2MToken', 'POST', path, {
      key: emulator.secretKey,
      body: { revocation_reason: 'second' },
    })
    expect(again.status).toBe(200)
    expect(again.body.revocation_reason).toBe('first')
  })

  it('400 for a malformed id, 404 for an unknown one', async () => {
    const bad = await call('revokeM2MToken', 'POST', '/m2m_tokens/nope/revoke', {
      key: emulator.secretKey,
      body: {},
    })
    expect(bad.status).toBe(400)
    expect(errorCode(bad)).toBe('path_param_invalid')
    const unknown = await call(
      'revokeM2MToken',
      'POST',
      `/m2m_tokens/mt_${'a'.repeat(32)}/revoke`,
      {
        key: emulator.secretKey,
        body: {},
      },
    )
    expect(unknown.status).toBe(404)
  })
})

describe('stats', () => {
  it('counts requests per operation, and resets', async () => {
    emulator.resetStats()
    const t = (await create(caller.secretKey)).body
    await verify(api.secretKey, t.token)
    await verify(api.secretKey, t.token)
    await call(undefined, 'GET', '/nowhere')
    expect(emulator.stats()).toEqual({
      total: 4,
      faulted: 0,
      byOperation: { createM2MToken: 1, verifyM2MToken: 2, unknown: 1 },
    })
    emulator.resetStats()
    expect(emulator.stats()).toEqual({ total: 0, faulted: 0, byOperation: {} })
  })
})

describe('log', () => {
  it('one line per request, with no key or token in it', async () => {
    const lines: string[] = []
    const e = await startEmulator({ log: (line) => lines.push(line) })
    const m = await e.createMachine({ name: 'm' })
    const c = client(e)
    const t = await c<Token>('createM2MToken', 'POST', '/m2m_tokens', {
      key: m.secretKey,
      body: {},
    })
    await c('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: e.secretKey,
      body: { token: t.body.token },
    })
    await e.close()
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^POST \/v1\/m2m_tokens 201 \d+\.\dms$/)
    expect(lines[1]).toMatch(/^POST \/v1\/m2m_tokens\/verify 200 /)
    for (const secret of [m.secretKey, e.secretKey, t.body.token]) {
      expect(lines.join('\n')).not.toContain(secret)
    }
  })
})

describe('in-process createToken / revokeToken', () => {
  it('mint with the HTTP rules and revoke, visible over HTTP', async () => {
    const t = await emulator.createToken(caller.id, {
      secondsUntilExpiration: 60,
      claims: { a: 1 },
    })
    expect(t).toMatchObject({
      subject: caller.id,
      scopes: [api.id],
      claims: { a: 1 },
      expiration: clock.now() + 60_000,
      revocationReason: null,
      lastUsedAt: null,
    })
    expect((await verify(api.secretKey, t.token as string)).status).toBe(200)
    const revoked = await emulator.revokeToken(t.id, 'test')
    expect(revoked).toMatchObject({ revoked: true, revocationReason: 'test' })
    expect(errorCode(await verify(api.secretKey, t.token as string))).toBe('token_revoked')

    const jwt = await emulator.createToken(caller.id, { tokenFormat: 'jwt' })
    expect(jwt.token?.split('.')).toHaveLength(3)
    expect((await verify(api.secretKey, jwt.token as string)).status).toBe(200)
  })

  it('throw plain errors naming the problem', async () => {
    await expect(emulator.createToken(`mch_${'n'.repeat(27)}`)).rejects.toThrow(/not found/)
    await expect(emulator.createToken(caller.id, { secondsUntilExpiration: 0 })).rejects.toThrow(
      /seconds_until_expiration/,
    )
    await expect(emulator.revokeToken('mt_nope')).rejects.toThrow(/m2m_token_id/)
    await expect(emulator.revokeToken(`mt_${'0'.repeat(32)}`)).rejects.toThrow(/not found/)
  })
})
