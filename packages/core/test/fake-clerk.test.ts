import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type FakeClerk, startFakeClerk } from './support/fake-clerk.js'

// The fake guards the client's tests against drifting from the spec: prove that it notices.
describe('fake Clerk server', () => {
  let fake: FakeClerk
  beforeEach(async () => {
    fake = await startFakeClerk()
  })
  afterEach(() => fake.close())

  const post = (path: string, body: unknown) =>
    fetch(fake.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })

  it('answers with the spec examples and records the request', async () => {
    const res = await post('/v1/m2m_tokens/verify', { token: 'mt_x' })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ object: 'machine_to_machine_token' })
    expect(fake.requests).toMatchObject([
      {
        method: 'POST',
        path: '/v1/m2m_tokens/verify',
        body: { token: 'mt_x' },
        operationId: 'verifyM2MToken',
      },
    ])
    expect(fake.violations).toEqual([])
  })

  it('flags request bodies the spec forbids', async () => {
    await post('/v1/m2m_tokens', { token_format: 'x', extra: 1 })
    expect(fake.violations).toHaveLength(1)
    expect(fake.violations[0]).toContain('additional properties')
  })

  it('flags list queries the spec forbids', async () => {
    await fetch(`${fake.url}/v1/m2m_tokens?subject=bad&limit=500&revoked=yes&foo=1`)
    expect(fake.violations).toEqual([
      'unknown query parameter foo',
      'subject does not match ^mch_\\w{27}$',
      'revoked=yes is not a boolean',
      'limit > max',
    ])
  })

  it('flags its own scripted replies that the spec forbids', async () => {
    fake.enqueue({ status: 200, json: { object: 'machine_to_machine_token' } })
    fake.enqueue({ status: 503, json: { error: 'nope' } })
    await post('/v1/m2m_tokens/verify', { token: 'mt_x' })
    await post('/v1/m2m_tokens/verify', { token: 'mt_x' })
    expect(fake.violations).toHaveLength(2)
    expect(fake.violations[0]).toContain("must have required property 'id'")
    expect(fake.violations[1]).toContain("must have required property 'errors'")
  })

  it('answers unknown routes with a Clerk 404', async () => {
    const res = await fetch(`${fake.url}/m2m_tokens`)
    expect(res.status).toBe(404)
    expect(await res.json()).toMatchObject({ errors: [{ code: 'resource_not_found' }] })
  })
})
