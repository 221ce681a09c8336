/**
 * Fleets of real verifiers over a real redis-server and the real emulator: shared hits across
 * processes, revocation that reaches every instance, and Redis outages that never change an
 * answer. Upstream calls are counted by the emulator itself.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { createInterface, type Interface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import {
  createM2MClient,
  createM2MVerifier,
  type M2MEvent,
  type M2MVerifier,
} from '@m2m-guard/core'
import { type Emulator, type EmulatorMachine, startEmulator } from '@m2m-guard/emulator'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { redisCacheStore, redisRevocationBus } from '../src/index.js'
import { trackWrites } from './support/fixtures.js'
import {
  eventually,
  type RedisServer,
  skipRedis,
  startProxy,
  startRedisServer,
} from './support/redis-server.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Reply {
  ok: boolean
  subject?: string
  code?: string
  events: M2MEvent[]
}

/** A verifier in a child process (test/support/instance.ts). */
class Instance {
  private readonly lines: Interface
  private readonly waiting: Array<(line: string) => void> = []
  private readonly exited: Promise<void>
  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout })
    this.lines.on('line', (line) => this.waiting.shift()?.(line))
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()))
    child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk))
  }
  static async start(env: Record<string, string>): Promise<Instance> {
    const script = fileURLToPath(new URL('./support/instance.ts', import.meta.url))
    const child = spawn(
      process.execPath,
      ['--conditions=@m2m-guard/source', '--import', 'tsx', script],
      { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] },
    )
    const instance = new Instance(child)
    const first = await instance.next()
    expect(JSON.parse(first)).toEqual({ ready: true })
    return instance
  }
  private next(): Promise<string> {
    return new Promise((resolve) => this.waiting.push(resolve))
  }
  async send(command: object): Promise<Reply> {
    const answer = this.next()
    this.child.stdin.write(`${JSON.stringify(command)}\n`)
    return JSON.parse(await answer) as Reply
  }
  async stop(): Promise<void> {
    this.child.stdin.end(`${JSON.stringify({ op: 'exit' })}\n`)
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await this.exited
    clearTimeout(timer)
    this.lines.close()
  }
}

describe.skipIf(skipRedis)('fleets of verifiers sharing Redis', () => {
  let server: RedisServer
  let emulator: Emulator
  let caller: EmulatorMachine
  let api: EmulatorMachine
  let raw: Redis
  const cleanups: Array<() => Promise<void>> = []

  const verifyCalls = (): number => emulator.stats().byOperation['verifyM2MToken'] ?? 0
  const mint = async (secondsUntilExpiration = 3_600) => {
    const client = createM2MClient({ apiUrl: emulator.apiUrl, secretKey: caller.secretKey })
    return client.createToken({ secondsUntilExpiration })
  }

  /** An in-process instance: verifier + store + bus, on its own Redis connections. */
  const instance = async (
    url = server.url,
    ttlMs = 60_000,
  ): Promise<{ verifier: M2MVerifier; events: M2MEvent[] }> => {
    const events: M2MEvent[] = []
    // A generous deadline: CI runs every suite at once on two cores.
    const bus = redisRevocationBus({ url, resyncIntervalMs: 0, commandTimeoutMs: 2_000 })
    const redisStore = redisCacheStore({ url, revocationBus: bus, commandTimeoutMs: 2_000 })
    // Tracks the verifier's background writes so a test can wait for them.
    const { store, written } = trackWrites(redisStore)
    const verifier = createM2MVerifier({
      apiUrl: emulator.apiUrl,
      secretKey: emulator.secretKey,
      machineId: api.id,
      cache: { ttlMs, store },
      revocationBus: bus,
      retry: false,
      onEvent: (event) => events.push(event),
    })
    const verify = verifier.verify.bind(verifier)
    verifier.verify = async (token: string) => {
      try {
        return await verify(token)
      } finally {
        await written()
      }
    }
    cleanups.push(async () => {
      await verifier.close()
      await Promise.all([redisStore.close(), bus.close()])
    })
    await bus.ready()
    return { verifier, events }
  }

  beforeAll(async () => {
    server = await startRedisServer()
    raw = new Redis(server.url)
    raw.on('error', () => {})
    emulator = await startEmulator({ port: 0 })
    api = await emulator.createMachine({ name: 'api' })
    caller = await emulator.createMachine({ name: 'caller', scopedMachines: [api.id] })
  })
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
    if (raw.status === 'ready') await raw.flushall()
  })
  afterAll(async () => {
    raw.disconnect()
    await emulator.close()
    await server.stop()
  })

  it('two verifiers in two processes share hits: the second makes no upstream call', async () => {
    const env = {
      REDIS_URL: server.url,
      API_URL: emulator.apiUrl,
      SECRET_KEY: emulator.secretKey,
      MACHINE_ID: api.id,
    }
    const [a, b] = await Promise.all([Instance.start(env), Instance.start(env)])
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    )
    const { token } = await mint()

    const before = verifyCalls()
    const first = await a.send({ op: 'verify', token })
    expect(first).toMatchObject({ ok: true, subject: caller.id })
    expect(verifyCalls()).toBe(before + 1)

    const second = await b.send({ op: 'verify', token })
    expect(second).toMatchObject({ ok: true, subject: caller.id })
    expect(second.events).toContainEqual(
      expect.objectContaining({ type: 'cache_hit', tier: 'store' }),
    )
    expect(verifyCalls()).toBe(before + 1)

    // Nothing in Redis holds the token itself.
    for (const key of await raw.keys('*')) {
      expect(key).not.toContain(token)
      if ((await raw.type(key)) === 'string') expect(await raw.get(key)).not.toContain(token)
    }

    // Revoke through process A; process B rejects within 100 ms (polled: passes as soon as B
    // has heard through Redis pub/sub, fails only past the bound the design promises).
    const created = await mint()
    expect((await b.send({ op: 'verify', token: created.token })).ok).toBe(true)
    await a.send({ op: 'revoke', id: created.id })
    await eventually(
      async () =>
        expect(await b.send({ op: 'verify', token: created.token })).toMatchObject({
          ok: false,
          code: 'token_revoked',
        }),
      100,
    )
  })

  it('revoke on A: B, which had the token cached, rejects within 100 ms', async () => {
    const a = await instance()
    const b = await instance()
    const { token, id } = await mint()
    await a.verifier.verify(token)
    await b.verifier.verify(token)
    expect((await b.verifier.verify(token)).id).toBe(id) // from B's own LRU now
    const shared = await raw.smembers(`m2m-guard:id:${id}`)
    expect(shared).toHaveLength(1)

    await a.verifier.revoke(id)
    // Both within the 100 ms the design promises, polled: B hears through Redis pub/sub while
    // the stores sweep Redis in the background, and neither is ordered before the other.
    await eventually(async () => {
      await expect(b.verifier.verify(token)).rejects.toMatchObject({ code: 'token_revoked' })
      // And a fresh instance cannot pick the entry up from Redis either.
      expect(await raw.exists(...shared)).toBe(0)
    }, 100)
  })

  it('a revocation published while B was disconnected is honoured when B reconnects', async () => {
    const proxy = await startProxy(server.port)
    cleanups.push(() => proxy.close())
    const a = await instance()
    const b = await instance(proxy.url)
    const { token, id } = await mint()
    await b.verifier.verify(token)

    proxy.cut()
    await a.verifier.revoke(id)
    await sleep(200)
    proxy.restore()

    // Long before B's 60 s TTL: the bus read the record on reconnect.
    await eventually(
      () => expect(b.verifier.verify(token)).rejects.toMatchObject({ code: 'token_revoked' }),
      10_000,
    )
  })

  it('Redis killed mid-traffic: every answer stays right through upstream; restarted, the tier resumes', async () => {
    const a = await instance()
    const b = await instance()
    const valid = await Promise.all([mint(), mint(), mint()])
    const revoked = await mint()
    await createM2MClient({ apiUrl: emulator.apiUrl, secretKey: emulator.secretKey }).revokeToken({
      m2mTokenId: revoked.id,
    })
    const unknown = `mt_${'Z'.repeat(48)}`

    const round = async () => {
      for (const v of [a, b]) {
        for (const t of valid) expect((await v.verifier.verify(t.token)).id).toBe(t.id)
        await expect(v.verifier.verify(revoked.token)).rejects.toMatchObject({
          code: 'token_revoked',
        })
        await expect(v.verifier.verify(unknown)).rejects.toMatchObject({ code: 'invalid_token' })
      }
    }
    await round()
    await server.kill()
    // Fresh tokens during the outage must go upstream (nothing cached anywhere) and still pass.
    const during = await mint()
    const callsBefore = verifyCalls()
    for (let i = 0; i < 5; i++) {
      await round()
      expect((await a.verifier.verify(during.token)).id).toBe(during.id)
      expect((await b.verifier.verify(during.token)).id).toBe(during.id)
    }
    expect(verifyCalls()).toBeGreaterThanOrEqual(callsBefore + 2)
    expect(a.events).toContainEqual(expect.objectContaining({ type: 'store_error' }))

    await server.start()
    // No restart of the instances: the tier comes back by itself.
    const after = await mint()
    await eventually(async () => {
      const c = await instance()
      await a.verifier.verify(after.token)
      const calls = verifyCalls()
      c.events.length = 0
      await c.verifier.verify(after.token)
      expect(c.events).toContainEqual(expect.objectContaining({ type: 'cache_hit', tier: 'store' }))
      expect(verifyCalls()).toBe(calls)
    }, 15_000)
  })

  it('shared entries expire with the token', async () => {
    const a = await instance()
    const b = await instance()
    const { token, id } = await mint(2)
    await a.verifier.verify(token)
    const [key, ...others] = await raw.smembers(`m2m-guard:id:${id}`)
    expect(key).toBeDefined()
    expect(others).toEqual([])
    const ttl = await raw.pttl(key ?? '')
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(2_000)

    await sleep(2_100)
    expect(await raw.exists(key ?? '')).toBe(0)
    const calls = verifyCalls()
    await expect(b.verifier.verify(token)).rejects.toMatchObject({ code: 'token_expired' })
    expect(verifyCalls()).toBe(calls + 1)
  })
})
