/**
 * Hostile input: fast-check arbitraries over the Authorization header (and the token inside it),
 * and the property every adapter must hold for each of them: the answer is 400, 401 or 403 with
 * the JSON error body, never a 5xx, never the token echoed back, and no upstream call at all
 * unless the header is one well-formed Bearer credential carrying an M2M-shaped token
 * (`mayCallUpstream`).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Emulator } from '@m2m-guard/emulator'
import fc from 'fast-check'
import {
  type AppResponse,
  FRAMEWORKS,
  type Framework,
  type GuardedApp,
  startGuardedApp,
} from './apps.js'

const range = (from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => String.fromCharCode(from + i))

// What Node's HTTP client lets through in a header value (HTAB, visible ASCII, SP, obs-text):
// anything else is refused before it reaches a server, so it cannot be hostile input here.
const HEADER_CHARS = ['\t', ...range(0x20, 0x7e), ...range(0x80, 0xff)]
const B64TOKEN_CHARS = [
  ...range(0x41, 0x5a),
  ...range(0x61, 0x7a),
  ...range(0x30, 0x39),
  ...'-._~+/',
]
const BASE64URL_CHARS = [...range(0x41, 0x5a), ...range(0x61, 0x7a), ...range(0x30, 0x39), '-', '_']

const headerText = (maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...HEADER_CHARS), maxLength })
const b64token = (minLength: number, maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...B64TOKEN_CHARS), minLength, maxLength })
const base64url = (minLength: number, maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...BASE64URL_CHARS), minLength, maxLength })

const b64json = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** Tokens: near-misses of both M2M shapes, well-formed fakes, and plain junk. */
const token: fc.Arbitrary<string> = fc.oneof(
  // Opaque near-misses and fakes: right or wrong prefix, any length, any alphabet.
  fc
    .tuple(
      fc.constantFrom('mt_', 'm2m_', 'MT_', 'mt', 'mt-', 'mt__', 'sk_test_', 'ak_', 'oat_', ''),
      fc.oneof(base64url(0, 64), b64token(0, 64), headerText(64)),
    )
    .map(([prefix, rest]) => prefix + rest),
  // JWT-shaped: random segments, or a decodable header naming a key that does not exist.
  fc
    .tuple(base64url(1, 40), base64url(1, 80), base64url(0, 60))
    .map(([a, b, c]) => `${a}.${b}.${c}`),
  fc
    .tuple(
      fc.record({
        alg: fc.constantFrom('RS256', 'none', 'HS256', 'ES256', ''),
        kid: fc.string({ maxLength: 12 }),
        typ: fc.constantFrom('JWT', 'at+jwt'),
      }),
      fc.record({ sub: fc.string({ maxLength: 12 }), exp: fc.integer() }),
      base64url(0, 80),
    )
    .map(([header, payload, sig]) => `${b64json(header)}.${b64json(payload)}.${sig}`),
  b64token(1, 120),
  headerText(120),
  // Around the 4 KiB bound.
  fc.integer({ min: 4_070, max: 4_130 }).map((n) => `mt_${'a'.repeat(n)}`),
)

/** One Authorization header value. */
const headerValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 1, arbitrary: headerText(200) },
  // Well-formed framing, so the token arbitraries reach the shape check and the verifier.
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.constantFrom('Bearer', 'bearer', 'BEARER'), token)
      .map(([scheme, t]) => `${scheme} ${t}`),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.constantFrom(
          'Bearer',
          'bearer',
          'BEARER',
          'bEaReR',
          'Basic',
          'Token',
          'Bearer,',
          'Beare',
          '',
        ),
        fc.constantFrom(' ', ' ', ' ', '  ', '\t', '', ' \t', ',', ', '),
        token,
        fc.constantFrom('', '', '', ' ', '=', '==', ' extra', '\t', ',', ' Bearer x'),
      )
      .map(([scheme, sep, t, suffix]) => scheme + sep + t + suffix),
  },
)

/** The header lines of one request: none, one, or the header repeated. */
export const authorizationHeaders: fc.Arbitrary<string[]> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<string[]>([]) },
  { weight: 8, arbitrary: headerValue.map((v) => [v]) },
  { weight: 1, arbitrary: fc.array(headerValue, { minLength: 2, maxLength: 3 }) },
)

// The oracle below says which requests may cost an upstream call. It must be at least as strict
// as the real parser (packages/core/src/http/authorization.ts and verifier/shape.ts): every header
// it wrongly allows is a case where an upstream call for a malformed token passes unnoticed, so a
// looser oracle hides exactly the bugs this fuzz exists to find. It is written from the RFC 6750
// grammar and the documented limits, not by importing the parser: a test whose oracle is the code
// under test cannot fail. Where the two disagree, one of them is wrong, and the fuzz says so.

// The behaviour table's 4 KiB bounds: on the whole Authorization value, and on the token itself
// before any network.
const MAX_HEADER_CHARS = 4096
const MAX_TOKEN_CHARS = 4096
// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token, narrowed to exactly one SP (the documented
// rule); b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". The scheme is
// case-insensitive (RFC 9110 §11.1), in ASCII only.
const BEARER_CREDENTIALS = /^[Bb][Ee][Aa][Rr][Ee][Rr] ([A-Za-z0-9\-._~+/]+=*)$/
// The two shapes of an M2M token: Clerk's opaque secret (`mt_`, or the legacy `m2m_`, then at
// least 16 base64url characters), or a JWT (three non-empty base64url segments).
const OPAQUE = /^(?:mt_|m2m_)[A-Za-z0-9_-]{16,}$/
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
// RFC 9110 §5.5: the whitespace around a field value is not part of it; the server never sees it.
const OWS_AROUND = /^[ \t]+|[ \t]+$/g

/**
 * Whether a request with these Authorization header lines may cost an upstream call: only when
 * the header is sent exactly once, is at most 4096 characters, is `Bearer` (any case), one space
 * and one RFC 6750 b64token, and that token has an M2M shape and is at most 4096 characters.
 * Anything else must be answered without a single upstream call.
 *
 * @example
 * mayCallUpstream(['Bearer mt_0123456789abcdef']) // true
 * mayCallUpstream(['Bearer\tmt_0123456789abcdef']) // false
 */
export function mayCallUpstream(values: readonly string[]): boolean {
  // Twice (or more) is ambiguous, whatever the copies hold: which one would a proxy pick?
  if (values.length !== 1) return false
  const value = (values[0] as string).replace(OWS_AROUND, '')
  if (value.length > MAX_HEADER_CHARS) return false
  const token = BEARER_CREDENTIALS.exec(value)?.[1]
  if (token === undefined || token.length > MAX_TOKEN_CHARS) return false
  return OPAQUE.test(token) || JWT.test(token)
}

/**
 * A hostile request that is checked on every run, whatever the seed.
 *
 * @example
 * for (const { name, values, mayCallUpstream } of regressionCases()) check(name, values, mayCallUpstream)
 */
export interface RegressionCase {
  name: string
  values: string[]
  /** The oracle's verdict, stated by hand: a change to the oracle that flips it fails the suite. */
  mayCallUpstream: boolean
}

/**
 * Headers the oracle once let through although the parser must refuse them (a tab, two spaces, a
 * header over 4 KiB, the header sent twice), with accepted neighbours as controls. Each call
 * builds tokens never seen before, so no cached verdict can hide an upstream call: were the parser
 * relaxed to accept any of the refused ones, its well-shaped token would go upstream and the
 * property would fail.
 *
 * @example
 * for (const c of regressionCases()) await app.send(c.values.map((v) => ['authorization', v]))
 */
export function regressionCases(): RegressionCase[] {
  const fresh = () => `mt_${randomBytes(24).toString('base64url')}`
  // A header of exactly `length` characters around a well-shaped token.
  const sized = (length: number) => {
    const t = fresh()
    return `Bearer ${t}${'a'.repeat(length - 'Bearer '.length - t.length)}`
  }
  const twice = fresh()
  return [
    { name: 'a tab after Bearer', values: [`Bearer\t${fresh()}`], mayCallUpstream: false },
    { name: 'two spaces after Bearer', values: [`Bearer  ${fresh()}`], mayCallUpstream: false },
    {
      name: 'a header over 4 KiB (token under 4 KiB)',
      // `mt_` + 4090 characters: 4100 in all, while the token alone (4093) is within its bound.
      values: [`Bearer ${fresh()}${'a'.repeat(4090 - 32)}`],
      mayCallUpstream: false,
    },
    { name: 'a header of 4097 characters', values: [sized(4097)], mayCallUpstream: false },
    {
      name: 'the header sent twice',
      values: [`Bearer ${twice}`, `Bearer ${twice}`],
      mayCallUpstream: false,
    },
    {
      name: 'a second header with another scheme',
      values: [`Bearer ${fresh()}`, 'Basic dXNlcjpwYXNz'],
      mayCallUpstream: false,
    },
    {
      name: 'a space before the token ends',
      values: [`Bearer ${fresh()} x`],
      mayCallUpstream: false,
    },
    { name: 'lowercase bearer', values: [`bearer ${fresh()}`], mayCallUpstream: true },
    { name: 'uppercase BEARER', values: [`BEARER ${fresh()}`], mayCallUpstream: true },
    {
      name: 'whitespace around the value (not part of it)',
      values: [` \tBearer ${fresh()}\t `],
      mayCallUpstream: true,
    },
    { name: 'a header of exactly 4096 characters', values: [sized(4096)], mayCallUpstream: true },
  ]
}

const ERRORS = new Set([
  'missing_token',
  'invalid_request',
  'invalid_token',
  'token_revoked',
  'token_expired',
  'insufficient_scope',
])

/**
 * Checks one answer to a hostile request. Throws an AssertionError saying what broke.
 *
 * @example
 * checkAnswer(res, ['Bearer junk'], 0)
 */
export function checkAnswer(
  res: AppResponse,
  values: readonly string[],
  upstreamCalls: number,
): void {
  const what = `${JSON.stringify(values).slice(0, 300)} → ${res.status} ${res.bodyText.slice(0, 200)}`
  assert.ok([400, 401, 403].includes(res.status), `only 400/401/403: ${what}`)
  const body = JSON.parse(res.bodyText) as { error?: unknown; error_description?: unknown }
  assert.ok(typeof body.error === 'string' && ERRORS.has(body.error), `known error code: ${what}`)
  assert.equal(typeof body.error_description, 'string', `error_description: ${what}`)
  assert.match(res.headers['www-authenticate'] ?? '', /^Bearer realm="api"/, `challenge: ${what}`)
  if (!mayCallUpstream(values)) {
    assert.equal(upstreamCalls, 0, `no upstream call for a malformed token: ${what}`)
  } else {
    // One verify (or one JWKS fetch for an unknown key id) at most; repeats are cached.
    assert.ok(upstreamCalls <= 1, `at most one upstream call: ${upstreamCalls} for ${what}`)
  }
  for (const value of values) {
    const t = value.trim()
    // A 16+ character credential must never come back, in the body or any header.
    if (t.length >= 16 && t !== 'Bearer') {
      assert.ok(!JSON.stringify(res).includes(t), `the credential was echoed back: ${what}`)
    }
  }
}

/** The three apps the fuzz runs through, over one emulator. */
export interface FuzzRig {
  apps: GuardedApp[]
  close(): Promise<void>
}

/**
 * Starts one guarded app per framework against `emulator`, the receiver being a fresh machine.
 *
 * @example
 * const rig = await startFuzzRig(emulator)
 */
export async function startFuzzRig(
  emulator: Emulator,
  frameworks: readonly Framework[] = FRAMEWORKS,
): Promise<FuzzRig> {
  const receiver = await emulator.createMachine({ name: `receiver-${Date.now()}` })
  const apps = await Promise.all(
    frameworks.map((framework) =>
      startGuardedApp(framework, {
        apiUrl: emulator.url,
        secretKey: emulator.secretKey,
        machineId: receiver.id,
      }),
    ),
  )
  return { apps, close: async () => void (await Promise.all(apps.map((app) => app.close()))) }
}

/**
 * Attributes the emulator's request count to one request at a time. After each answer it waits
 * until the count is stable (and no verifier has a call in flight) before reading it, and before
 * the next request it checks that nothing arrived in between; `assertNoStrayCalls` checks the
 * same after the last one. So a call made after the answer is counted for the request that caused
 * it or reported as late; only one slower than the settling and landing inside the next request's
 * own window could still be counted there (and fail it, unless that request may call upstream).
 *
 * @example
 * const ledger = new UpstreamLedger(emulator, rig)
 * const { result, calls } = await ledger.measure('express', () => app.send(headers))
 */
export class UpstreamLedger {
  readonly #emulator: Emulator
  readonly #rig: FuzzRig | undefined
  /** The emulator's count when the last request was settled. */
  #seen: number
  #last = 'the start of the run'

  constructor(emulator: Emulator, rig?: FuzzRig) {
    this.#emulator = emulator
    this.#rig = rig
    this.#seen = emulator.stats().total
  }

  /** Runs `request` and returns its result with the upstream calls it caused. */
  async measure<T>(
    label: string,
    request: () => Promise<T>,
  ): Promise<{ result: T; calls: number }> {
    this.#checkNothingSince()
    const before = this.#seen
    let result: T
    try {
      result = await request()
    } finally {
      // Also after a failed request, so the next one starts from a settled count.
      this.#seen = await this.#settled()
      this.#last = label
    }
    return { result, calls: this.#seen - before }
  }

  /** Waits for the emulator to go quiet, then throws if any call came after the last request. */
  async assertNoStrayCalls(quietMs = 50): Promise<void> {
    await sleep(quietMs)
    await this.#settled()
    this.#checkNothingSince()
  }

  #checkNothingSince(): void {
    const stray = this.#emulator.stats().total - this.#seen
    if (stray !== 0) {
      throw new Error(`${stray} upstream call(s) arrived after the answer to ${this.#last}`)
    }
  }

  /** The count once it has not moved for a few event-loop turns and nothing is in flight. */
  async #settled(): Promise<number> {
    const deadline = performance.now() + SETTLE_TIMEOUT_MS
    let count = this.#emulator.stats().total
    let quiet = 0
    while (quiet < SETTLE_TURNS) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      const now = this.#emulator.stats().total
      const busy = this.#rig?.apps.some((app) => app.verifier.stats().inFlight > 0) ?? false
      quiet = now === count && !busy ? quiet + 1 : 0
      count = now
      if (performance.now() > deadline) {
        throw new Error(
          `upstream calls still in flight ${SETTLE_TIMEOUT_MS} ms after ${this.#last}`,
        )
      }
    }
    return count
  }
}

// Event-loop turns (each with its I/O poll) without a new call before a count is final. The
// in-flight check covers the verifier's own calls however slow; the turns cover the rest, and
// whatever comes later still fails the next `measure` or `assertNoStrayCalls`.
const SETTLE_TURNS = 3
const SETTLE_TIMEOUT_MS = 10_000

/**
 * The property, through every app of the rig, one app at a time, each request's upstream calls
 * attributed by `ledger` (call `ledger.assertNoStrayCalls()` after the run).
 *
 * @example
 * const ledger = new UpstreamLedger(emulator, rig)
 * await fc.assert(hostileProperty(rig, ledger), { numRuns: 1000, seed: 42, examples: hostileExamples() })
 * await ledger.assertNoStrayCalls()
 */
export function hostileProperty(
  rig: FuzzRig,
  ledger: UpstreamLedger,
): fc.IAsyncProperty<[string[]]> {
  return fc.asyncProperty(authorizationHeaders, async (values) => {
    for (const app of rig.apps) {
      const label = `${app.framework} ${JSON.stringify(values).slice(0, 200)}`
      const { result, calls } = await ledger.measure(label, () =>
        app.send(values.map((v) => ['authorization', v] as const)),
      )
      try {
        checkAnswer(result, values, calls)
      } catch (err) {
        throw new Error(`${app.framework}: ${(err as Error).message}`)
      }
    }
  })
}

/**
 * The regression cases as fast-check examples: run first on every `fc.assert`, whatever the seed.
 *
 * @example
 * fc.assert(hostileProperty(rig, ledger), { seed, examples: hostileExamples() })
 */
export function hostileExamples(): [string[]][] {
  return regressionCases().map((c) => [c.values])
}
