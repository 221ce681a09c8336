import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { type Emulator, type EmulatorMachine, startEmulator } from '../src/index.js'
import { type Call, client, errorCode, type Token } from './helpers.js'

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
beforeEach(() => {
  emulator.clearFaults()
  emulator.resetStats()
})
afterAll(() => emulator.close())

const mint = () =>
  call<Token>('createM2MToken', 'POST', '/m2m_tokens', { key: caller.secretKey, body: {} })
const verify = (token: string) =>
  call<Token>('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
    key: api.secretKey,
    body: { token },
  })

describe('faults', () => {
  it('latencyMs delays answers', async () => {
    emulator.setFaults({ latencyMs: 150 })
    const started = performance.now()
    expect((await mint()).status).toBe(201)
    expect(performance.now() - started).toBeGreaterThanOrEqual(140)
    emulator.setFaults({ latencyMs: null })
    expect(emulator.faults()).toEqual({})
  })

  it('errorRate answers 5xx in Clerk’s shape, before auth', async () => {
    emulator.setFaults({ errorRate: 1 })
    const res = await call('verifyM2MToken', 'POST', '/m2m_tokens/verify', { body: { token: 'x' } })
    expect(res.status).toBe(503)
    expect(errorCode(res)).toBe('service_unavailable')
    emulator.setFaults({ errorStatus: 502 })
    expect((await mint()).status).toBe(502)
    expect(emulator.stats()).toMatchObject({ total: 2, faulted: 2 })
  })

  it('rateLimit answers 429 with Retry-After', async () => {
    emulator.setFaults({ rateLimit: { rate: 1, retryAfterSeconds: 7 } })
    const res = await mint()
    expect(res.status).toBe(429)
    expect(res.headers.get('retry-after')).toBe('7')
    expect(errorCode(res)).toBe('too_many_requests')
  })

  it('operations limits a fault to some operations', async () => {
    emulator.setFaults({ errorRate: 1, operations: ['verifyM2MToken'] })
    const t = await mint()
    expect(t.status).toBe(201)
    expect((await verify(t.body.token)).status).toBe(503)
    emulator.clearFaults()
    expect((await verify(t.body.token)).status).toBe(200)
  })

  it('dropRate sends headers then cuts the connection; the request itself was handled', async () => {
    emulator.setFaults({ dropRate: 1, operations: ['createM2MToken'] })
    const res = await fetch(`${emulator.apiUrl}/m2m_tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${caller.secretKey}` },
      body: '{}',
    })
    expect(res.status).toBe(201)
    await expect(res.text()).rejects.toThrow()
    emulator.clearFaults()
    const list = await call<{ total_count: number }>(
      'getM2MTokens',
      'GET',
      `/m2m_tokens?subject=${caller.id}`,
      {
        key: emulator.secretKey,
      },
    )
    expect(list.body.total_count).toBeGreaterThanOrEqual(1)
    expect(emulator.stats().faulted).toBe(1)
  })

  it('trickleMs writes the body slowly but completely', async () => {
    emulator.setFaults({ trickleMs: 5 })
    const started = performance.now()
    const res = await mint()
    expect(res.status).toBe(201)
    expect(res.body.token).toMatch(/^mt_/)
    // ~400 bytes in 16-byte chunks, 5 ms apart.
    expect(performance.now() - started).toBeGreaterThan(50)
  })

  it('down destroys connections; clearing brings the API back', async () => {
    emulator.setFaults({ down: true })
    await expect(fetch(`${emulator.apiUrl}/jwks`)).rejects.toThrow()
    expect(emulator.stats()).toMatchObject({ total: 1, faulted: 1 })
    emulator.setFaults({})
    expect((await mint()).status).toBe(201)
  })

  it('a seed makes fractional rates reproducible', async () => {
    const run = async () => {
      emulator.setFaults({ errorRate: 0.5, seed: 42 })
      const statuses: number[] = []
      for (let i = 0; i < 12; i++)
        statuses.push((await call('getJwks', 'GET', '/jwks', { key: api.secretKey })).status)
      return statuses
    }
    const first = await run()
    expect(await run()).toEqual(first)
    expect(first).toContain(200)
    expect(first).toContain(503)
  })

  it('setFaults rejects bad values, naming the key', () => {
    expect(() => emulator.setFaults({ errorRate: 2 })).toThrow(/errorRate/)
    expect(() => emulator.setFaults({ errorStatus: 404 })).toThrow(/errorStatus/)
    expect(() => emulator.setFaults({ rateLimit: { rate: -1 } })).toThrow(/rateLimit/)
    expect(() => emulator.setFaults({ nope: 1 } as never)).toThrow(/nope/)
    expect(emulator.faults()).toEqual({})
  })
})

describe('admin endpoint /__emulator/faults', () => {
  const admin = (method: string, key: string | undefined, body?: unknown) =>
    fetch(`${emulator.url}/__emulator/faults`, {
      method,
      headers: key ? { authorization: `Bearer ${key}` } : {},
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })

  it('sets, reads and clears faults with the instance key', async () => {
    const set = await admin('POST', emulator.secretKey, {
      errorRate: 1,
      operations: ['verifyM2MToken'],
    })
    expect(set.status).toBe(200)
    expect(await set.json()).toEqual({ errorRate: 1, operations: ['verifyM2MToken'] })
    expect(emulator.faults()).toEqual({ errorRate: 1, operations: ['verifyM2MToken'] })
    expect((await verify('mt_x')).status).toBe(503)
    expect(await (await admin('GET', emulator.secretKey)).json()).toEqual(emulator.faults())
    const cleared = await admin('DELETE', emulator.secretKey)
    expect(await cleared.json()).toEqual({})
    expect((await verify('mt_x')).status).toBe(404)
  })

  it('401 without a key, 403 with a machine key, 400 on bad values; never faulted itself', async () => {
    expect((await admin('POST', undefined, { down: true })).status).toBe(401)
    expect((await admin('POST', caller.secretKey, { down: true })).status).toBe(403)
    const bad = await admin('POST', emulator.secretKey, { latencyMs: 'slow' })
    expect(bad.status).toBe(400)
    expect(
      ((await bad.json()) as { errors: { long_message: string }[] }).errors[0]?.long_message,
    ).toMatch(/latencyMs/)
    emulator.setFaults({ down: true })
    expect((await admin('DELETE', emulator.secretKey)).status).toBe(200)
    expect((await mint()).status).toBe(201)
  })

  it('stats over HTTP', async () => {
    await mint()
    const res = await fetch(`${emulator.url}/__emulator/stats`, {
      headers: { authorization: `Bearer ${emulator.secretKey}` },
    })
    expect(await res.json()).toEqual({ total: 1, faulted: 0, byOperation: { createM2MToken: 1 } })
    const reset = await fetch(`${emulator.url}/__emulator/stats/reset`, {
      method: 'POST',
      headers: { authorization: `Bearer ${emulator.secretKey}` },
    })
    expect(await reset.json()).toEqual({ total: 0, faulted: 0, byOperation: {} })
  })
})

describe('close', () => {
  it('does not wait for requests stuck in latency or trickle', async () => {
    const e = await startEmulator({ faults: { latencyMs: 60_000 } })
    const pending = fetch(`${e.apiUrl}/jwks`).catch((err: unknown) => err)
    await new Promise((r) => setTimeout(r, 50))
    const started = performance.now()
    await e.close()
    expect(performance.now() - started).toBeLessThan(2000)
    expect(await pending).toBeInstanceOf(Error)
  })
})
