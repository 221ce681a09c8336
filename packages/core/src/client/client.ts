/**
 * The client: one request loop (deadline, abort, retries) shared by the four operations.
 */
import { send as defaultTransport } from '#transport'
import { type M2MApiError, M2MConnectionError } from '../errors.js'
import type {
  CreateTokenParams,
  ListAllTokensParams,
  ListTokensParams,
  M2MClient,
  M2MClientOptions,
  M2MToken,
  M2MTokenList,
  M2MTokenWithSecret,
  RequestOptions,
  RevokeTokenParams,
  VerifyTokenParams,
} from '../types.js'
import { connectionError, decodeApiError, redactor, wasNeverSent } from './api-errors.js'
import { fetchTransport } from './fetch-adapter.js'
import { fingerprintSecretKey } from './fingerprint.js'
import { resolveClientOptions } from './options.js'
import { backoffDelay, isRetryable, parseRetryAfter, resolveRetry } from './retry.js'
import { BodyTooLargeError, CallAbort, type Transport } from './transport.js'
import {
  validateCreateTokenParams,
  validateListAllTokensParams,
  validateListTokensParams,
  validateRequestOptions,
  validateRevokeTokenParams,
  validateVerifyTokenParams,
} from './validation.js'
import { USER_AGENT } from './version.js'
import {
  DecodeError,
  decodeCreatedToken,
  decodeToken,
  decodeTokenList,
  encodeCreateToken,
  encodeListQuery,
  encodeRevoke,
} from './wire.js'

/**
 * Seams for deterministic tests; not part of the public API.
 *
 * @example
 * buildM2MClient(options, { random: () => 0.5, sleep: async () => {} })
 */
export interface ClientInternals {
  transport?: Transport
  /** Uniform in [0, 1). @defaultValue Math.random */
  random?: () => number
  /** Resolves after `ms`, rejects when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  /** @defaultValue Date.now */
  now?: () => number
}

interface Call<T> {
  operation: 'createToken' | 'listTokens' | 'revokeToken' | 'verifyToken'
  method: 'GET' | 'POST'
  /** Below the base path, e.g. `/m2m_tokens/verify`. */
  path: string
  body: Record<string, unknown> | undefined
  decode: (json: unknown) => T
  /** createToken is not: a repeat after the server acted mints a second token. */
  idempotent: boolean
  /** Values to scrub from anything the server echoes back, beyond the secret key. */
  secrets: string[]
}

/** Marks the deadline's abort, to tell it from the caller's. */
const DEADLINE = Symbol('deadline')

function abortAtDeadline(abort: CallAbort): void {
  abort.abort(DEADLINE)
}

function timeoutError(
  operation: string,
  timeoutMs: number,
  attempts: number,
  lastError: M2MApiError | M2MConnectionError | undefined,
): M2MConnectionError {
  return new M2MConnectionError(
    'timeout',
    `${operation}: no answer from the Clerk API within ${timeoutMs} ms (${attempts} attempt${attempts === 1 ? '' : 's'})`,
    lastError ? { cause: lastError } : undefined,
  )
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

// The deadline only aborts the signal, and a custom `fetch` (or the body stream it returns) may
// ignore it: racing the attempt against the abort makes the call settle by the deadline anyway.
// The abandoned attempt keeps its handlers, so its late outcome is dropped, never unhandled.
function settleByAbort<T>(work: Promise<T>, abort: CallAbort): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abort.reason)
    if (abort.aborted) onAbort()
    else abort.once('abort', onAbort)
    work.then(
      (value) => {
        abort.removeListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        abort.removeListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

// A method that returns a promise must not also throw: callers write `.catch()` or one
// `try { await … }`, and a synchronous throw from validation would escape the former.
function rejectingThrows<T>(run: () => Promise<T>): Promise<T> {
  try {
    return run()
  } catch (error) {
    return Promise.reject(error)
  }
}

/**
 * Builds a client; `createM2MClient` is this without the test seams.
 *
 * @throws {TypeError | RangeError} for invalid options or a missing key.
 * @example
 * const client = buildM2MClient({ secretKey: 'sk_test_…' })
 */
export function buildM2MClient(
  options?: M2MClientOptions,
  internals: ClientInternals = {},
): M2MClient {
  const resolved = resolveClientOptions(options)
  const { secretKey, origin, basePath } = resolved
  const transport =
    internals.transport ?? (resolved.fetch ? fetchTransport(resolved.fetch) : defaultTransport)
  const random = internals.random ?? Math.random
  const sleep = internals.sleep ?? defaultSleep
  const now = internals.now ?? Date.now
  const baseHeaders: Record<string, string> = {
    authorization: `Bearer ${secretKey}`,
    accept: 'application/json',
    'user-agent': USER_AGENT,
  }
  const jsonHeaders: Record<string, string> = {
    ...baseHeaders,
    'content-type': 'application/json',
  }
  /** The client's own policy, resolved once: calls without a `retry` option share it. */
  const clientPolicy = resolveRetry(resolved.retry, undefined)

  async function attempt<T>(call: Call<T>, abort: CallAbort): Promise<T> {
    let response: Awaited<ReturnType<Transport>>
    try {
      response = await transport({
        method: call.method,
        origin,
        path: basePath + call.path,
        headers: call.body === undefined ? baseHeaders : jsonHeaders,
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
        abort,
      })
    } catch (error) {
      if (abort.aborted) throw error
      throw connectionError(call.operation, origin, error)
    }
    let text: string | undefined
    let readError: unknown
    try {
      text = await response.text()
    } catch (error) {
      if (abort.aborted) throw error
      readError = error
    }
    const { status } = response
    // The connection broke while an error body was arriving: the status line alone is not a
    // verdict we can trust (a cut 404 must not become "unknown token" in a negative cache), so
    // this is a transient connection failure, retried like one.
    if (
      (status < 200 || status > 299) &&
      text === undefined &&
      !(readError instanceof BodyTooLargeError)
    ) {
      throw connectionError(call.operation, origin, readError, 'body')
    }
    if (status < 200 || status > 299) {
      throw decodeApiError({
        operation: call.operation,
        status,
        header: response.header,
        text,
        retryAfterMs: parseRetryAfter(response.header('retry-after'), now()),
        // Built only for a failure: a success quotes nothing.
        redact: redactor([secretKey, ...call.secrets]),
      })
    }
    if (text === undefined) {
      if (readError instanceof BodyTooLargeError) {
        throw new M2MConnectionError(
          'invalid_response',
          `${call.operation}: the API answered ${status} with a body over the size limit`,
          { cause: readError },
        )
      }
      throw connectionError(call.operation, origin, readError, 'body')
    }
    try {
      return call.decode(JSON.parse(text))
    } catch (error) {
      const why = error instanceof DecodeError ? error.message : 'the body is not valid JSON'
      throw new M2MConnectionError(
        'invalid_response',
        `${call.operation}: the API answered ${status} with a body that is not the documented shape: ${why}`,
        // A JSON.parse error quotes the body, which may hold the new token: keep only our reason.
        { cause: error instanceof DecodeError ? error : undefined },
      )
    }
  }

  async function execute<T>(call: Call<T>, requestOptions: RequestOptions): Promise<T> {
    const callerSignal = requestOptions.signal
    if (callerSignal?.aborted) throw callerSignal.reason
    const timeoutMs = requestOptions.timeoutMs ?? resolved.timeoutMs
    const policy =
      requestOptions.retry === undefined
        ? clientPolicy
        : resolveRetry(resolved.retry, requestOptions.retry)
    const deadline = now() + timeoutMs
    // One timer for the whole call, retries included; unref'd, since the request in flight (or
    // the retry's sleep) is what keeps the process alive, never the deadline.
    const abort = new CallAbort()
    const timer = setTimeout(abortAtDeadline, timeoutMs, abort)
    ;(timer as { unref?: () => void }).unref?.()
    let onCallerAbort: (() => void) | undefined
    if (callerSignal !== undefined) {
      onCallerAbort = () => abort.abort(callerSignal.reason)
      callerSignal.addEventListener('abort', onCallerAbort, { once: true })
    }
    let lastError: M2MApiError | M2MConnectionError | undefined
    let attempts = 0
    try {
      for (let retryIndex = 0; ; retryIndex++) {
        attempts++
        try {
          return await settleByAbort(attempt(call, abort), abort)
        } catch (error) {
          if (callerSignal?.aborted) throw callerSignal.reason
          if (abort.aborted) throw timeoutError(call.operation, timeoutMs, attempts, lastError)
          const failure = error as M2MApiError | M2MConnectionError
          const canRetry =
            policy !== false &&
            retryIndex < policy.maxRetries &&
            isRetryable(failure, policy, {
              idempotent: call.idempotent,
              unsent: wasNeverSent(failure),
            })
          if (!canRetry) throw failure
          const retryAfterMs = 'retryAfterMs' in failure ? failure.retryAfterMs : undefined
          const delay = retryAfterMs ?? backoffDelay(retryIndex, policy, random)
          // Waiting past the deadline only to time out would hide the real failure.
          if (now() + delay >= deadline) throw failure
          lastError = failure
          try {
            await sleep(delay, abort.signal)
          } catch (sleepError) {
            if (callerSignal?.aborted) throw callerSignal.reason
            if (abort.aborted) throw timeoutError(call.operation, timeoutMs, attempts, lastError)
            throw sleepError
          }
        }
      }
    } finally {
      clearTimeout(timer)
      if (onCallerAbort !== undefined) callerSignal?.removeEventListener('abort', onCallerAbort)
    }
  }

  function listPage(params: ListTokensParams, requestOptions: RequestOptions) {
    return execute<M2MTokenList>(
      {
        operation: 'listTokens',
        method: 'GET',
        path: `/m2m_tokens${encodeListQuery(params)}`,
        body: undefined,
        decode: decodeTokenList,
        idempotent: true,
        secrets: [],
      },
      requestOptions,
    )
  }

  const client: M2MClient = {
    apiUrl: origin + basePath,
    keyFingerprint: fingerprintSecretKey(secretKey),

    createToken(params?: CreateTokenParams, requestOptions?: RequestOptions) {
      return rejectingThrows(() => {
        const p = validateCreateTokenParams(params)
        const o = validateRequestOptions('createToken', requestOptions)
        return execute<M2MTokenWithSecret>(
          {
            operation: 'createToken',
            method: 'POST',
            path: '/m2m_tokens',
            body: encodeCreateToken(p),
            decode: decodeCreatedToken,
            idempotent: false,
            secrets: [],
          },
          o,
        )
      })
    },

    listTokens(params: ListTokensParams, requestOptions?: RequestOptions) {
      return rejectingThrows(() => {
        const p = validateListTokensParams(params)
        return listPage(p, validateRequestOptions('listTokens', requestOptions))
      })
    },

    /**
     * Every token of a subject, page after page (`limit`/`offset`), each id at most once. Every
     * token present for the whole iteration is yielded exactly once, even when the loop body
     * revokes what it is given; tokens created, revoked or expiring meanwhile may or may not be.
     * Each iteration starts afresh. An unchanged list of n tokens costs ceil(n / pageSize)
     * requests (at least one); when the list shrinks between two pages, part of it is read
     * again. Holds the ids of that subject's tokens in memory while it runs. Relies on the list
     * being newest first (new tokens go in front), as the API returns it; under any order no id
     * is yielded twice.
     *
     * @param [params.pageSize=100] - Tokens per request, 1–100.
     * @throws {TypeError | RangeError} at once, for invalid parameters; API and connection
     *   errors reject the iteration.
     * @example
     * for await (const token of client.listAllTokens({ subject: 'mch_…' })) {
     *   await client.revokeToken({ m2mTokenId: token.id })
     * }
     */
    listAllTokens(params: ListAllTokensParams, requestOptions?: RequestOptions) {
      // Checked here, not on first iteration, so the mistake surfaces where it was made.
      const p = validateListAllTokensParams(params)
      const o = validateRequestOptions('listAllTokens', requestOptions)
      const limit = p.pageSize ?? 100
      return {
        async *[Symbol.asyncIterator]() {
          // The list is newest first and, by default, leaves out revoked and expired tokens, so it
          // moves while it is paged. A new token goes in front: everything shifts back and a page
          // repeats ids, which `seen` drops. A token leaving moves those behind it forward, past
          // the offset, unread. Since new tokens only go in front, no token moves forward by more
          // than the count shrank between two pages: stepping the offset back by that much
          // re-reads every token that may have slipped past, and costs nothing when the list
          // holds still.
          const seen = new Set<string>()
          let offset = 0
          let lastCount: number | undefined
          for (;;) {
            const page = await listPage(
              { subject: p.subject, revoked: p.revoked, expired: p.expired, limit, offset },
              o,
            )
            const shrink = lastCount === undefined ? 0 : Math.max(0, lastCount - page.totalCount)
            lastCount = page.totalCount
            for (const token of page.m2mTokens) {
              if (seen.has(token.id)) continue
              seen.add(token.id)
              yield token
            }
            // At offset 0 this page itself covered whatever slipped forward.
            if (shrink > 0 && offset > 0) {
              offset = Math.max(0, offset - shrink)
              continue
            }
            offset += page.m2mTokens.length
            // An empty page ends it too, in case tokens vanish while paging and the count lies.
            if (page.m2mTokens.length === 0 || offset >= page.totalCount) return
          }
        },
      }
    },

    revokeToken(params: RevokeTokenParams, requestOptions?: RequestOptions) {
      return rejectingThrows(() => {
        const p = validateRevokeTokenParams(params)
        const o = validateRequestOptions('revokeToken', requestOptions)
        return execute<M2MToken>(
          {
            operation: 'revokeToken',
            method: 'POST',
            path: `/m2m_tokens/${p.m2mTokenId}/revoke`,
            body: encodeRevoke(p),
            decode: decodeToken,
            idempotent: true,
            secrets: [],
          },
          o,
        )
      })
    },

    verifyToken(params: VerifyTokenParams, requestOptions?: RequestOptions) {
      return rejectingThrows(() => {
        const p = validateVerifyTokenParams(params)
        const o = validateRequestOptions('verifyToken', requestOptions)
        return execute<M2MToken>(
          {
            operation: 'verifyToken',
            method: 'POST',
            path: '/m2m_tokens/verify',
            body: { token: p.token },
            decode: decodeToken,
            idempotent: true,
            secrets: [p.token],
          },
          o,
        )
      })
    },
  }
  return client
}
