/**
 * The shared tier end to end: the real verifier inside two workerd processes (two isolates,
 * each with its own in-process cache), sharing one KV namespace persisted to the same directory
 * (or one Cache API store), in front of the real emulator. Upstream calls are counted by the
 * emulator itself.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { M2MAuth, M2MEvent } from '@m2m-guard/core'
import { type Emulator, startEmulator } from '@m2m-guard/emulator'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { type Settled, startWorker, type TestWorker } from './support/harness.js'

type Verified = Settled<M2MAuth> & { events: M2MEvent[] }

let emulator: Emulator
let caller: { id: string }
let dir: string
let a: TestWorker
let b: TestWorker

const verifyCalls = () => emulator.stats().byOperation['verifyM2MToken'] ?? 0

// Every call names its verifier: a name not used before is a verifier with an empty memory, so
// whatever it knows it can only have from the shared tier or upstream.
let n = 0
const fresh = () => `v${++n}`

function verify(worker: TestWorker, backend: 'kv' | 'cache', name: string, token: string) {
  return worker.post<Verified>('/verify', { backend, name, token })
}

async function kvKeys(worker: TestWorker): Promise<string[]> {
  return (await worker.post<Settled<string[]>>('/raw', { backend: 'kv', op: 'list', key: '' })).ok!
}

beforeAll(async () => {
  emulator = await startEmulator({ port: 0 })
  caller = await emulator.createMachine({ name: 'caller' })
  dir = await mkdtemp(join(tmpdir(), 'm2m-guard-cf-'))
  const bindings = { API_URL: emulator.url, SECRET_KEY: emulator.secretKey }
  const persist = { kvPersist: join(dir, 'kv'), cachePersist: join(dir, 'cache') }
  a = await startWorker({ bindings, ...persist })
  b = await startWorker({ bindings, ...persist })
}, 60_000)

afterAll(async () => {
  await a?.dispose()
  await b?.dispose()
  await emulator?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

beforeEach(() => emulator.resetStats())

describe.each(['kv', 'cache'] as const)('%s tier shared by two isolates', (backend) => {
  it('verifies on the second isolate what the first verified, with zero upstream calls', async () => {
    const { token, id } = await emulator.createToken(caller.id)
    const first = await verify(a, backend, fresh(), token!)
    expect(first.ok).toMatchObject({ id, subject: caller.id })
    expect(verifyCalls()).toBe(1)
    await a.writesLanded()

    const second = await verify(b, backend, fresh(), token!)
    expect(second.ok).toEqual(first.ok)
    expect(second.events).toContainEqual({ type: 'cache_hit', id, tier: 'store' })
    expect(verifyCalls()).toBe(1)
  })

  it('lets the shared entry expire with the token', async () => {
    const { token, id } = await emulator.createToken(caller.id, { secondsUntilExpiration: 2 })
    await verify(a, backend, fresh(), token!)
    await a.writesLanded()
    expect((await verify(b, backend, fresh(), token!)).ok).toMatchObject({ id })
    expect(verifyCalls()).toBe(1)

    await new Promise((resolve) => setTimeout(resolve, 2_200))
    const late = await verify(b, backend, fresh(), token!)
    expect(late.error).toMatchObject({ name: 'M2MAuthError', code: 'token_expired' })
    expect(late.events).not.toContainEqual(expect.objectContaining({ type: 'cache_hit' }))
    expect(verifyCalls()).toBe(2)
  })

  it('drops the shared entry when one isolate revokes the token', async () => {
    const { token, id } = await emulator.createToken(caller.id)
    const revoker = fresh()
    await verify(a, backend, revoker, token!)
    await a.writesLanded()
    expect((await a.post<Settled>('/revoke', { backend, name: revoker, id })).error).toBeUndefined()
    await a.writesLanded()
    emulator.resetStats()

    const after = await verify(b, backend, fresh(), token!)
    expect(after.error).toMatchObject({ code: 'token_revoked' })
    expect(verifyCalls()).toBe(1)
  })
})

describe('kv tier: a value that fails validation is a miss, never an admit', () => {
  it('rejects a revoked token through upstream once its shared entry is corrupted', async () => {
    const { token, id } = await emulator.createToken(caller.id)
    const before = new Set(await kvKeys(a))
    await verify(a, 'kv', fresh(), token!)
    await a.writesLanded()
    const [key] = (await kvKeys(a)).filter((k) => !before.has(k))
    expect(key).toBeDefined()
    const raw = await a.post<Settled<string>>('/raw', { backend: 'kv', op: 'get', key })
    expect(raw.ok).not.toContain(token!)

    // Revoked upstream behind the tier's back: an intact entry still admits (the revocation
    // bound is the entry's life) ...
    await emulator.revokeToken(id)
    emulator.resetStats()
    expect((await verify(b, 'kv', fresh(), token!)).ok).toMatchObject({ id })
    expect(verifyCalls()).toBe(0)

    // ... but the same entry, altered, is a miss: the verifier asks upstream and rejects.
    const altered = JSON.parse(raw.ok!) as Record<string, unknown>
    for (const body of ['{"m2mg":1,"expiresAt":', JSON.stringify({ ...altered, m2mg: 3 })]) {
      await b.post('/raw', { backend: 'kv', op: 'put', key, body })
      emulator.resetStats()
      const result = await verify(b, 'kv', fresh(), token!)
      expect(result.error).toMatchObject({ code: 'token_revoked' })
      expect(result.events).toContainEqual(
        expect.objectContaining({ type: 'store_error', operation: 'get' }),
      )
      expect(verifyCalls()).toBe(1)
    }
  })
})
