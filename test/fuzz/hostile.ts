/**
 * Hostile input: fast-check arbitraries over the Authorization header (and the token inside it),
 * and the property every adapter must hold for each of them: the answer is 400, 401 or 403 with
 * the JSON error body, never a 5xx, never the token echoed back, and no upstream call at all
 * unless the header carries something shaped like an M2M token.
 */
import assert from 'node:assert/strict'
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

// The shapes the verifier may spend an upstream call on (shape.ts), restated independently and
// more liberally (any whitespace, any length), so a disagreement can only hide nothing.
const OPAQUE = /^(?:mt_|m2m_)[A-Za-z0-9_-]{16,}$/
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * Whether any of these header values carries a token shaped like an M2M token. When false, the
 * request must not cost a single upstream call.
 *
 * @example
 * mayCallUpstream(['Bearer mt_0123456789abcdef']) // true
 */
export function mayCallUpstream(values: readonly string[]): boolean {
  return values.some((value) => {
    const match = /^[ \t]*bearer[ \t]+(\S+)[ \t]*$/i.exec(value)
    const t = match?.[1]
    return t !== undefined && (OPAQUE.test(t) || JWT.test(t))
  })
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
 * The property, through every app of the rig, one app at a time so that the emulator's counter
 * attributes each upstream call to exactly one request.
 *
 * @example
 * await fc.assert(hostileProperty(rig, emulator), { numRuns: 1000, seed: 42 })
 */
export function hostileProperty(rig: FuzzRig, emulator: Emulator): fc.IAsyncProperty<[string[]]> {
  return fc.asyncProperty(authorizationHeaders, async (values) => {
    for (const app of rig.apps) {
      const before = emulator.stats().total
      const res = await app.send(values.map((v) => ['authorization', v] as const))
      try {
        checkAnswer(res, values, emulator.stats().total - before)
      } catch (err) {
        throw new Error(`${app.framework}: ${(err as Error).message}`)
      }
    }
  })
}
