/**
 * One fault scenario, end to end: a real emulator, a real app in one framework, the fault turned
 * on for `verifyM2MToken` only (or the emulator made unreachable, see gate.ts), then the
 * guarantees of DESIGN.md checked in order. Plain
 * node:assert, so it runs the same inside Vitest and in the child process that proves nothing is
 * left open afterwards (faults.test.ts).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { M2MEvent } from '@m2m-guard/core'
import { type FaultsPatch, startEmulator } from '@m2m-guard/emulator'
import { type AppResponse, type Framework, startGuardedApp } from '../fuzz/apps.js'
import { assertRefused, openGate } from './gate.js'

/** A named fault, and which framework plays it (the core decides; each adapter renders it). */
export interface FaultCase {
  name: string
  framework: Framework
  /**
   * Injected by the emulator on `verifyM2MToken`; or `'refused'`: nothing listens at the API URL
   * any more (a gate in front of the emulator is shut), so every connection is refused.
   */
  faults: FaultsPatch | 'refused'
  /** The Retry-After (seconds) upstream sends with this fault, which must reach the caller. */
  upstreamRetryAfterS?: number
}

// Short client deadline, one quick retry, a breaker that opens after three failed requests: the
// outage is detected in a few hundred ms and the breaker cycle is driven by the injected clock.
const TIMEOUT_MS = 300
// Not the 503 default below, so a Retry-After tells which of the two it came from.
const OPEN_MS = 2_000
const THRESHOLD = 3
/**
 * Retry-After (s) of a 503 when neither upstream nor an open breaker gave a delay: the verifier's
 * DEFAULT_RETRY_AFTER_MS (1 000 ms), rendered in whole seconds (packages/core/src/http/render.ts).
 */
const DEFAULT_RETRY_AFTER_S = 1
// Upstream's Retry-After on its 429s: unlike both values above, so the 429 scenario can only pass
// if upstream's value reaches the caller.
const UPSTREAM_429_RETRY_AFTER_S = 3

/** The faults of issue 7, each in its own scenario. */
export const FAULT_CASES: FaultCase[] = [
  { name: 'latency beyond the timeout', framework: 'express', faults: { latencyMs: 1_500 } },
  { name: '5xx burst', framework: 'fastify', faults: { errorRate: 1, errorStatus: 502 } },
  {
    name: '429 with Retry-After',
    framework: 'hono',
    faults: { rateLimit: { rate: 1, retryAfterSeconds: UPSTREAM_429_RETRY_AFTER_S } },
    upstreamRetryAfterS: UPSTREAM_429_RETRY_AFTER_S,
  },
  {
    name: 'connection reset mid-response',
    framework: 'express',
    faults: { dropRate: 1 },
  },
  // The emulator's `down`: it reads the request, then destroys the socket without answering.
  { name: 'connection closed before any answer', framework: 'fastify', faults: { down: true } },
  // Nothing listens any more: the connection is refused, then the upstream comes back.
  { name: 'upstream gone (connection refused)', framework: 'hono', faults: 'refused' },
  // The answer is ~300 bytes, in 16-byte chunks 100 ms apart: about 2 s, far past the deadline.
  { name: 'response trickling slowly', framework: 'hono', faults: { trickleMs: 100 } },
]

/** What a scenario observed besides its assertions, for the report. */
export interface ScenarioReport {
  name: string
  framework: Framework
  breakerOpenedAfterRequests: number
  failFastUpstreamCalls: number
  events: Record<string, number>
}

const bearer = (token: string): Array<[string, string]> => [['authorization', `Bearer ${token}`]]

/** A 503 `verification_unavailable` whose Retry-After is exactly `retryAfterS` seconds. */
function assertUnavailable(res: AppResponse, what: string, retryAfterS: number): void {
  assert.equal(res.status, 503, `${what}: status`)
  assert.equal(res.headers['www-authenticate'], undefined, `${what}: no challenge on a 503`)
  const retryAfter = res.headers['retry-after']
  assert.match(retryAfter ?? '', /^[1-9]\d*$/, `${what}: Retry-After is a positive integer`)
  assert.equal(retryAfter, String(retryAfterS), `${what}: Retry-After`)
  assert.equal(
    (JSON.parse(res.bodyText) as { error: string }).error,
    'verification_unavailable',
    `${what}: body`,
  )
}

function assertAdmitted(res: AppResponse, subject: string, what: string): void {
  assert.equal(res.status, 200, `${what}: status (body ${res.bodyText})`)
  assert.equal((JSON.parse(res.bodyText) as { subject: string }).subject, subject, what)
}

function assertRejected(res: AppResponse, error: string, what: string): void {
  assert.equal(res.status, 401, `${what}: status`)
  assert.equal((JSON.parse(res.bodyText) as { error: string }).error, error, what)
}

/**
 * Plays one fault. Throws an AssertionError naming the broken guarantee.
 *
 * @example
 * await runFaultScenario(FAULT_CASES[0]!)
 */
export async function runFaultScenario(fault: FaultCase): Promise<ScenarioReport> {
  const refused = fault.faults === 'refused'
  const emulator = await startEmulator({ port: 0 })
  // The verifier talks to the emulator through the gate only when the gate is the fault.
  const gate = refused ? await openGate(emulator.url) : undefined
  // The breaker reads this clock, and only this clock moves it: advancing it is exactly "one
  // breaker cycle later", with no sleep, and an open breaker's remaining time (its Retry-After)
  // does not depend on how fast this machine is.
  const clockStart = Date.now()
  let skewMs = 0
  const events: Record<string, number> = {}
  // What every 503 must say: upstream's Retry-After when it sent one, else the default while the
  // breaker is closed, else the breaker's remaining time (a whole cycle, the clock being still).
  const upstreamMs = (fault.upstreamRetryAfterS ?? 0) * 1000
  const cycleMs = Math.max(OPEN_MS, upstreamMs)
  const closedRetryAfterS = fault.upstreamRetryAfterS ?? DEFAULT_RETRY_AFTER_S
  const openRetryAfterS = Math.ceil(cycleMs / 1000)
  try {
    const receiver = await emulator.createMachine({ name: 'receiver' })
    const caller = await emulator.createMachine({ name: 'caller', scopedMachines: [receiver.id] })
    const mint = async () =>
      (await emulator.createToken(caller.id, { secondsUntilExpiration: 600 })).token as string
    const warm = await mint()
    const fresh = await Promise.all(Array.from({ length: 9 }, mint))
    const revokedToken = await emulator.createToken(caller.id, { secondsUntilExpiration: 600 })
    await emulator.revokeToken(revokedToken.id, 'test')
    const revoked = revokedToken.token as string
    const unknown = `mt_${randomBytes(24).toString('hex')}`

    const app = await startGuardedApp(fault.framework, {
      apiUrl: gate?.url ?? emulator.url,
      secretKey: emulator.secretKey,
      machineId: receiver.id,
      timeoutMs: TIMEOUT_MS,
      retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 5 },
      breaker: { failureThreshold: THRESHOLD, openMs: OPEN_MS },
      now: () => clockStart + skewMs,
      onEvent: (event: M2MEvent) => {
        events[event.type] = (events[event.type] ?? 0) + 1
        if (event.type === 'upstream_error') {
          const key = `upstream_error:${event.errorCode}`
          events[key] = (events[key] ?? 0) + 1
        }
      },
    })
    // Calls that reached the emulator, and calls the verifier attempted (a refused connection
    // reaches nothing, so only the second tells it tried).
    const verifyCalls = () => emulator.stats().byOperation['verifyM2MToken'] ?? 0
    const attempts = () => app.verifier.stats().upstreamCalls
    try {
      assertAdmitted(await app.send(bearer(warm)), caller.id, 'warm-up')

      if (gate) {
        await gate.shut()
        await assertRefused(gate.url)
      } else if (fault.faults !== 'refused') {
        emulator.setFaults({ ...fault.faults, operations: ['verifyM2MToken'] })
      }

      // Cached tokens are still served, without asking upstream.
      let before = verifyCalls()
      let attemptsBefore = attempts()
      assertAdmitted(await app.send(bearer(warm)), caller.id, 'cached token during the fault')
      assert.equal(verifyCalls() - before, 0, 'a cache hit makes no upstream call')
      assert.equal(attempts() - attemptsBefore, 0, 'a cache hit attempts no upstream call')

      // Nothing is admitted without verification: valid, revoked and unknown tokens all get 503
      // until the breaker opens (more valid tokens follow in case rejections reset its count).
      const probes: Array<[string, 'valid' | 'revoked' | 'unknown']> = [
        [fresh[0]!, 'valid'],
        [revoked, 'revoked'],
        [unknown, 'unknown'],
        ...fresh.slice(4).map((t): [string, 'valid'] => [t, 'valid']),
      ]
      let opened = 0
      for (const [i, [token, kind]] of probes.entries()) {
        const res = await app.send(bearer(token))
        const what = `uncached ${kind} token (#${i}) during the fault`
        const open = app.verifier.stats().breaker === 'open'
        // Even a 404 whose body was cut is no verdict: every uncached token gets 503.
        assertUnavailable(res, what, open ? openRetryAfterS : closedRetryAfterS)
        if (open) {
          opened = i + 1
          break
        }
      }
      assert.ok(opened > 0, 'the breaker opened')
      assert.ok(attempts() > attemptsBefore, 'the failed verifications were attempted')
      if (refused) {
        assert.equal(verifyCalls() - before, 0, 'a refused connection reaches nothing')
        assert.ok(
          (events['upstream_error:connection_failed'] ?? 0) >= THRESHOLD,
          `failures seen as connection failures (events ${JSON.stringify(events)})`,
        )
      } else assert.ok(verifyCalls() > before, 'the failed verifications did reach upstream')

      // Open breaker: fail fast, no upstream call, still 503 + Retry-After; cache still served.
      before = verifyCalls()
      attemptsBefore = attempts()
      assertUnavailable(
        await app.send(bearer(fresh[3]!)),
        'while the breaker is open',
        openRetryAfterS,
      )
      const failFastUpstreamCalls = verifyCalls() - before
      assert.equal(failFastUpstreamCalls, 0, 'an open breaker makes no upstream call')
      assert.equal(attempts() - attemptsBefore, 0, 'an open breaker attempts no upstream call')
      assertAdmitted(await app.send(bearer(warm)), caller.id, 'cached token, breaker open')

      // Upstream recovers; the breaker still fails fast until its cycle is over…
      if (gate) {
        await gate.open()
      } else {
        emulator.clearFaults()
        // Let aborted requests (latency, trickle) finish on the emulator's side before counting.
        await sleep(50)
      }
      before = verifyCalls()
      attemptsBefore = attempts()
      assertUnavailable(
        await app.send(bearer(fresh[3]!)),
        'recovered, cycle not over',
        openRetryAfterS,
      )
      assert.equal(verifyCalls() - before, 0, 'no call before the cycle is over')
      assert.equal(attempts() - attemptsBefore, 0, 'no attempt before the cycle is over')

      // …and exactly one cycle later (longer when upstream's Retry-After asked for it) the first
      // request goes through and closes it.
      skewMs += cycleMs + 1
      assertAdmitted(await app.send(bearer(fresh[3]!)), caller.id, 'first request after one cycle')
      assert.equal(app.verifier.stats().breaker, 'closed', 'breaker closed by the probe')

      // Transient failures were never cached: each earlier 503 token is now verified for real.
      assertAdmitted(
        await app.send(bearer(fresh[0]!)),
        caller.id,
        'a token refused during the outage',
      )
      const revokedAfter = await app.send(bearer(revoked))
      assertRejected(revokedAfter, 'token_revoked', 'revoked token after recovery')
      assertRejected(
        await app.send(bearer(unknown)),
        'invalid_token',
        'unknown token after recovery',
      )
      assertAdmitted(await app.send(bearer(warm)), caller.id, 'warm token after recovery')
      assert.ok((events['breaker_open'] ?? 0) >= 1, 'breaker_open event')
      assert.ok((events['breaker_closed'] ?? 0) >= 1, 'breaker_closed event')
      return {
        name: fault.name,
        framework: fault.framework,
        breakerOpenedAfterRequests: opened,
        failFastUpstreamCalls,
        events,
      }
    } finally {
      await app.close()
    }
  } finally {
    await gate?.close()
    await emulator.close()
  }
}

/**
 * A partial outage (seeded 50 % of 5xx): every answer is a correct verdict or a 503, never a
 * wrong admission, through every framework.
 *
 * @example
 * await runFlakyScenario('express')
 */
export async function runFlakyScenario(
  framework: Framework,
): Promise<{ ok: number; unavailable: number }> {
  const emulator = await startEmulator({ port: 0 })
  try {
    const receiver = await emulator.createMachine({ name: 'receiver' })
    const caller = await emulator.createMachine({ name: 'caller', scopedMachines: [receiver.id] })
    const outsider = await emulator.createMachine({ name: 'outsider' })
    const app = await startGuardedApp(framework, {
      apiUrl: emulator.url,
      secretKey: emulator.secretKey,
      machineId: receiver.id,
      timeoutMs: TIMEOUT_MS,
      retry: false,
      // Off: this scenario is about verdicts under intermittent failures, not about failing fast.
      breaker: false,
    })
    let ok = 0
    let unavailable = 0
    try {
      emulator.setFaults({
        errorRate: 0.5,
        errorStatus: 500,
        seed: 7,
        operations: ['verifyM2MToken'],
      })
      for (let i = 0; i < 30; i++) {
        const kind = i % 3
        const token =
          kind === 0
            ? ((await emulator.createToken(caller.id, { secondsUntilExpiration: 600 }))
                .token as string)
            : kind === 1
              ? ((await emulator.createToken(outsider.id, { secondsUntilExpiration: 600 }))
                  .token as string)
              : `mt_${randomBytes(24).toString('hex')}`
        const res = await app.send(bearer(token))
        if (res.status === 503) {
          assertUnavailable(res, `flaky #${i}`, DEFAULT_RETRY_AFTER_S)
          unavailable++
          continue
        }
        const expected = kind === 0 ? 200 : kind === 1 ? 403 : 401
        assert.equal(res.status, expected, `flaky #${i} (kind ${kind}): ${res.bodyText}`)
        if (kind === 0) ok++
      }
      // With a seeded 50 % both outcomes must have happened, or this proved nothing.
      assert.ok(ok > 0 && unavailable > 0, `ok ${ok}, unavailable ${unavailable}`)
      return { ok, unavailable }
    } finally {
      await app.close()
    }
  } finally {
    await emulator.close()
  }
}
