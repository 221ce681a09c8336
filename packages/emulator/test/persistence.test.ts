import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type EmulatorSeed, startEmulator } from '../src/index.js'
import { client, errorCode, type Token } from './helpers.js'

let dir: string
let dataFile: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'm2m-emulator-'))
  dataFile = join(dir, 'state.json')
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('dataFile', () => {
  it('keeps keys, machines, scopes, tokens and the JWT signing key across restarts', async () => {
    const first = await startEmulator({ dataFile })
    const call1 = client(first)
    const api = await first.createMachine({ name: 'api' })
    const worker = await first.createMachine({ name: 'worker', scopedMachines: [api.id] })
    const live = (
      await call1<Token>('createM2MToken', 'POST', '/m2m_tokens', {
        key: worker.secretKey,
        body: {},
      })
    ).body
    const gone = (
      await call1<Token>('createM2MToken', 'POST', '/m2m_tokens', {
        key: worker.secretKey,
        body: {},
      })
    ).body
    await call1('revokeM2MToken', 'POST', `/m2m_tokens/${gone.id}/revoke`, {
      key: first.secretKey,
      body: { revocation_reason: 'r' },
    })
    const jwt = (
      await call1<Token>('createM2MToken', 'POST', '/m2m_tokens', {
        key: worker.secretKey,
        body: { token_format: 'jwt' },
      })
    ).body
    const verifiedOnce = await call1<Token>('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: api.secretKey,
      body: { token: live.token },
    })
    const kid = (
      await call1<{ keys: { kid: string }[] }>('getJwks', 'GET', '/jwks', { key: first.secretKey })
    ).body.keys[0]?.kid
    await first.close()

    // Written atomically: only the state file is left, no temp files.
    expect(readdirSync(dir)).toEqual(['state.json'])
    const state = JSON.parse(readFileSync(dataFile, 'utf8')) as {
      version: number
      machines: unknown[]
      tokens: unknown[]
    }
    expect(state.version).toBe(1)
    expect(state.machines).toHaveLength(2)
    expect(state.tokens).toHaveLength(2)

    const second = await startEmulator({ dataFile })
    const call2 = client(second)
    expect(second.secretKey).toBe(first.secretKey)
    expect(second.getMachine(worker.id)).toMatchObject({
      name: 'worker',
      secretKey: worker.secretKey,
      scopedMachines: [api.id],
    })
    const again = await call2<Token>('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: api.secretKey,
      body: { token: live.token },
    })
    expect(again.status).toBe(200)
    expect(again.body.last_used_at).toBeGreaterThanOrEqual(verifiedOnce.body.last_used_at as number)
    const revoked = await call2('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: api.secretKey,
      body: { token: gone.token },
    })
    expect(errorCode(revoked)).toBe('token_revoked')
    const jwtAgain = await call2<Token>('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: api.secretKey,
      body: { token: jwt.token },
    })
    expect(jwtAgain.status).toBe(200)
    expect(
      (
        await call2<{ keys: { kid: string }[] }>('getJwks', 'GET', '/jwks', {
          key: second.secretKey,
        })
      ).body.keys[0]?.kid,
    ).toBe(kid)
    await second.close()
  })

  it('an explicit secretKey wins over the stored one', async () => {
    const first = await startEmulator({ dataFile })
    await first.close()
    const second = await startEmulator({ dataFile, secretKey: 'sk_test_override' })
    expect(second.secretKey).toBe('sk_test_override')
    await second.close()
    const third = await startEmulator({ dataFile })
    expect(third.secretKey).toBe('sk_test_override')
    await third.close()
  })

  it('a corrupt file fails the start, naming the file', async () => {
    writeFileSync(dataFile, '{not json')
    await expect(startEmulator({ dataFile })).rejects.toThrow(dataFile)
    writeFileSync(dataFile, '{"version":2}')
    await expect(startEmulator({ dataFile })).rejects.toThrow(/version 1/)
  })
})

describe('seed', () => {
  const seed: EmulatorSeed = {
    machines: [
      { name: 'billing', scopedMachines: ['ledger'], defaultTokenTtl: 60 },
      { name: 'ledger', id: `mch_${'L'.repeat(27)}`, secretKey: 'ak_ledger_dev_key' },
    ],
  }

  it('creates machines with fixed ids, keys and scopes by name', async () => {
    const e = await startEmulator({ seed, secretKey: 'sk_test_seeded' })
    const machines = e.listMachines()
    expect(machines.map((m) => m.name)).toEqual(['billing', 'ledger'])
    const billing = machines[0]!
    expect(billing).toMatchObject({
      defaultTokenTtl: 60,
      scopedMachines: [`mch_${'L'.repeat(27)}`],
    })
    const t = await client(e)<Token>('createM2MToken', 'POST', '/m2m_tokens', {
      key: billing.secretKey,
      body: {},
    })
    const v = await client(e)('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: 'ak_ledger_dev_key',
      body: { token: t.body.token },
    })
    expect(v.status).toBe(200)
    await e.close()
  })

  it('is applied once with a dataFile: a restart does not duplicate machines', async () => {
    const first = await startEmulator({ seed, dataFile })
    const ids = first.listMachines().map((m) => m.id)
    await first.close()
    const second = await startEmulator({ seed, dataFile })
    expect(second.listMachines().map((m) => m.id)).toEqual(ids)
    await second.close()
  })

  it('rejects a bad seed with a message naming the machine', async () => {
    await expect(
      startEmulator({ seed: { machines: [{ name: 'a', scopedMachines: ['ghost'] }] } }),
    ).rejects.toThrow(/ghost/)
    await expect(
      startEmulator({ seed: { machines: [{ name: 'a', id: 'mch_bad' }] } }),
    ).rejects.toThrow(/mch_/)
  })
})
