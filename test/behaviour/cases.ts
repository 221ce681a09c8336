/**
 * THE behaviour table: every case is data (a token recipe, requests, expected answers, and the
 * number of verify calls the emulator must see), run unchanged against every adapter by
 * `run.ts`. It covers each row of DESIGN.md's behaviour table plus policy, optional mode,
 * CORS preflights (no exception) and the cache / upstream scenarios.
 */
import type { FaultsPatch } from '@m2m-guard/emulator'
import { ODD_REALM, type RouteName } from './routes.js'

/**
 * How the case's token is obtained. Minted tokens come from the emulator through the real client;
 * `literal` is sent as written.
 */
export type TokenRecipe =
  /** Minted by the caller machine (scoped to the receiver), with optional claims and lifetime. */
  | { kind: 'caller'; claims?: Record<string, unknown>; seconds?: number }
  /** Minted by a second machine scoped to the receiver but absent from `allowedSubjects`. */
  | { kind: 'caller2' }
  /** Minted by a machine with no scope to the receiver. */
  | { kind: 'outsider' }
  /** Minted by the caller, then revoked upstream before the case runs. */
  | { kind: 'revoked' }
  /** Minted by the caller with a 1 s lifetime, used only once it has expired. */
  | { kind: 'expired' }
  /** Well-formed `mt_…` that the emulator never issued. */
  | { kind: 'unknown' }
  | { kind: 'literal'; value: string }

/** What a response must be, exactly. */
export interface Expected {
  status: number
  /** The exact `WWW-Authenticate`, or `null` for none. */
  wwwAuthenticate: string | null
  /** `'identity'`: `{ m2m: <the case token's identity> }`; `'anonymous'`: `{ m2m: null }`. */
  body: 'identity' | 'anonymous' | null | { error: string; error_description: string }
  /** The exact `Retry-After`, or `null` for none. */
  retryAfter: string | null
  /** `POST /m2m_tokens/verify` calls the emulator received because of this step. */
  upstreamCalls: number
  /** Further headers that must be present with these values; `null`: must be absent. */
  headers?: Record<string, string | null>
}

/** A request; `{token}` in a header value is replaced by the case's token. */
export interface Send {
  method?: 'GET' | 'OPTIONS'
  route: RouteName
  /** Values of `Authorization`, one header line each; omitted means no header. */
  authorization?: string[]
  headers?: Array<[string, string]>
  /** Send this many at once; every answer must match and the call count is for all of them. */
  concurrently?: number
}

/** One step of a case. */
export type Step =
  | { send: Send; expect: Expected }
  | { wait: number }
  | { faults: FaultsPatch }
  | { clearFaults: true }
  /** Revoke the case token at Clerk only; caches do not hear about it. */
  | { revokeUpstream: true }
  /** Revoke through the app's own verifier (`POST /admin/revoke/:id`), which also evicts. */
  | { revokeThroughApp: true }

/** Something a row needs from the target's transport, beyond plain HTTP. */
export type Capability = 'emptyAuthorization'

/** One row of the table. */
export interface BehaviourCase {
  name: string
  token?: TokenRecipe
  steps: Step[]
  /** Runs only on targets whose transport can deliver this; skipped (visibly) elsewhere. */
  needs?: Capability
}

// Descriptions are part of the contract: callers and operators read them.
const D = {
  missing: 'No Bearer token was sent; send Authorization: Bearer <M2M token>',
  empty: 'The Authorization header is empty',
  noToken: 'The Bearer credentials are missing a token',
  twoTokens: 'Expected exactly one space after "Bearer" and a single token',
  badChars: 'The Bearer token contains characters not allowed by RFC 6750',
  tooLong: 'The Authorization header is longer than 4096 characters',
  repeated: 'The Authorization header was sent more than once',
  notM2M: 'The token is not an M2M token',
  unknown: 'The token is unknown',
  revoked: 'The token has been revoked',
  expired: 'The token has expired',
  notScoped: 'The token is not scoped to this machine',
  subject: (id: string) => `Machine ${id} is not allowed to call this resource`,
  claims: "The token's claims do not meet the requirements of this resource",
  unavailable: 'Token verification is temporarily unavailable',
  misconfigured:
    'The Clerk API refused the verifier secret key; check the secretKey option, CLERK_MACHINE_SECRET_KEY or CLERK_SECRET_KEY',
}

/** Exposed so the runner can fill in `subject()` with real ids. */
export const DESCRIPTIONS: typeof D = D

const REALM = 'Bearer realm="api"'
// RFC 9110 quoted-string: `"` and `\` inside a parameter value are backslash-escaped.
const quoted = (value: string): string => `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`
const challenge = (error: string, description: string): string =>
  `Bearer realm="api", error="${error}", error_description=${quoted(description)}`
const err = (error: string, description: string) => ({ error, error_description: description })

const bad = (description: string): Expected => ({
  status: 400,
  wwwAuthenticate: challenge('invalid_request', description),
  body: err('invalid_request', description),
  retryAfter: null,
  upstreamCalls: 0,
})
const ok = (upstreamCalls: number): Expected => ({
  status: 200,
  wwwAuthenticate: null,
  body: 'identity',
  retryAfter: null,
  upstreamCalls,
})
const unauthorized = (error: string, description: string, upstreamCalls: number): Expected => ({
  status: 401,
  wwwAuthenticate: challenge('invalid_token', description),
  body: err(error, description),
  retryAfter: null,
  upstreamCalls,
})
const forbidden = (description: string, upstreamCalls: number): Expected => ({
  status: 403,
  wwwAuthenticate: challenge('insufficient_scope', description),
  body: err('insufficient_scope', description),
  retryAfter: null,
  upstreamCalls,
})
const unavailable = (retryAfter: string, upstreamCalls: number): Expected => ({
  status: 503,
  wwwAuthenticate: null,
  body: err('verification_unavailable', D.unavailable),
  retryAfter,
  upstreamCalls,
})
const missing: Expected = {
  status: 401,
  wwwAuthenticate: REALM,
  body: err('missing_token', D.missing),
  retryAfter: null,
  upstreamCalls: 0,
}

const bearer = ['Bearer {token}']
const verifyOnly: FaultsPatch = { operations: ['verifyM2MToken'] }
const preflight: Send = {
  method: 'OPTIONS',
  route: 'protected',
  headers: [
    ['Origin', 'https://dashboard.example'],
    ['Access-Control-Request-Method', 'GET'],
    ['Access-Control-Request-Headers', 'authorization'],
  ],
}

/** Placeholder replaced by the runner with the id of the second caller machine. */
export const CALLER2_ID = '{caller2}'

/**
 * The table. Each case starts from a fresh token, so call counts never depend on another row.
 */
export const cases: BehaviourCase[] = [
  // — no credentials
  {
    name: 'no Authorization header → 401 missing_token, bare challenge',
    steps: [{ send: { route: 'protected' }, expect: missing }],
  },
  {
    name: 'another scheme (Basic) counts as no Bearer credentials → 401 bare challenge',
    steps: [
      { send: { route: 'protected', authorization: ['Basic dXNlcjpwYXNz'] }, expect: missing },
    ],
  },

  // — malformed headers: 400, never an upstream call
  {
    name: 'empty Authorization → 400',
    needs: 'emptyAuthorization',
    steps: [{ send: { route: 'protected', authorization: [''] }, expect: bad(D.empty) }],
  },
  {
    name: '"Bearer" without a token → 400',
    steps: [{ send: { route: 'protected', authorization: ['Bearer'] }, expect: bad(D.noToken) }],
  },
  {
    name: 'two tokens → 400',
    token: { kind: 'caller' },
    steps: [
      {
        send: { route: 'protected', authorization: ['Bearer {token} {token}'] },
        expect: bad(D.twoTokens),
      },
    ],
  },
  {
    name: 'two spaces after Bearer → 400',
    token: { kind: 'caller' },
    steps: [
      {
        send: { route: 'protected', authorization: ['Bearer  {token}'] },
        expect: bad(D.twoTokens),
      },
    ],
  },
  {
    name: 'characters outside RFC 6750 b64token → 400',
    token: { kind: 'caller' },
    steps: [
      {
        send: { route: 'protected', authorization: ['Bearer {token}$!'] },
        expect: bad(D.badChars),
      },
    ],
  },
  {
    name: 'header over 4 KiB → 400',
    steps: [
      {
        send: { route: 'protected', authorization: [`Bearer mt_${'a'.repeat(4100)}`] },
        expect: bad(D.tooLong),
      },
    ],
  },
  {
    name: 'Authorization sent twice → 400 (even when both are valid)',
    token: { kind: 'caller' },
    steps: [
      {
        send: { route: 'protected', authorization: ['Bearer {token}', 'Bearer {token}'] },
        expect: bad(D.repeated),
      },
    ],
  },

  // — token shape and upstream answers
  {
    name: 'not an M2M token shape → 401 invalid_token, no upstream call',
    steps: [
      {
        send: { route: 'protected', authorization: ['Bearer sk_live_definitely_not_an_m2m_token'] },
        expect: unauthorized('invalid_token', D.notM2M, 0),
      },
    ],
  },
  {
    name: 'unknown mt_ token → 401 invalid_token',
    token: { kind: 'unknown' },
    steps: [
      {
        send: { route: 'protected', authorization: bearer },
        expect: unauthorized('invalid_token', D.unknown, 1),
      },
    ],
  },
  {
    name: 'revoked token → 401 token_revoked',
    token: { kind: 'revoked' },
    steps: [
      {
        send: { route: 'protected', authorization: bearer },
        expect: unauthorized('token_revoked', D.revoked, 1),
      },
    ],
  },
  {
    name: 'valid token whose scopes lack this machine → 403 insufficient_scope',
    token: { kind: 'outsider' },
    steps: [
      { send: { route: 'protected', authorization: bearer }, expect: forbidden(D.notScoped, 1) },
    ],
  },
  {
    name: 'valid token → 200 with the identity; the second request is served from the cache',
    token: { kind: 'caller' },
    steps: [
      { send: { route: 'protected', authorization: bearer }, expect: ok(1) },
      { send: { route: 'protected', authorization: bearer }, expect: ok(0) },
    ],
  },
  {
    name: 'scheme is case-insensitive ("bEaReR")',
    token: { kind: 'caller' },
    steps: [{ send: { route: 'protected', authorization: ['bEaReR {token}'] }, expect: ok(1) }],
  },

  // — route policy
  {
    name: 'allowedSubjects: listed caller → 200',
    token: { kind: 'caller' },
    steps: [{ send: { route: 'subjects', authorization: bearer }, expect: ok(1) }],
  },
  {
    name: 'allowedSubjects: another machine → 403',
    token: { kind: 'caller2' },
    steps: [
      {
        send: { route: 'subjects', authorization: bearer },
        expect: forbidden(D.subject(CALLER2_ID), 1),
      },
    ],
  },
  {
    name: 'requireClaims object: matching claims → 200',
    token: { kind: 'caller', claims: { role: 'reporter', extra: 1 } },
    steps: [{ send: { route: 'claims', authorization: bearer }, expect: ok(1) }],
  },
  {
    name: 'requireClaims object: other value → 403',
    token: { kind: 'caller', claims: { role: 'viewer' } },
    steps: [{ send: { route: 'claims', authorization: bearer }, expect: forbidden(D.claims, 1) }],
  },
  {
    name: 'requireClaims object: no claims → 403',
    token: { kind: 'caller' },
    steps: [{ send: { route: 'claims', authorization: bearer }, expect: forbidden(D.claims, 1) }],
  },
  {
    name: 'requireClaims predicate: true → 200',
    token: { kind: 'caller', claims: { tier: 'gold' } },
    steps: [{ send: { route: 'claims-fn', authorization: bearer }, expect: ok(1) }],
  },
  {
    name: 'requireClaims predicate: false → 403',
    token: { kind: 'caller', claims: { tier: 'silver' } },
    steps: [
      { send: { route: 'claims-fn', authorization: bearer }, expect: forbidden(D.claims, 1) },
    ],
  },

  // — optional mode
  {
    name: 'optional: no credentials → handler runs without identity',
    steps: [
      {
        send: { route: 'optional' },
        expect: {
          status: 200,
          wwwAuthenticate: null,
          body: 'anonymous',
          retryAfter: null,
          upstreamCalls: 0,
        },
      },
    ],
  },
  {
    name: 'optional: valid token → identity attached',
    token: { kind: 'caller' },
    steps: [{ send: { route: 'optional', authorization: bearer }, expect: ok(1) }],
  },
  {
    name: 'optional: unknown token is still rejected',
    token: { kind: 'unknown' },
    steps: [
      {
        send: { route: 'optional', authorization: bearer },
        expect: unauthorized('invalid_token', D.unknown, 1),
      },
    ],
  },
  {
    name: 'optional: malformed header is still rejected',
    steps: [
      { send: { route: 'optional', authorization: ['Bearer a b'] }, expect: bad(D.twoTokens) },
    ],
  },

  // — realm, escaped inside the quoted string
  {
    name: 'custom realm with quotes and backslash is escaped',
    steps: [
      {
        send: { route: 'realm' },
        expect: { ...missing, wwwAuthenticate: 'Bearer realm="reports \\"v2\\" \\\\ internal"' },
      },
    ],
  },

  // — CORS preflight: no exception (fail closed). Each app mounts its own OPTIONS handler behind
  // the guard, answering CORS headers and the identity; their absence proves it never ran.
  {
    name: 'CORS preflight without credentials → 401 missing_token, the OPTIONS handler never runs',
    steps: [
      {
        send: preflight,
        expect: {
          ...missing,
          headers: { 'access-control-allow-origin': null, 'access-control-allow-methods': null },
        },
      },
    ],
  },
  {
    name: 'CORS preflight with a valid token → verified, the OPTIONS handler runs with the identity',
    token: { kind: 'caller' },
    steps: [
      {
        send: { ...preflight, authorization: bearer },
        expect: {
          ...ok(1),
          headers: { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET' },
        },
      },
    ],
  },

  // — our side is wrong
  {
    name: 'upstream rejects our own secret key → 500 verifier_misconfigured, no challenge',
    token: { kind: 'caller' },
    steps: [
      {
        send: { route: 'misconfigured', authorization: bearer },
        expect: {
          status: 500,
          wwwAuthenticate: null,
          body: err('verifier_misconfigured', D.misconfigured),
          retryAfter: null,
          upstreamCalls: 1,
        },
      },
    ],
  },

  // — upstream failures: fail closed with 503 + Retry-After (one retry on this route)
  {
    name: 'upstream answers 5xx → 503 after a retry',
    token: { kind: 'caller' },
    steps: [
      { faults: { ...verifyOnly, errorRate: 1, errorStatus: 502 } },
      { send: { route: 'upstream', authorization: bearer }, expect: unavailable('1', 2) },
      { clearFaults: true },
    ],
  },
  {
    name: 'upstream answers 429 with a Retry-After beyond the deadline → 503 carrying it',
    token: { kind: 'caller' },
    steps: [
      { faults: { ...verifyOnly, rateLimit: { rate: 1, retryAfterSeconds: 7 } } },
      { send: { route: 'upstream', authorization: bearer }, expect: unavailable('7', 1) },
      { clearFaults: true },
    ],
  },
  {
    name: 'upstream times out → 503',
    token: { kind: 'caller' },
    steps: [
      { faults: { ...verifyOnly, latencyMs: 1500 } },
      { send: { route: 'upstream', authorization: bearer }, expect: unavailable('1', 1) },
      { clearFaults: true },
    ],
  },
  {
    name: 'upstream down → 503, then recovered → 200',
    token: { kind: 'caller' },
    steps: [
      { faults: { ...verifyOnly, down: true } },
      { send: { route: 'upstream', authorization: bearer }, expect: unavailable('1', 2) },
      { clearFaults: true },
      { send: { route: 'upstream', authorization: bearer }, expect: ok(1) },
    ],
  },

  // — cache lifecycle
  // (Placed late: its token is minted before the first row, so its 1 s lifetime is over by now.)
  {
    name: 'expired token → 401 token_expired',
    token: { kind: 'expired' },
    steps: [
      {
        send: { route: 'protected', authorization: bearer },
        expect: unauthorized('token_expired', D.expired, 1),
      },
    ],
  },
  {
    name: 'a token that expires while cached is rejected once it expires',
    token: { kind: 'caller', seconds: 1 },
    steps: [
      { send: { route: 'protected', authorization: bearer }, expect: ok(1) },
      { send: { route: 'protected', authorization: bearer }, expect: ok(0) },
      { wait: 1200 },
      // The entry never outlives the token: the verifier rejects it itself, without asking Clerk.
      {
        send: { route: 'protected', authorization: bearer },
        expect: unauthorized('token_expired', D.expired, 0),
      },
    ],
  },
  {
    name: 'revoked at Clerk only: still accepted from the cache (the ttlMs revocation bound)',
    token: { kind: 'caller' },
    steps: [
      { send: { route: 'protected', authorization: bearer }, expect: ok(1) },
      { revokeUpstream: true },
      { send: { route: 'protected', authorization: bearer }, expect: ok(0) },
    ],
  },
  {
    name: 'revoked through the verifier → rejected at once',
    token: { kind: 'caller' },
    steps: [
      { send: { route: 'revocable', authorization: bearer }, expect: ok(1) },
      { revokeThroughApp: true },
      // Revocation evicts and remembers the id: no need to ask Clerk again.
      {
        send: { route: 'revocable', authorization: bearer },
        expect: unauthorized('token_revoked', D.revoked, 0),
      },
    ],
  },
  {
    name: '200 concurrent requests with one new token make one upstream call',
    token: { kind: 'caller' },
    steps: [
      { send: { route: 'protected', authorization: bearer, concurrently: 200 }, expect: ok(1) },
    ],
  },
]

/** The realm `/m2m/realm` uses, re-exported for readers of the table. */
export { ODD_REALM }
