import { readdirSync, readFileSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { transportName } from '#transport'
import { type FakeClerk, startFakeClerk } from '../../test/support/fake-clerk.js'
import { buildM2MClient } from './client.js'
import { BodyTooLargeError, CallAbort, MAX_BODY_BYTES } from './transport.js'
import * as fetchTransport from './transport-fetch.js'
import * as nodeTransport from './transport-node.js'

const TOKEN = 'mt_0123456789abcdef0123456789abcdef'

describe('#transport', () => {
  it('resolves to undici under the node condition', () => {
    expect(transportName).toBe('undici')
  })

  it('both transports export the same API', () => {
    expect(Object.keys(fetchTransport).sort()).toEqual(Object.keys(nodeTransport).sort())
    expect(fetchTransport.transportName).toBe('fetch')
  })

  it('no Node-only API outside the Node transport (the core runs on workerd and Bun)', () => {
    const dir = new URL('./', import.meta.url)
    const sources = readdirSync(dir).filter(
      (name) => name.endsWith('.ts') && !name.endsWith('.test.ts') && name !== 'transport-node.ts',
    )
    expect(sources.length).toBeGreaterThan(5)
    for (const name of sources) {
      // Code only: JSDoc examples may mention process.env.
      const text = readFileSync(new URL(name, dir), 'utf8').replace(
        /\/\*[\s\S]*?\*\/|\/\/.*$/gm,
        '',
      )
      expect(text, name).not.toMatch(/from 'node:|from 'undici'|\bBuffer\.|\bprocess\.env\b/)
    }
  })
})

describe('undici transport', () => {
  let fake: FakeClerk
  beforeEach(async () => {
    fake = await startFakeClerk()
  })
  afterEach(() => fake.close())

  it('keeps connections alive and shares one pool per origin across clients', async () => {
    const options = { secretKey: 'sk_test_one_abcdefgh', apiUrl: fake.url }
    const a = buildM2MClient(options, { transport: nodeTransport.send })
    const b = buildM2MClient(
      { ...options, secretKey: 'sk_test_two_abcdefgh' },
      { transport: nodeTransport.send },
    )
    for (let i = 0; i < 5; i++) {
      await a.verifyToken({ token: TOKEN })
      await b.listTokens({ subject: 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk' })
    }
    expect(fake.requests).toHaveLength(10)
    // undici may open a second socket when the next request starts before it has filed the last
    // response as complete; without keep-alive and sharing this would be 10.
    expect(fake.connections).toBeLessThanOrEqual(2)
    expect(new Set(fake.requests.map((r) => r.headers.authorization))).toEqual(
      new Set(['Bearer sk_test_one_abcdefgh', 'Bearer sk_test_two_abcdefgh']),
    )
  })

  it('refuses a body over the cap, declared or not, and the client reports invalid_response', async () => {
    const huge = 'x'.repeat(MAX_BODY_BYTES + 1)
    const abort = new CallAbort()
    const request = {
      method: 'POST' as const,
      origin: fake.url,
      path: '/v1/m2m_tokens/verify',
      headers: { authorization: 'Bearer sk_test_abcdefgh', 'content-type': 'application/json' },
      body: JSON.stringify({ token: TOKEN }),
      abort,
    }
    // Declared length over the cap.
    fake.enqueue({ status: 200, text: huge, headers: { 'content-type': 'application/json' } })
    const declared = await nodeTransport.send(request)
    await expect(declared.text()).rejects.toBeInstanceOf(BodyTooLargeError)
    // Chunked, so only the bytes received tell.
    fake.enqueue({
      status: 200,
      text: huge,
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    })
    const chunked = await nodeTransport.send(request)
    await expect(chunked.text()).rejects.toBeInstanceOf(BodyTooLargeError)
    fake.enqueue({ status: 200, text: huge, headers: { 'content-type': 'application/json' } })
    const client = buildM2MClient(
      { secretKey: 'sk_test_abcdefgh', apiUrl: fake.url, retry: false },
      { transport: nodeTransport.send },
    )
    await expect(client.verifyToken({ token: TOKEN })).rejects.toMatchObject({
      code: 'invalid_response',
    })
  })

  it('aborts a request in flight through CallAbort (no AbortSignal involved)', async () => {
    fake.enqueue({ hang: true })
    const abort = new CallAbort()
    const pending = nodeTransport.send({
      method: 'POST',
      origin: fake.url,
      path: '/v1/m2m_tokens/verify',
      headers: { authorization: 'Bearer sk_test_abcdefgh', 'content-type': 'application/json' },
      body: JSON.stringify({ token: TOKEN }),
      abort,
    })
    setTimeout(() => abort.abort(new Error('stop')), 20)
    await expect(pending).rejects.toThrow('stop')
  })

  it('closeTransport closes the pools; the next request opens a new one', async () => {
    const client = buildM2MClient(
      { secretKey: 'sk_test_abcdefgh', apiUrl: fake.url },
      { transport: nodeTransport.send },
    )
    await client.verifyToken({ token: TOKEN })
    const before = fake.connections
    await nodeTransport.closeTransport()
    await client.verifyToken({ token: TOKEN })
    expect(fake.connections).toBe(before + 1)
  })
})

describe('CallAbort', () => {
  it('runs each listener once, honours removeListener, and ignores a throwing listener', () => {
    const abort = new CallAbort()
    const seen: string[] = []
    const removed = () => seen.push('removed')
    abort.on('abort', () => {
      throw new Error('listener bug')
    })
    abort.once('abort', () => seen.push('a'))
    abort.on('abort', removed)
    abort.on('other', () => seen.push('other'))
    abort.off('abort', removed)
    expect(abort.aborted).toBe(false)
    abort.abort('why')
    abort.abort('again')
    expect(seen).toEqual(['a'])
    expect(abort.aborted).toBe(true)
    expect(abort.reason).toBe('why')
    abort.on('abort', () => seen.push('late'))
    expect(seen).toEqual(['a'])
  })

  it('mirrors into a standard AbortSignal made on demand, before or after the abort', () => {
    const early = new CallAbort()
    const signal = early.signal
    expect(early.signal).toBe(signal)
    expect(signal.aborted).toBe(false)
    early.abort('deadline')
    expect(signal.aborted).toBe(true)
    expect(signal.reason).toBe('deadline')
    const late = new CallAbort()
    late.abort('caller')
    expect(late.signal.aborted).toBe(true)
    expect(late.signal.reason).toBe('caller')
  })
})
