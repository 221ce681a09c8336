import { fileURLToPath } from 'node:url'
import { Miniflare } from 'miniflare'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bundleWorker } from '../../../test/support/bundle-worker.js'
import { clerkErrors, exampleToken, type FakeClerk, startFakeClerk } from './support/fake-clerk.js'

const ENTRY = fileURLToPath(new URL('./support/client-worker.ts', import.meta.url))
const SECRET = 'sk_test_workerdSecretKeyValue0123'

// The client inside workerd, bundled the way wrangler would (worker conditions first), so
// `#transport` resolves to the fetch transport and no Node API may be reached.
describe('client in workerd (Miniflare)', () => {
  let fake: FakeClerk
  let mf: Miniflare
  let bundle: string

  beforeAll(async () => {
    fake = await startFakeClerk()
    fake.handle((request) => {
      const token = (request.body as { token?: string } | undefined)?.token
      if (token === 'mt_unknown_token_value') {
        return { status: 404, json: clerkErrors('resource_not_found', 'not found') }
      }
      if (token === 'mt_hang') return { hang: true }
      if (request.operationId === 'getM2MTokens') {
        const offset = Number(request.query.offset)
        return { status: 200, json: { m2m_tokens: [exampleToken(offset)], total_count: 3 } }
      }
      return undefined
    })
    bundle = await bundleWorker(ENTRY)
    mf = new Miniflare({
      modules: true,
      script: bundle,
      compatibilityDate: '2024-09-23',
      bindings: { API_URL: fake.url, SECRET_KEY: SECRET },
    })
  }, 60_000)

  afterAll(async () => {
    await mf?.dispose()
    await fake?.close()
  })

  it('bundles the fetch transport, not undici', () => {
    expect(bundle).not.toMatch(/from ["']undici["']|require\(["']undici["']\)/)
    expect(bundle).not.toContain('node:')
  })

  it('runs every operation, errors and timeouts included', async () => {
    const res = await mf.dispatchFetch('http://worker/')
    const out = (await res.json()) as Record<string, Record<string, unknown>>
    expect(out.apiUrl).toBe(`${fake.url}/v1`)
    expect(out.keyFingerprint).toMatch(/^[0-9a-f]{16}$/)
    expect(out.noKey!.error).toMatchObject({ name: 'TypeError' })
    expect(String((out.noKey!.error as { message: string }).message)).toMatch(
      /CLERK_MACHINE_SECRET_KEY.*CLERK_SECRET_KEY/,
    )
    expect(out.created!.ok).toMatchObject({
      object: 'machine_to_machine_token',
      token: expect.any(String),
    })
    expect(out.verified!.ok).toMatchObject({
      id: 'mt_f7f0ba8c3b4843ce7d85fcdd5e71853e',
      lastUsedAt: 1716883200000,
    })
    expect(out.listed!.ok).toEqual([0, 1, 2].map((i) => exampleToken(i).id))
    expect(out.revoked!.ok).toMatchObject({ revoked: true, revocationReason: 'r' })
    expect(out.unknown!.error).toMatchObject({
      name: 'M2MApiError',
      status: 404,
      code: 'resource_not_found',
    })
    expect(out.timedOut!.error).toMatchObject({ name: 'M2MConnectionError', code: 'timeout' })
    expect(out.invalid!.error).toMatchObject({ name: 'RangeError' })
    expect(JSON.stringify(out)).not.toContain(SECRET)

    const verify = fake.requests.find((r) => r.operationId === 'verifyM2MToken')!
    expect(verify.headers.authorization).toBe(`Bearer ${SECRET}`)
    expect(verify.headers['user-agent']).toBe('m2m-guard/0.1.0')
    expect(fake.requests.filter((r) => r.operationId === 'getM2MTokens')).toHaveLength(3)
    expect(fake.violations).toEqual([])
  })
})
