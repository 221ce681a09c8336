/**
 * Retry policy: which failures are worth another attempt, and how long to wait before it.
 */
import { M2MApiError, M2MConnectionError } from '../errors.js'
import type { RetryOptions } from '../types.js'

/**
 * A retry policy with every default filled in.
 *
 * @example
 * const policy: ResolvedRetry = { ...DEFAULT_RETRY, maxRetries: 0 }
 */
export interface ResolvedRetry {
  maxRetries: number
  initialDelayMs: number
  maxDelayMs: number
  retryConnectionErrors: boolean
}

/**
 * The defaults: up to 2 retries, 100 ms doubling up to 2 s, connection errors included.
 *
 * @example
 * backoffDelay(0, DEFAULT_RETRY, Math.random) // somewhere in [0, 100)
 */
export const DEFAULT_RETRY: Readonly<ResolvedRetry> = Object.freeze({
  maxRetries: 2,
  initialDelayMs: 100,
  maxDelayMs: 2000,
  retryConnectionErrors: true,
})

/**
 * Merges the per-call policy over the client's. `false` on the call disables retries; a call
 * policy re-enables them over a client's `false`, starting from the defaults.
 *
 * @example
 * resolveRetry({ maxRetries: 5 }, { initialDelayMs: 10 }) // { maxRetries: 5, initialDelayMs: 10, … }
 */
export function resolveRetry(
  client: RetryOptions | false | undefined,
  call: RetryOptions | false | undefined,
): ResolvedRetry | false {
  if (call === false) return false
  if (client === false && call === undefined) return false
  const base = client === false ? {} : (client ?? {})
  const merged = { ...DEFAULT_RETRY }
  for (const source of [base, call ?? {}]) {
    for (const key of Object.keys(DEFAULT_RETRY) as (keyof ResolvedRetry)[]) {
      const value = source[key]
      if (value !== undefined) (merged as Record<string, unknown>)[key] = value
    }
  }
  return merged
}

/**
 * Full-jitter exponential backoff: a uniform delay in [0, min(maxDelayMs, initialDelayMs·2^retry)).
 * Jitter spreads the retries of many instances hit by the same outage.
 *
 * @param retryIndex 0 for the first retry.
 * @example
 * backoffDelay(1, DEFAULT_RETRY, Math.random) // somewhere in [0, 200)
 */
export function backoffDelay(
  retryIndex: number,
  policy: ResolvedRetry,
  random: () => number,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** retryIndex)
  return Math.floor(random() * ceiling)
}

/**
 * Parses `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, in ms from `nowMs`.
 *
 * @example
 * parseRetryAfter('2', Date.now()) // 2000
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  // Only IMF-fixdate and the obsolete RFC 850 form (both end in GMT): Date.parse alone would
  // also take '1.5' or '2026-01-01' and read them in local time.
  if (!/^[A-Za-z]{3,9}, \d{2}[ -][A-Za-z]{3}[ -]\d{2,4} \d{2}:\d{2}:\d{2} GMT$/.test(trimmed)) {
    return undefined
  }
  const at = Date.parse(trimmed)
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs)
}

/**
 * Whether a failure deserves another attempt. A non-idempotent call (createToken) is retried only
 * when the request certainly never reached the server: connection refused or DNS failure before
 * sending, and 429, which Clerk answers before doing anything.
 *
 * @example
 * isRetryable(err, policy, { idempotent: false, unsent: false })
 */
export function isRetryable(
  error: unknown,
  policy: ResolvedRetry,
  context: { idempotent: boolean; unsent: boolean },
): boolean {
  if (error instanceof M2MApiError) {
    if (error.status === 429) return true
    // 501 (and 505) say the server will never do it: retrying cannot help.
    const transient = error.status >= 500 && error.status !== 501 && error.status !== 505
    return transient && context.idempotent
  }
  if (error instanceof M2MConnectionError && error.code === 'connection_failed') {
    return policy.retryConnectionErrors && (context.idempotent || context.unsent)
  }
  return false
}
