/**
 * The smoke test every example runs: boot it against the real emulator, then a scoped token gets
 * 200 with the caller's identity, no token gets 401 with a bare challenge, and /health is public.
 * One suite, so the examples cannot drift apart in what they promise.
 */
import { createM2MClient } from '@m2m-guard/core'
import { type Emulator, startEmulator } from '@m2m-guard/emulator'
import { afterAll, beforeAll, expect, it } from 'vitest'

/** What an example's `start()` resolves to. */
export interface RunningExample {
  url: string
  close(): Promise<void>
}

/** The options every example's `start()` takes. */
export interface ExampleStartOptions {
  port: number
  apiUrl: string
  secretKey: string
  machineId: string
}

/**
 * Registers the smoke tests for one example.
 *
 * @example
 * smokeTestExample('express', start)
 */
export function smokeTestExample(
  service: string,
  start: (options: ExampleStartOptions) => Promise<RunningExample>,
): void {
  let emulator: Emulator
  let server: RunningExample
  let callerId = ''
  let token = ''

  beforeAll(async () => {
    emulator = await startEmulator({ port: 0 })
    const receiver = await emulator.createMachine({ name: 'reports' })
    const caller = await emulator.createMachine({ name: 'cron', scopedMachines: [receiver.id] })
    callerId = caller.id
    // The receiver verifies with its own machine key, as a deployed service would.
    server = await start({
      port: 0,
      apiUrl: emulator.url,
      secretKey: receiver.secretKey,
      machineId: receiver.id,
    })
    const client = createM2MClient({ apiUrl: emulator.url, secretKey: caller.secretKey })
    token = (await client.createToken({ secondsUntilExpiration: 60 })).token
  })

  afterAll(async () => {
    await server?.close()
    await emulator?.close()
  })

  it('answers 200 with the caller identity for a scoped token', async () => {
    const res = await fetch(`${server.url}/internal/report`, {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ service, caller: callerId })
    expect(emulator.stats().byOperation['verifyM2MToken']).toBe(1)
  })

  it('answers 401 with a Bearer challenge without a token', async () => {
    const res = await fetch(`${server.url}/internal/report`)
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="api"')
    expect(await res.json()).toMatchObject({ error: 'missing_token' })
  })

  it('keeps /health public', async () => {
    const res = await fetch(`${server.url}/health`)
    expect(res.status).toBe(200)
  })
}
