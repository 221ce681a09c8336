/**
 * The README's Hono example in workerd: `requireM2M` with a `kvCacheStore` built from `c.env`,
 * in two workerd processes sharing one KV directory, in front of the emulator.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Emulator, startEmulator } from '@m2m-guard/emulator'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startWorker, type TestWorker } from './support/harness.js'

let emulator: Emulator
let dir: string
let a: TestWorker
let b: TestWorker

beforeAll(async () => {
  emulator = await startEmulator({ port: 0 })
  dir = await mkdtemp(join(tmpdir(), 'm2m-guard-cf-hono-'))
  const bindings = { CLERK_API_URL: emulator.url, CLERK_SECRET_KEY: emulator.secretKey }
  const kvPersist = join(dir, 'kv')
  a = await startWorker({ entry: 'hono-worker.ts', bindings, kvPersist })
  b = await startWorker({ entry: 'hono-worker.ts', bindings, kvPersist })
}, 60_000)

afterAll(async () => {
  await a?.dispose()
  await b?.dispose()
  await emulator?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function until(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

it('serves a token on a second isolate from KV, with zero upstream calls', async () => {
  const machine = await emulator.createMachine({ name: 'reports-cron' })
  const { token } = await emulator.createToken(machine.id)
  const headers = { authorization: `Bearer ${token}` }

  const first = await a.dispatch('/internal/report', { headers })
  expect(first.status).toBe(200)
  expect(await first.json()).toEqual({ caller: machine.id })
  expect(emulator.stats().byOperation['verifyM2MToken']).toBe(1)
  // The write happens after the answer (kept alive by waitUntil); wait until it is in KV.
  await until(async () => (await a.kvKeys()).length === 1)
  const [key] = await a.kvKeys()
  expect(key).not.toContain(token!.slice(3))

  const second = await b.dispatch('/internal/report', { headers })
  expect(second.status).toBe(200)
  expect(await second.json()).toEqual({ caller: machine.id })
  expect(emulator.stats().byOperation['verifyM2MToken']).toBe(1)

  const unknown = await b.dispatch('/internal/report', {
    headers: { authorization: `Bearer mt_${'0'.repeat(48)}` },
  })
  expect(unknown.status).toBe(401)
  expect(emulator.stats().byOperation['verifyM2MToken']).toBe(2)
})
