/** Public types of the emulator. */

/**
 * A machine to create at start. `scopedMachines` may name other seeded machines by id or name.
 *
 * @example
 * const seed: EmulatorSeed = {
 *   machines: [
 *     { name: 'billing', scopedMachines: ['ledger'] },
 *     { name: 'ledger', id: 'mch_ledger000000000000000000000', secretKey: 'ak_ledger_dev' },
 *   ],
 * }
 */
export interface EmulatorSeed {
  machines?: SeedMachine[]
}

/**
 * One seeded machine; fixed `id` and `secretKey` make keys stable across restarts.
 *
 * @example
 * const m: SeedMachine = { name: 'billing', defaultTokenTtl: 600 }
 */
export interface SeedMachine {
  name: string
  /** `mch_` + 27 word characters; generated when absent. */
  id?: string
  /** Must start with `ak_`; generated when absent. */
  secretKey?: string
  /** Seconds, 1–315360000. @defaultValue 3600 */
  defaultTokenTtl?: number
  /** Ids or names of machines this one may call (its tokens carry them in `scopes`). */
  scopedMachines?: string[]
}

/**
 * Options of {@link startEmulator}.
 *
 * @example
 * const emulator = await startEmulator({ port: 0, seed: { machines: [{ name: 'a' }] } })
 */
export interface EmulatorOptions {
  /** 0 picks a free port. @defaultValue 0 */
  port?: number
  /** @defaultValue '127.0.0.1' */
  host?: string
  /** The instance secret key (`sk_…`). Generated (`sk_test_…`) when absent, or taken from `dataFile`. */
  secretKey?: string
  /** Machines created at start (skipped when a machine with the same id or name already exists). */
  seed?: EmulatorSeed
  /** JSON file holding state across restarts; written atomically after each change. */
  dataFile?: string
  /** Clock in ms, for tests. @defaultValue Date.now */
  now?: () => number
  /** Receives one line per request (method, path, status, duration); never a key or token. */
  log?: (line: string) => void
  /** Largest accepted request body in bytes; larger bodies get 413. @defaultValue 65536 */
  maxBodyBytes?: number
  /** Faults active from the start. */
  faults?: EmulatorFaults
}

/**
 * A machine as the emulator's helpers return it (camelCase), with its current secret key.
 *
 * @example
 * const { id, secretKey } = await emulator.createMachine({ name: 'billing' })
 */
export interface EmulatorMachine {
  id: string
  name: string
  secretKey: string
  defaultTokenTtl: number
  scopedMachines: string[]
  createdAt: number
  updatedAt: number
}

/**
 * Request counters; `byOperation` is keyed by the spec's operationId (`verifyM2MToken`, …),
 * plus `getJwks` and `unknown` for unmatched routes. Admin (`/__emulator/…`) calls are not counted.
 *
 * @example
 * expect(emulator.stats().byOperation.verifyM2MToken).toBe(1)
 */
export interface EmulatorStats {
  total: number
  /** Requests answered by a fault (latency alone does not count). */
  faulted: number
  byOperation: Record<string, number>
}

/**
 * Switchable failures. Rates are fractions 0–1 (1 = every request). Each applies before auth, in
 * this order: down, latency, rate limit, error, then drop or trickle while writing the answer.
 *
 * @example
 * emulator.setFaults({ errorRate: 1, errorStatus: 502, operations: ['verifyM2MToken'] })
 */
export interface EmulatorFaults {
  /** Destroy every matching connection without answering. */
  down?: boolean
  /** Added delay before handling, in ms. */
  latencyMs?: number
  /** Fraction of requests answered with `errorStatus`. */
  errorRate?: number
  /** 500–599. @defaultValue 503 */
  errorStatus?: number
  /** Fraction answered 429 with `Retry-After`. */
  rateLimit?: { rate: number; retryAfterSeconds?: number }
  /** Fraction handled normally but whose answer is cut: headers sent, then the socket destroyed. */
  dropRate?: number
  /** Delay between 16-byte chunks of the answer body, in ms. */
  trickleMs?: number
  /** Only these operationIds are affected (all when absent). */
  operations?: string[]
  /** Seed for the fault dice, so fractional rates are reproducible. */
  seed?: number
}

/**
 * A running emulator.
 *
 * @example
 * const emulator = await startEmulator()
 * const m = await emulator.createMachine({ name: 'worker' })
 * await fetch(`${emulator.apiUrl}/m2m_tokens`, { method: 'POST', headers: { authorization: `Bearer ${m.secretKey}` }, body: '{}' })
 * await emulator.close()
 */
export interface Emulator {
  /** Origin, e.g. `http://127.0.0.1:54321` (what Clerk SDKs take as `apiUrl`). */
  readonly url: string
  /** `url + '/v1'`. */
  readonly apiUrl: string
  /** JWKS URL of the JWT-format token signing key. */
  readonly jwksUrl: string
  /** The instance secret key (`sk_…`). */
  readonly secretKey: string
  /** The PEM public key JWT-format tokens are signed with (what `CLERK_JWT_KEY` holds). */
  jwtPublicKey(): Promise<string>
  createMachine(input: {
    name: string
    scopedMachines?: string[]
    defaultTokenTtl?: number
    id?: string
    secretKey?: string
  }): Promise<EmulatorMachine>
  /** The machine with its current key, or `undefined`. */
  getMachine(machineId: string): EmulatorMachine | undefined
  listMachines(): EmulatorMachine[]
  /**
   * Mints a token for `machineId` in-process, with the same rules as `POST /m2m_tokens` (a
   * shortcut for tests that need a token, not the HTTP call). Throws `Error` on invalid input.
   */
  createToken(machineId: string, options?: EmulatorTokenOptions): Promise<EmulatorToken>
  /** Revokes a stored (opaque) token in-process. Throws `Error` when it does not exist. */
  revokeToken(tokenId: string, revocationReason?: string | null): Promise<EmulatorToken>
  /** Lets `fromMachineId` call `toMachineId` (its new tokens carry `toMachineId` in `scopes`). */
  addScope(fromMachineId: string, toMachineId: string): Promise<void>
  removeScope(fromMachineId: string, toMachineId: string): Promise<void>
  stats(): EmulatorStats
  resetStats(): void
  /** Merges into the current faults; `setFaults({})` clears them all; a `null` value clears one. */
  setFaults(faults: FaultsPatch): EmulatorFaults
  clearFaults(): void
  faults(): EmulatorFaults
  /** Stops listening, destroys open connections, writes `dataFile`. Idempotent. */
  close(): Promise<void>
}

/**
 * Argument of `setFaults`: each key set, or `null` to clear it.
 *
 * @example
 * emulator.setFaults({ latencyMs: null })
 */
export type FaultsPatch = { [K in keyof EmulatorFaults]?: EmulatorFaults[K] | null }

/**
 * Options of `emulator.createToken`, the body of `POST /m2m_tokens` in camelCase.
 *
 * @example
 * await emulator.createToken(machine.id, { secondsUntilExpiration: 60, claims: { role: 'reader' } })
 */
export interface EmulatorTokenOptions {
  /** `null`: never expires (opaque); absent: the machine's default TTL. */
  secondsUntilExpiration?: number | null
  claims?: unknown
  tokenFormat?: 'opaque' | 'jwt'
  minRemainingTtlSeconds?: number
}

/**
 * A token as the API returns it, in camelCase; `token` (the secret) only from `createToken`.
 *
 * @example
 * const { token, id, expiration } = await emulator.createToken(machine.id)
 */
export interface EmulatorToken {
  object: 'machine_to_machine_token'
  id: string
  subject: string
  claims: unknown
  scopes: string[]
  token?: string
  revoked: boolean
  revocationReason: string | null
  expired: boolean
  expiration: number | null
  lastUsedAt: number | null
  createdAt: number
  updatedAt: number
}
