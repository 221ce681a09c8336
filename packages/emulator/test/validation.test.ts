import { request } from 'node:http'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Emulator, type EmulatorMachine, startEmulator } from '../src/index.js'
import { type Call, client, errorCode, type Token, validate } from './helpers.js'

let emulator: Emulator
let call: Call
let caller: EmulatorMachine
let api: EmulatorMachine

beforeAll(async () => {
  emulator = await startEmulator()
  call = client(emulator)
  api = await emulator.createMachine({ name: 'api' })
  caller = await emulator.createMachine({ name: 'caller', scopedMachines: [api.id] })
})
afterAll(() => emulator.close())

describe('malformed bodies get a Clerk 400', () => {
  const create = (raw: string) =>
    call('createM2MToken', 'POST', '/m2m_tokens', { key: caller.secretKey, raw })

  it('bad JSON and non-object JSON', async () => {
    for (const raw of ['{', '{"a":', 'nul', '[1,2]', '"text"', '42', 'null', 'true']) {
      const res = await create(raw)
      expect(res.status, raw).toBe(400)
      expect(errorCode(res), raw).toBe('malformed_request_body')
    }
  })

  it('unknown fields (additionalProperties: false)', async () => {
    const cases: [string, string, string, string, unknown][] = [
      ['createM2MToken', 'POST', '/m2m_tokens', caller.secretKey, { ttl: 5 }],
      ['verifyM2MToken', 'POST', '/m2m_tokens/verify', api.secretKey, { token: 'mt_x', extra: 1 }],
      [
        'revokeM2MToken',
        'POST',
        `/m2m_tokens/mt_${'0'.repeat(32)}/revoke`,
        emulator.secretKey,
        { reason: 'x' },
      ],
      ['CreateMachine', 'POST', '/machines', emulator.secretKey, { name: 'x', scopes: [] }],
      ['UpdateMachine', 'PATCH', `/machines/${api.id}`, emulator.secretKey, { id: 'x' }],
      [
        'RotateMachineSecretKey',
        'POST',
        `/machines/${api.id}/secret_key/rotate`,
        emulator.secretKey,
        { previous_token_ttl: 1, x: 1 },
      ],
      [
        'CreateMachineScope',
        'POST',
        `/machines/${api.id}/scopes`,
        emulator.secretKey,
        { to_machine_id: caller.id, y: 2 },
      ],
    ]
    for (const [op, method, path, key, body] of cases) {
      const res = await call(op, method, path, { key, body })
      expect(res.status, op).toBe(400)
      expect(errorCode(res), op).toBe('form_param_unknown')
    }
  })

  it('wrong types and out-of-range values', async () => {
    const bodies = [
      { token_format: 'xml' },
      { token_format: 1 },
      { seconds_until_expiration: '60' },
      { seconds_until_expiration: 0 },
      { seconds_until_expiration: -5 },
      { seconds_until_expiration: 1e12 },
      { min_remaining_ttl_seconds: -1 },
      { min_remaining_ttl_seconds: 1.5 },
      { min_remaining_ttl_seconds: null },
      { claims: JSON.parse(`${'{"a":'.repeat(40)}1${'}'.repeat(40)}`) },
    ]
    for (const body of bodies) {
      const res = await call('createM2MToken', 'POST', '/m2m_tokens', {
        key: caller.secretKey,
        body,
      })
      expect(res.status, JSON.stringify(body).slice(0, 60)).toBe(400)
    }
    for (const body of [{}, { token: 5 }, { token: '' }, { token: null }]) {
      const res = await call('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
        key: api.secretKey,
        body,
      })
      expect(res.status, JSON.stringify(body)).toBe(400)
    }
    for (const body of [
      { name: '' },
      { name: 'x'.repeat(256) },
      {},
      { name: 'x', default_token_ttl: 0 },
      { name: 'x', scoped_machines: 'a' },
      { name: 'x', scoped_machines: [1] },
    ]) {
      const res = await call('CreateMachine', 'POST', '/machines', {
        key: emulator.secretKey,
        body,
      })
      expect(res.status, JSON.stringify(body)).toBe(400)
    }
    const reason = await call('revokeM2MToken', 'POST', `/m2m_tokens/mt_${'0'.repeat(32)}/revoke`, {
      key: emulator.secretKey,
      body: { revocation_reason: 5 },
    })
    expect(reason.status).toBe(400)
  })

  it('bad path ids', async () => {
    const key = emulator.secretKey
    for (const path of [
      '/m2m_tokens/mt_xyz/revoke',
      '/m2m_tokens/%ZZ/revoke',
      `/m2m_tokens/mt_${'g'.repeat(32)}/revoke`,
    ]) {
      expect((await call('revokeM2MToken', 'POST', path, { key, body: {} })).status, path).toBe(400)
    }
    expect((await call('GetMachine', 'GET', '/machines/nope', { key })).status).toBe(400)
    expect(
      (await call('GetMachine', 'GET', `/machines/mch_${'q'.repeat(27)}`, { key })).status,
    ).toBe(404)
  })

  it('oversized bodies get 413, drained when moderate', async () => {
    const big = JSON.stringify({ claims: 'x'.repeat(70 * 1024) })
    const res = await call('createM2MToken', 'POST', '/m2m_tokens', {
      key: caller.secretKey,
      raw: big,
    })
    expect(res.status).toBe(413)
    expect(errorCode(res)).toBe('request_body_too_large')
    // Just under the limit is fine.
    const ok = await call('createM2MToken', 'POST', '/m2m_tokens', {
      key: caller.secretKey,
      raw: JSON.stringify({ claims: 'x'.repeat(60 * 1024) }),
    })
    expect(ok.status).toBe(201)
  })

  it('a huge body is refused without reading it, and the emulator keeps serving', async () => {
    const status = await new Promise<number | 'reset'>((resolve) => {
      const req = request(`${emulator.url}/v1/m2m_tokens`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${caller.secretKey}`,
          'content-length': String(8 * 1024 * 1024),
        },
      })
      req.on('response', (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', () => resolve('reset'))
      req.write(Buffer.alloc(64 * 1024, 0x20))
    })
    expect([413, 'reset']).toContain(status)
    const after = await call('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: api.secretKey,
      body: { token: 'mt_x' },
    })
    expect(after.status).toBe(404)
  })
})

describe('routing', () => {
  it('unknown routes are 404 and wrong methods 405 with Allow, in Clerk’s shape', async () => {
    for (const path of ['/nowhere', '/m2m_tokens/x/y/z', '/v2/m2m_tokens', '/machines/a/b/c/d']) {
      const res = await call(undefined, 'GET', path, { key: emulator.secretKey, prefix: '' })
      expect(res.status, path).toBe(404)
      expect(errorCode(res)).toBe('resource_not_found')
    }
    const wrong = await call(undefined, 'PUT', '/m2m_tokens', { key: emulator.secretKey })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('allow')).toBe('POST, GET')
    const del = await call(undefined, 'DELETE', '/m2m_tokens/verify', { key: emulator.secretKey })
    expect(del.status).toBe(405)
  })
})

describe('fuzz: never a 500, never a hang, always Clerk-shaped', () => {
  const allowed = new Set([200, 201, 400, 401, 403, 404, 409, 413])
  const ops: [string, string, string][] = [
    ['createM2MToken', 'POST', '/m2m_tokens'],
    ['verifyM2MToken', 'POST', '/m2m_tokens/verify'],
    ['revokeM2MToken', 'POST', `/m2m_tokens/mt_${'0'.repeat(32)}/revoke`],
    ['CreateMachine', 'POST', '/machines'],
    [
      'RotateMachineSecretKey',
      'POST',
      '/machines/mch_000000000000000000000000000/secret_key/rotate',
    ],
    ['CreateMachineScope', 'POST', '/machines/mch_000000000000000000000000000/scopes'],
  ]

  it('random JSON and random bytes as bodies', async () => {
    const keys = () => [caller.secretKey, api.secretKey, emulator.secretKey, 'ak_nope', '']
    const body = fc.oneof(
      fc.json(),
      fc.string(),
      fc
        .record(
          {
            token_format: fc.oneof(fc.constantFrom('opaque', 'jwt'), fc.anything()),
            seconds_until_expiration: fc.oneof(fc.double(), fc.constant(null), fc.integer()),
            claims: fc.jsonValue(),
            min_remaining_ttl_seconds: fc.oneof(fc.integer(), fc.double()),
            token: fc.oneof(fc.string(), fc.constant('mt_x')),
            name: fc.string(),
            previous_token_ttl: fc.integer(),
            to_machine_id: fc.string(),
          },
          { requiredKeys: [] },
        )
        .map((o) => JSON.stringify(o)),
    )
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ops),
        fc.constantFrom(...keys()),
        body,
        async ([op, method, path], key, raw) => {
          const res = await fetch(`${emulator.apiUrl}${path}`, {
            method,
            headers: key ? { authorization: `Bearer ${key}` } : {},
            body: raw,
          })
          const text = await res.text()
          expect(allowed.has(res.status), `${res.status} ${text}`).toBe(true)
          validate(op, res.status, res.headers, JSON.parse(text))
        },
      ),
      { numRuns: 150 },
    )
  })

  it('random query strings', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(['getM2MTokens', '/m2m_tokens'], ['ListMachines', '/machines']),
        fc.array(
          fc.tuple(
            fc.constantFrom(
              'subject',
              'limit',
              'offset',
              'revoked',
              'expired',
              'query',
              'order_by',
              'x',
            ),
            fc.oneof(
              fc.string(),
              fc.integer().map(String),
              fc.constantFrom(caller.id, 'true', '1e3', '10.0', '-0'),
            ),
          ),
          { maxLength: 5 },
        ),
        async ([op, path], pairs) => {
          const qs = new URLSearchParams(pairs).toString()
          const res = await fetch(`${emulator.apiUrl}${path}?${qs}`, {
            headers: { authorization: `Bearer ${emulator.secretKey}` },
          })
          const text = await res.text()
          expect(allowed.has(res.status), `${res.status} ${text}`).toBe(true)
          validate(op, res.status, res.headers, JSON.parse(text))
        },
      ),
      { numRuns: 150 },
    )
  })

  it('random paths', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.constantFrom(
              'v1',
              'm2m_tokens',
              'machines',
              'verify',
              'revoke',
              'scopes',
              'secret_key',
              'rotate',
              'jwks',
              `mch_${'0'.repeat(27)}`,
            ),
            fc.webSegment(),
          ),
          { maxLength: 6 },
        ),
        fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE'),
        async (segments, method) => {
          const res = await fetch(`${emulator.url}/${segments.join('/')}`, {
            method,
            headers: { authorization: `Bearer ${emulator.secretKey}` },
            ...(method === 'GET' ? {} : { body: '{}' }),
          })
          const text = await res.text()
          expect(res.status, `${method} /${segments.join('/')} ${text}`).toBeLessThan(500)
          expect(res.headers.get('content-type')).toBe('application/json')
          JSON.parse(text)
        },
      ),
      { numRuns: 150 },
    )
  })
})

describe('tokens stay intact under fuzzing', () => {
  it('a token minted before the fuzz still verifies', async () => {
    const t = await call<Token>('createM2MToken', 'POST', '/m2m_tokens', {
      key: caller.secretKey,
      body: {},
    })
    const v = await call('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: api.secretKey,
      body: { token: t.body.token },
    })
    expect(v.status).toBe(200)
  })
})
