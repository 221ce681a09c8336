/** Clerk's own SDK, pointed at the emulator with `apiUrl`, must work as against api.clerk.com. */
import { createClerkClient } from '@clerk/backend'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Emulator, startEmulator } from '../src/index.js'

let emulator: Emulator
let clerk: ReturnType<typeof createClerkClient>

beforeAll(async () => {
  emulator = await startEmulator()
  clerk = createClerkClient({ secretKey: emulator.secretKey, apiUrl: emulator.url })
})
afterAll(() => emulator.close())

interface ClerkApiError {
  status: number
  clerkTraceId?: string
  errors: { code: string; message: string; longMessage?: string }[]
}

async function rejection(promise: Promise<unknown>): Promise<ClerkApiError> {
  try {
    await promise
  } catch (err) {
    return err as ClerkApiError
  }
  throw new Error('expected a rejection')
}

describe('@clerk/backend against the emulator', () => {
  it('machines.create / get / list / getSecretKey / createScope / rotateSecretKey / delete', async () => {
    const api = await clerk.machines.create({ name: 'api' })
    const worker = await clerk.machines.create({
      name: 'worker',
      scopedMachines: [api.id],
      defaultTokenTtl: 600,
    })
    expect(worker.id).toMatch(/^mch_\w{27}$/)
    expect(worker.name).toBe('worker')
    expect(worker.defaultTokenTtl).toBe(600)
    expect(worker.scopedMachines.map((m) => m.id)).toEqual([api.id])
    expect(worker.secretKey).toMatch(/^ak_/)

    expect((await clerk.machines.get(worker.id)).name).toBe('worker')
    const list = await clerk.machines.list()
    expect(list.totalCount).toBe(2)
    expect(list.data.map((m) => m.id)).toEqual([worker.id, api.id])

    const { secret } = await clerk.machines.getSecretKey(worker.id)
    expect(secret).toBe(worker.secretKey)

    const third = await clerk.machines.create({ name: 'third' })
    const scope = await clerk.machines.createScope(worker.id, third.id)
    expect(scope.fromMachineId).toBe(worker.id)
    expect(scope.toMachineId).toBe(third.id)
    await clerk.machines.deleteScope(worker.id, third.id)

    const rotated = await clerk.machines.rotateSecretKey({
      machineId: third.id,
      previousTokenTtl: 0,
    })
    expect(rotated.secret).toMatch(/^ak_/)
    expect(rotated.secret).not.toBe(third.secretKey)

    const deleted = await clerk.machines.delete(third.id)
    expect(deleted.id).toBe(third.id)
    const missing = await rejection(clerk.machines.get(third.id))
    expect(missing.status).toBe(404)
    expect(missing.errors[0]?.code).toBe('resource_not_found')
    expect(missing.clerkTraceId).toMatch(/^[0-9a-f]{32}$/)
  })

  it('m2m.createToken / list / verify / revokeToken, and the failures', async () => {
    const api = await clerk.machines.create({ name: 'svc' })
    const worker = await clerk.machines.create({ name: 'job', scopedMachines: [api.id] })
    const { secret: workerKey } = await clerk.machines.getSecretKey(worker.id)

    const token = await clerk.m2m.createToken({
      machineSecretKey: workerKey,
      secondsUntilExpiration: 300,
      claims: { job: 'nightly' },
    })
    expect(token.token).toMatch(/^mt_/)
    expect(token.subject).toBe(worker.id)
    expect(token.scopes).toEqual([api.id])
    expect(token.claims).toEqual({ job: 'nightly' })
    expect((token.expiration as number) - token.createdAt).toBe(300_000)

    // The SDK sends seconds_until_expiration: null by default: a token that never expires.
    const forever = await clerk.m2m.createToken({ machineSecretKey: workerKey })
    expect(forever.expiration).toBeNull()

    const reused = await clerk.m2m.createToken({
      machineSecretKey: workerKey,
      secondsUntilExpiration: 300,
      claims: { job: 'nightly' },
      minRemainingTtlSeconds: 60,
    })
    expect(reused.id).toBe(token.id)

    const listed = await clerk.m2m.list({ subject: worker.id })
    expect(listed.totalCount).toBe(2)
    const own = await clerk.m2m.list({ subject: worker.id, machineSecretKey: workerKey, limit: 1 })
    expect(own.data).toHaveLength(1)

    const { secret: apiKey } = await clerk.machines.getSecretKey(api.id)
    const verified = await clerk.m2m.verify({
      token: token.token as string,
      machineSecretKey: apiKey,
    })
    expect(verified.id).toBe(token.id)
    expect(verified.subject).toBe(worker.id)
    const byInstance = await clerk.m2m.verify({ token: token.token as string })
    expect(byInstance.id).toBe(token.id)

    const unknown = await rejection(clerk.m2m.verify({ token: 'mt_unknown' }))
    expect(unknown.status).toBe(404)

    const revoked = await clerk.m2m.revokeToken({ m2mTokenId: token.id, revocationReason: 'done' })
    expect(revoked.revoked).toBe(true)
    expect(revoked.revocationReason).toBe('done')
    const afterRevoke = await rejection(clerk.m2m.verify({ token: token.token as string }))
    expect(afterRevoke.status).toBe(404)
    expect(afterRevoke.errors[0]?.code).toBe('token_revoked')

    // Creating with the instance key is refused; a foreign machine may not list another's tokens.
    const instanceCreate = await rejection(
      clerk.m2m.createToken({ machineSecretKey: emulator.secretKey }),
    )
    expect(instanceCreate.status).toBe(403)
    const foreignList = await rejection(
      clerk.m2m.list({ subject: worker.id, machineSecretKey: apiKey }),
    )
    expect(foreignList.status).toBe(403)
    const badKey = await rejection(clerk.m2m.createToken({ machineSecretKey: 'ak_wrong' }))
    expect(badKey.status).toBe(401)
    expect(badKey.errors[0]?.code).toBe('authentication_invalid')
  })

  it('verifies JWT-format tokens locally: via /v1/jwks with the secret key, or with jwtKey', async () => {
    const api = await clerk.machines.create({ name: 'jwt-api' })
    const worker = await clerk.machines.create({ name: 'jwt-worker', scopedMachines: [api.id] })
    const jwt = await clerk.m2m.createToken({
      machineSecretKey: worker.secretKey,
      tokenFormat: 'jwt',
      secondsUntilExpiration: 120,
      claims: { tier: 'gold' },
    })
    expect(jwt.token?.split('.')).toHaveLength(3)
    emulator.resetStats()
    const viaJwks = await clerk.m2m.verify({ token: jwt.token as string })
    expect(viaJwks.subject).toBe(worker.id)
    expect(viaJwks.id).toBe(jwt.id)
    expect(viaJwks.scopes).toEqual([api.id])
    expect(viaJwks.claims).toMatchObject({ tier: 'gold' })
    // Local verification: the SDK fetched the JWKS, and never called the verify endpoint.
    expect(emulator.stats().byOperation.getJwks).toBe(1)
    expect(emulator.stats().byOperation.verifyM2MToken).toBeUndefined()

    const pemClient = createClerkClient({
      apiUrl: emulator.url,
      jwtKey: await emulator.jwtPublicKey(),
    })
    const viaPem = await pemClient.m2m.verify({ token: jwt.token as string })
    expect(viaPem.id).toBe(jwt.id)

    const other = await startEmulator()
    const foreign = createClerkClient({ apiUrl: other.url, jwtKey: await other.jwtPublicKey() })
    await expect(foreign.m2m.verify({ token: jwt.token as string })).rejects.toThrow()
    await other.close()
  })
})
