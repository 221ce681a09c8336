/** Test helpers: a fetch wrapper that validates every answer against Clerk's spec. */
import { expect } from 'vitest'
import { assertClerkErrors, assertResponseMatchesSpec } from '../../../test/support/spec.js'
import type { Emulator } from '../src/index.js'

export interface Answer<T = unknown> {
  status: number
  headers: Headers
  body: T
}

export interface CallOptions {
  key?: string | undefined
  body?: unknown
  /** Sent as is instead of JSON.stringify(body). */
  raw?: string
  headers?: Record<string, string>
  /** Prefix: '/v1' (default) or '' for the unversioned paths. */
  prefix?: '' | '/v1'
}

/** Statuses the spec documents per operation are validated with its schema; other errors as ClerkErrors. */
export function validate(
  operationId: string | undefined,
  status: number,
  headers: Headers,
  body: unknown,
): void {
  const traceHeader = headers.get('x-clerk-trace-id')
  expect(traceHeader).toMatch(/^[0-9a-f]{32}$/)
  if (status >= 400) {
    assertClerkErrors(body)
    expect((body as { clerk_trace_id?: string }).clerk_trace_id).toBe(traceHeader)
  }
  if (!operationId) {
    if (status < 400) throw new Error(`no operationId to validate a ${status} answer`)
    return
  }
  try {
    assertResponseMatchesSpec(operationId, status, body)
  } catch (err) {
    // Statuses the spec leaves undocumented (401 on createM2MToken, 429, 5xx…) are still Clerk errors.
    if (status >= 400 && /documents no/.test((err as Error).message)) return
    throw err
  }
}

export function client(emulator: Emulator) {
  return async function call<T = Record<string, unknown>>(
    operationId: string | undefined,
    method: string,
    path: string,
    options: CallOptions = {},
  ): Promise<Answer<T>> {
    const headers: Record<string, string> = { ...options.headers }
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`
    let body: string | undefined = options.raw
    if (body === undefined && options.body !== undefined) {
      body = JSON.stringify(options.body)
      headers['content-type'] ??= 'application/json'
    }
    const res = await fetch(`${emulator.url}${options.prefix ?? '/v1'}${path}`, {
      method,
      headers,
      body,
    })
    const text = await res.text()
    const parsed = text ? (JSON.parse(text) as unknown) : undefined
    if (operationId !== 'getJwks') validate(operationId, res.status, res.headers, parsed)
    return { status: res.status, headers: res.headers, body: parsed as T }
  }
}

export type Call = ReturnType<typeof client>

export interface Token {
  id: string
  token: string
  subject: string
  scopes: string[]
  claims: unknown
  revoked: boolean
  revocation_reason: string | null
  expired: boolean
  expiration: number | null
  last_used_at: number | null
  created_at: number
  updated_at: number
}

export interface ErrorBody {
  errors: { code: string; message: string; long_message: string; meta?: Record<string, unknown> }[]
  clerk_trace_id: string
}

export function errorCode(answer: Answer<unknown>): string | undefined {
  return (answer.body as ErrorBody).errors[0]?.code
}

/** A controllable clock for `startEmulator({ now })`. */
export function manualClock(start = Date.UTC(2026, 0, 1)) {
  let t = start
  return {
    now: () => t,
    advance(ms: number) {
      t += ms
    },
  }
}
