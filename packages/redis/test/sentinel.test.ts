/**
 * On a real Sentinel deployment (a master, a replica and a Sentinel, all redis-server): the tier
 * and the bus work through Sentinel-managed clients, and follow a failover. Two verifiers share
 * one Redis through Sentinel; upstream calls are counted by the emulator.
 */
import {
  createM2MClient,
  createM2MVerifier,
  type M2MEvent,
  type M2MVerifier,
} from '@m2m-guard/core'
import { type Emulator, type EmulatorMachine, startEmulator } from '@m2m-guard/emulator'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  ownedClientOptions,
  type RedisRevocationBus,
  redisCacheStore,
  redisRevocationBus,
} from '../src/index.js'
import { trackWrites } from './support/fixtures.js'
import {
  eventually,
  haveRedisCli,
  inCi,
  type RedisSentinelServer,
  skipRedis,
  startRedisSentinel,
} from './support/redis-server.js'

// A generous deadline: CI runs every suite at once on two cores.
const COMMAND_TIMEOUT_MS = 2_000

describe.skipIf(skipRedis || (!haveRedisCli && !inCi))('on Redis Sentinel', () => {
  let sentinel: RedisSentinelServer
  let emulator: Emulator
  let caller: EmulatorMachine
  let api: EmulatorMachine
  const cleanups: Array<() => Promise<void>> = []

  const verifyCalls = (): number => emulator.stats().byOperation['verifyM2MToken'] ?? 0
  const mint = () =>
    createM2MClient({ apiUrl: emulator.apiUrl, secretKey: caller.secretKey }).createToken({
      secondsUntilExpiration: 3_600,
    })

  /** The Sentinel options a user would pass, with the tier's recommended client options. */
  const sentinelOptions = () => ({
    sentinels: [{ host: '127.0.0.1', port: sentinel.sentinelPort }],
    name: sentinel.name,
  })

  interface Instance {
    verifier: M2MVerifier
    bus: RedisRevocationBus
    events: M2MEvent[]
    /** Resolves when the store writes the verifier started have landed (or failed). */
    written(): Promise<void>
  }

  /**
   * A verifier with a Redis store and bus. `form: 'client'` passes the user's own Sentinel client
   * (with `ownedClientOptions`, as the README says); `form: 'url'` lets the tier open it from
   * `url` + `redisOptions`, with the tier's defaults only.
   */
  const instance = async (form: 'client' | 'url'): Promise<Instance> => {
    const connection = () => {
      if (form === 'url') {
        return { url: 'redis://sentinel', redisOptions: sentinelOptions() }
      }
      const client = new Redis({ ...sentinelOptions(), ...ownedClientOptions(COMMAND_TIMEOUT_MS) })
      client.on('error', () => {})
      cleanups.push(async () => client.disconnect())
      return { client }
    }
    const events: M2MEvent[] = []
    const bus = redisRevocationBus({
      ...connection(),
      resyncIntervalMs: 0,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
    })
    const redisStore = redisCacheStore({
      ...connection(),
      revocationBus: bus,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
    })
    const { store, written } = trackWrites(redisStore)
    const verifier = createM2MVerifier({
      apiUrl: emulator.apiUrl,
      secretKey: emulator.secretKey,
      machineId: api.id,
      cache: { ttlMs: 60_000, store },
      revocationBus: bus,
      retry: false,
      onEvent: (event) => events.push(event),
    })
    cleanups.push(async () => {
      await verifier.close()
      await Promise.all([redisStore.close(), bus.close()])
    })
    await bus.ready()
    return { verifier, bus, events, written }
  }

  beforeAll(async () => {
    sentinel = await startRedisSentinel()
    emulator = await startEmulator({ port: 0 })
    api = await emulator.createMachine({ name: 'api' })
    caller = await emulator.createMachine({ name: 'caller', scopedMachines: [api.id] })
  }, 30_000)
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  afterAll(async () => {
    await emulator?.close()
    await sentinel?.stop()
  })

  it('shares verifications and revocations through Sentinel-managed clients (client and url forms)', async () => {
    const a = await instance('client')
    const b = await instance('url')
    const { token, id } = await mint()

    const before = verifyCalls()
    expect((await a.verifier.verify(token)).subject).toBe(caller.id)
    await a.written()
    expect(verifyCalls()).toBe(before + 1)
    expect((await b.verifier.verify(token)).subject).toBe(caller.id)
    expect(b.events).toContainEqual(expect.objectContaining({ type: 'cache_hit', tier: 'store' }))
    expect(verifyCalls()).toBe(before + 1)

    await a.verifier.revoke(id)
    await eventually(() => expect(b.bus.isRevoked(id)).toBe(true), 2_000)
    const afterRevoke = verifyCalls()
    await expect(b.verifier.verify(token)).rejects.toMatchObject({ code: 'token_revoked' })
    // Refused from the bus's record, not by asking Clerk again.
    expect(verifyCalls()).toBe(afterRevoke)
  }, 30_000)

  it('keeps answering through a failover, then shares and revokes on the new master', async () => {
    const a = await instance('client')
    const b = await instance('url')
    const early = await mint()
    await a.verifier.verify(early.token)
    await b.verifier.verify(early.token)

    const oldMaster = sentinel.masterPort()
    const newMaster = await sentinel.failover()
    expect(newMaster).not.toBe(oldMaster)

    // During and after the switch every answer stays right: Redis trouble is a miss that goes
    // upstream, never a refusal. Tokens cached in memory are served throughout.
    for (let i = 0; i < 10; i++) {
      const { token } = await mint()
      expect((await a.verifier.verify(token)).subject).toBe(caller.id)
      expect((await b.verifier.verify(early.token)).subject).toBe(caller.id)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }

    // Both instances reach the new master well before Sentinel would demote the old one (which
    // takes about 10 s): a token verified by A after the switch is a store hit for B.
    const onNewMaster = new Redis({ host: '127.0.0.1', port: newMaster })
    onNewMaster.on('error', () => {})
    cleanups.push(async () => onNewMaster.disconnect())
    await eventually(async () => {
      const { token, id } = await mint()
      const before = verifyCalls()
      await a.verifier.verify(token)
      await a.written()
      expect(await onNewMaster.exists(`m2m-guard:id:${id}`)).toBe(1)
      await b.verifier.verify(token)
      expect(verifyCalls()).toBe(before + 1)
    }, 8_000)

    // A revocation after the switch reaches the other instance, and the record on the new
    // master replays it to an instance that starts later.
    const late = await mint()
    await b.verifier.verify(late.token)
    await a.verifier.revoke(late.id)
    await eventually(() => expect(b.bus.isRevoked(late.id)).toBe(true), 2_000)
    await expect(b.verifier.verify(late.token)).rejects.toMatchObject({ code: 'token_revoked' })
    const record = await onNewMaster.xrange('m2m-guard:revoked', '-', '+')
    expect(record.map(([, fields]) => fields[1])).toContain(late.id)
    const newcomer = await instance('client')
    expect(newcomer.bus.isRevoked(late.id)).toBe(true)
    expect(sentinel.masterPort()).toBe(newMaster)
  }, 40_000)
})
