/**
 * Test fixture (not exported from the package): a real emulator on 127.0.0.1 sharing a
 * controllable clock with the verifiers under test, plus a calling machine able to mint tokens.
 */
import { type Emulator, startEmulator } from '@m2m-guard/emulator'
import { createM2MClient } from '../../client/index.js'
import type { M2MClient, M2MTokenWithSecret } from '../../types.js'
import type { M2MEvent, M2MVerifier, M2MVerifierOptions } from '../types.js'
import { createM2MVerifier } from '../verifier.js'

export interface Clock {
  t: number
  now: () => number
  advance: (ms: number) => void
}

export function createClock(start = Date.now()): Clock {
  const clock: Clock = {
    t: start,
    now: () => clock.t,
    advance: (ms) => {
      clock.t += ms
    },
  }
  return clock
}

export interface Fixture {
  emulator: Emulator
  clock: Clock
  /** The service being protected: tokens from `caller` carry its id in `scopes`. */
  service: { id: string; secretKey: string }
  caller: { id: string; secretKey: string }
  /** Client with the caller's machine key: creates and revokes the caller's tokens. */
  callerClient: M2MClient
  /** Every event every verifier of this fixture emitted. */
  events: M2MEvent[]
  mint(options?: {
    seconds?: number | null
    jwt?: boolean
    claims?: Record<string, unknown>
  }): Promise<M2MTokenWithSecret>
  /** A verifier on the instance key, on the shared clock, without client retries (fast faults). */
  verifier(options?: M2MVerifierOptions): M2MVerifier
  /** Closes a verifier and lets go of it, so long property runs do not pile them up. */
  release(verifier: M2MVerifier): Promise<void>
  /** `verifyM2MToken` requests the emulator has answered so far. */
  upstreamVerifies(): number
  jwksFetches(): number
  close(): Promise<void>
}

export async function startFixture(): Promise<Fixture> {
  const clock = createClock()
  const emulator = await startEmulator({ port: 0, now: clock.now })
  const service = await emulator.createMachine({ name: 'service' })
  const caller = await emulator.createMachine({ name: 'caller', scopedMachines: [service.id] })
  const callerClient = createM2MClient({
    secretKey: caller.secretKey,
    apiUrl: emulator.url,
    retry: false,
  })
  const events: M2MEvent[] = []
  const verifiers: M2MVerifier[] = []
  return {
    emulator,
    clock,
    service,
    caller,
    callerClient,
    events,
    mint: ({ seconds = 3600, jwt = false, claims } = {}) =>
      callerClient.createToken({
        secondsUntilExpiration: seconds,
        ...(jwt ? { tokenFormat: 'jwt' as const } : {}),
        ...(claims ? { claims } : {}),
      }),
    verifier(options = {}) {
      const userOnEvent = options.onEvent
      const verifier = createM2MVerifier({
        secretKey: emulator.secretKey,
        apiUrl: emulator.url,
        retry: false,
        timeoutMs: 2000,
        now: clock.now,
        ...options,
        onEvent: (event) => {
          events.push(event)
          // Handed back as is, so an async listener's promise reaches the verifier.
          return userOnEvent?.(event)
        },
      })
      verifiers.push(verifier)
      return verifier
    },
    async release(verifier) {
      const at = verifiers.indexOf(verifier)
      if (at !== -1) verifiers.splice(at, 1)
      await verifier.close()
    },
    upstreamVerifies: () => emulator.stats().byOperation['verifyM2MToken'] ?? 0,
    jwksFetches: () => emulator.stats().byOperation['getJwks'] ?? 0,
    async close() {
      await Promise.all(verifiers.map((v) => v.close()))
      await emulator.close()
    },
  }
}

/** A well-formed opaque token the emulator never issued. */
export function unknownToken(n: number): string {
  return `mt_${'x'.repeat(40)}${String(n).padStart(8, '0')}`
}
