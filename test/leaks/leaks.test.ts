/**
 * Secret-leak suite: the whole behaviour table, through Express 5 (answering itself, and with
 * `passErrors`), Fastify 5 and Hono, each app logging as a production app would, with every token
 * and key treated as a marker that must never appear in an answer, a log line, an event or an
 * error; then the verifier and the client driven directly through the paths the table does not
 * reach (JWT-format tokens, tampered JWTs, upstream faults, a rejected key, cut answers, Express's
 * own final handler printing a passed error). Finally, every log source must have spoken: a
 * clean log that was never written proves nothing.
 */
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import { createM2MClient, createM2MVerifier, type M2MEvent } from '@m2m-guard/core'
import { type Emulator, startEmulator } from '@m2m-guard/emulator'
import { requireM2M } from '@m2m-guard/express'
import express from 'express5'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runBehaviourTable } from '../behaviour/run.js'
import { closeServer, listenLocal } from '../behaviour/targets/express.js'
import { sendHttp } from '../support/http.js'
import { LeakCapture } from './capture.js'
import { leakTargets } from './targets.js'

const capture = new LeakCapture()
// Not echoed: the apps log every rejection, hundreds of lines; a leak is reported (masked) anyway.
beforeAll(() => capture.captureConsole({ echo: false }))
afterAll(() => capture.releaseConsole())

for (const target of leakTargets(capture)) runBehaviourTable(target)

describe('secrets never leak from the verifier and client, off the table', () => {
  let emulator: Emulator
  let receiverId = ''
  let callerId = ''
  let callerKey = ''
  const onEvent = (event: M2MEvent) => capture.record('event', event)

  beforeAll(async () => {
    emulator = await startEmulator({ port: 0 })
    const receiver = await emulator.createMachine({ name: 'receiver' })
    const caller = await emulator.createMachine({ name: 'caller', scopedMachines: [receiver.id] })
    receiverId = receiver.id
    callerId = caller.id
    callerKey = caller.secretKey
    capture.addSecret(emulator.secretKey)
    capture.addSecret(callerKey)
  })
  afterAll(async () => {
    await emulator?.close()
  })

  async function expectRejection(run: () => Promise<unknown>): Promise<void> {
    let thrown: unknown
    try {
      await run()
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(Error)
    capture.record('error', thrown)
    capture.assertClean()
  }

  function verifier(extra: Parameters<typeof createM2MVerifier>[0] = {}) {
    return createM2MVerifier({
      apiUrl: emulator.url,
      secretKey: emulator.secretKey,
      machineId: receiverId,
      timeoutMs: 300,
      retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 5 },
      onEvent,
      ...extra,
    })
  }

  it('marker tokens of every shape: malformed, unknown, over-long, JWT-shaped', async () => {
    const marker = randomBytes(24).toString('base64url')
    const tokens = [
      `mt_${marker}$!`,
      `mt_${marker}`,
      `m2m_${marker}`,
      `mt_${marker}${'x'.repeat(4100)}`,
      `${marker}.${marker}.${marker}`,
      `eyJhbGciOiJSUzI1NiIsImtpZCI6Imluc18xIn0.${marker}.${marker}`,
      `sk_live_${marker}`,
    ]
    const v = verifier()
    try {
      for (const token of tokens) {
        capture.addSecret(token)
        capture.addSecret(marker)
        await expectRejection(() => v.verify(token))
      }
    } finally {
      await v.close()
    }
  })

  it('JWT-format tokens: valid, tampered, and their events', async () => {
    const v = verifier()
    try {
      const jwt = (
        await emulator.createToken(callerId, { tokenFormat: 'jwt', secondsUntilExpiration: 60 })
      ).token as string
      capture.addSecret(jwt)
      const [header, payload, signature] = jwt.split('.') as [string, string, string]
      capture.addSecret(signature)
      capture.record('event', await v.verify(jwt))
      const tampered = `${header}.${payload}.${signature.slice(0, -4)}AAAA`
      capture.addSecret(tampered)
      await expectRejection(() => v.verify(tampered))
    } finally {
      await v.close()
    }
  })

  it('upstream faults, with the token in flight: 5xx, 429, timeout, reset, gone, trickle', async () => {
    const faults = [
      { errorRate: 1, errorStatus: 500 },
      { rateLimit: { rate: 1, retryAfterSeconds: 1 } },
      { latencyMs: 800 },
      { dropRate: 1 },
      { down: true },
      { trickleMs: 40 },
    ]
    for (const fault of faults) {
      const token = (await emulator.createToken(callerId, { secondsUntilExpiration: 60 }))
        .token as string
      capture.addSecret(token)
      emulator.setFaults({ ...fault, operations: ['verifyM2MToken'] })
      const v = verifier({ breaker: false })
      try {
        await expectRejection(() => v.verify(token))
        // The client alone, whose errors carry the most detail.
        const client = createM2MClient({
          apiUrl: emulator.url,
          secretKey: emulator.secretKey,
          timeoutMs: 300,
        })
        await expectRejection(() => client.verifyToken({ token }))
      } finally {
        emulator.clearFaults()
        await v.close()
      }
    }
  })

  it('a secret key upstream refuses, and answers cut while a new token is being minted', async () => {
    const wrongKey = `sk_test_${randomBytes(24).toString('base64url')}`
    capture.addSecret(wrongKey)
    const token = (await emulator.createToken(callerId, { secondsUntilExpiration: 60 }))
      .token as string
    capture.addSecret(token)
    const v = verifier({ secretKey: wrongKey })
    try {
      await expectRejection(() => v.verify(token))
    } finally {
      await v.close()
    }
    // The minted token is in the cut body: the error must not quote it (the stray-token check).
    const minter = createM2MClient({
      apiUrl: emulator.url,
      secretKey: callerKey,
      timeoutMs: 500,
      retry: false,
    })
    for (const fault of [{ dropRate: 1 }, { trickleMs: 100 }]) {
      emulator.setFaults({ ...fault, operations: ['createM2MToken'] })
      try {
        await expectRejection(() => minter.createToken({ secondsUntilExpiration: 60 }))
      } finally {
        emulator.clearFaults()
      }
    }
  })

  it("Express's own final handler, given rejections by passErrors, prints and answers them", async () => {
    // No error handler of the app's: Express's default one prints each error in full (cause
    // chain included) with console.error, outside `test` mode, and in development renders its
    // stack into the answer.
    const wrongKey = `sk_test_${randomBytes(24).toString('base64url')}`
    capture.addSecret(wrongKey)
    const options = {
      apiUrl: emulator.url,
      machineId: receiverId,
      timeoutMs: 300,
      retry: false as const,
      breaker: false as const,
      passErrors: true,
      onEvent,
    }
    const guards = {
      '/guarded': requireM2M({ ...options, secretKey: emulator.secretKey }),
      '/wrong-key': requireM2M({ ...options, secretKey: wrongKey }),
    }
    const app = express()
    app.set('env', 'development')
    for (const [path, guard] of Object.entries(guards)) {
      app.use(path, guard)
      app.get(path, (_req, res) => {
        res.json({ ok: true })
      })
    }
    const server = createServer(app)
    const base = await listenLocal(server)
    const printedBefore = capture.count('console', /M2MAuthError/)
    const marker = randomBytes(24).toString('base64url')
    capture.addSecret(marker)
    const valid = (await emulator.createToken(callerId, { secondsUntilExpiration: 60 }))
      .token as string
    capture.addSecret(valid)
    const rows: Array<{ path: string; token: string; status: number; down?: boolean }> = [
      { path: '/guarded', token: `mt_${marker}`, status: 401 },
      { path: '/guarded', token: `mt_${marker}$!`, status: 400 },
      { path: '/guarded', token: valid, status: 503, down: true },
      { path: '/wrong-key', token: valid, status: 500 },
    ]
    try {
      for (const row of rows) {
        if (row.down) emulator.setFaults({ down: true, operations: ['verifyM2MToken'] })
        try {
          const header = `Bearer ${row.token}`
          capture.addAuthorization([header])
          const res = await sendHttp(base, {
            method: 'GET',
            path: row.path,
            headers: [['Authorization', header]],
          })
          capture.record('response', res)
          expect(res.status).toBe(row.status)
        } finally {
          emulator.clearFaults()
        }
      }
    } finally {
      await closeServer(server)
      await Promise.all(Object.values(guards).map((guard) => guard.close()))
    }
    // Express printed every one of them (so its log was really searched), and none leaked.
    expect(capture.count('console', /M2MAuthError/) - printedBefore).toBe(rows.length)
    capture.assertClean()
  })
})

describe('the leak capture itself', () => {
  it('observed every channel it vouches for', () => {
    // Answers, events and errors were all seen, so "nothing leaked" is not "nothing looked at".
    expect(capture.count('response')).toBeGreaterThan(100)
    expect(capture.count('event')).toBeGreaterThan(100)
    expect(capture.count('error')).toBeGreaterThan(50)
    // Every app's logging spoke, through every channel the suite searches.
    const logged = {
      'express request log (stdout)': capture.count('stdout', /^\[express\] (GET|OPTIONS) /),
      'express onError log (stderr)': capture.count(
        'stderr',
        /^\[express\] m2m rejected .*M2MAuthError/s,
      ),
      'express passErrors handler (console)': capture.count(
        'console',
        /^\[express\] error handler: .*M2MAuthError/s,
      ),
      'fastify request log (pino)': capture.count('log', /"msg":"incoming request"/),
      'fastify answer log (pino)': capture.count('log', /"msg":"answered"/),
      'fastify onError log (pino)': capture.count('log', /"msg":"m2m rejected"/),
      'hono logger() (console)': capture.count('console', /<-- (GET|OPTIONS) /),
      'hono onError (console)': capture.count('console', /^\[hono\] onError: .*M2MAuthError/s),
      'hono onError hook (console)': capture.count('console', /^\[hono\] m2m rejected/),
    }
    for (const [source, lines] of Object.entries(logged)) {
      expect(lines, `lines from ${source}`).toBeGreaterThan(20)
    }
    capture.assertClean()
  })

  it('catches a planted leak, masked in its own report', () => {
    const probe = new LeakCapture()
    const secret = `mt_${randomBytes(24).toString('base64url')}`
    probe.addSecret(secret)
    probe.record('event', { type: 'oops', detail: `token was ${secret.slice(3)}` })
    expect(() => probe.assertClean()).toThrow(/leaked through event/)
    try {
      probe.assertClean()
    } catch (err) {
      expect((err as Error).message).not.toContain(secret.slice(3))
    }
  })
})
