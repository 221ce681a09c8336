/**
 * Turns failed exchanges into the error model: Clerk error bodies into `M2MApiError` (even when the
 * body is HTML, empty or truncated), network failures into `M2MConnectionError`. Every string that
 * came from the wire is scrubbed of secrets before it reaches a message.
 */
import { type ClerkApiErrorEntry, M2MApiError, M2MConnectionError } from '../errors.js'

/**
 * How much of an unexpected body an error may quote.
 *
 * @example
 * expect(error.errors[0]?.longMessage.length).toBeLessThan(SNIPPET_CHARS + 100)
 */
export const SNIPPET_CHARS = 200

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
}

// Anything shaped like a Clerk secret or machine key, whoever's it is.
const KEY_LIKE = /\b(?:sk|ak)_[A-Za-z0-9_]{8,}/g

/**
 * Builds a function that removes the given secrets (and anything key-shaped) from text.
 *
 * @example
 * const redact = redactor([secretKey]); redact(`bad key ${secretKey}`) // 'bad key [redacted]'
 */
export function redactor(secrets: readonly string[]): (text: string) => string {
  const exact = secrets.filter((s) => s.length > 0)
  return function redact(text) {
    let out = text
    for (const secret of exact) out = out.split(secret).join('[redacted]')
    return out.replace(KEY_LIKE, '[redacted]')
  }
}

const MAX_META_DEPTH = 8
const TOO_DEEP = '[nested too deep]'

function redactDeep(value: unknown, redact: (text: string) => string, depth = 0): unknown {
  if (typeof value === 'string') return redact(value)
  if (typeof value !== 'object' || value === null) return value
  // Past the limit nothing is inspected, so nothing may pass: unredacted, a secret would survive.
  if (depth > MAX_META_DEPTH) return TOO_DEEP
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, redact, depth + 1))
  const out: Record<string, unknown> = {}
  // Keys too: an echoed body can put a secret in a property name as easily as in a value.
  for (const [key, item] of Object.entries(value)) {
    out[redact(key)] = redactDeep(item, redact, depth + 1)
  }
  return out
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function snippet(text: string, redact: (text: string) => string): string {
  // Collapse whitespace and drop control characters so a quoted body cannot forge log lines.
  const flat = text
    .replace(/\p{Cc}+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim()
  // Redact before cutting, so a secret split by the cap cannot leave a recognisable prefix.
  const clean = redact(flat)
  return clean.length > SNIPPET_CHARS ? `${clean.slice(0, SNIPPET_CHARS)}…` : clean
}

function decodeEntries(
  body: unknown,
  redact: (text: string) => string,
): ClerkApiErrorEntry[] | undefined {
  if (!isObject(body) || !Array.isArray(body.errors)) return undefined
  const entries: ClerkApiErrorEntry[] = []
  for (const item of body.errors) {
    if (!isObject(item)) return undefined
    const message = typeof item.message === 'string' ? redact(item.message) : ''
    const entry: ClerkApiErrorEntry = {
      code: typeof item.code === 'string' ? redact(item.code) : 'unknown_error',
      message,
      longMessage: typeof item.long_message === 'string' ? redact(item.long_message) : message,
    }
    if (isObject(item.meta)) entry.meta = redactDeep(item.meta, redact) as Record<string, unknown>
    entries.push(entry)
  }
  return entries
}

/**
 * What the client knows about a non-2xx answer.
 *
 * @example
 * const answer: FailedAnswer = { operation: 'verifyToken', status: 404, header, text, retryAfterMs: undefined, redact }
 */
export interface FailedAnswer {
  operation: string
  status: number
  header(name: string): string | undefined
  /** The body, or `undefined` when it could not be read (connection dropped mid-body, too large). */
  text: string | undefined
  retryAfterMs: number | undefined
  redact: (text: string) => string
}

/**
 * Decodes a non-2xx answer into an `M2MApiError`. A body that is not Clerk's JSON error shape
 * (a proxy's HTML page, nothing, a cut-off body) still yields one entry that says what came back.
 *
 * @example
 * throw decodeApiError({ operation: 'verifyToken', status: 404, header, text, retryAfterMs: undefined, redact })
 */
export function decodeApiError(answer: FailedAnswer): M2MApiError {
  const { status, text, redact } = answer
  let parsed: unknown
  let isJson = false
  if (text !== undefined && text.trim() !== '') {
    try {
      parsed = JSON.parse(text)
      isJson = true
    } catch {
      // Not JSON: described below.
    }
  }
  let errors = isJson ? decodeEntries(parsed, redact) : undefined
  if (!errors || errors.length === 0) errors = [synthesizeEntry(answer, isJson)]
  const traceFromBody =
    isObject(parsed) && typeof parsed.clerk_trace_id === 'string'
      ? parsed.clerk_trace_id
      : undefined
  const clerkTraceId = traceFromBody ?? answer.header('x-clerk-trace-id')
  const first = errors[0]!
  const detail = first.longMessage || first.message
  const statusText = STATUS_TEXT[status] ? ` ${STATUS_TEXT[status]}` : ''
  return new M2MApiError({
    status,
    errors,
    clerkTraceId: clerkTraceId === undefined ? undefined : redact(clerkTraceId),
    retryAfterMs: answer.retryAfterMs,
    message: `${answer.operation}: Clerk API answered ${status}${statusText}: ${first.code}${detail ? `: ${detail}` : ''}`,
  })
}

function synthesizeEntry(answer: FailedAnswer, isJson: boolean): ClerkApiErrorEntry {
  const { status, text, redact } = answer
  const contentType = answer.header('content-type')?.split(';')[0]?.trim() || 'no content type'
  const message = `HTTP ${status}${STATUS_TEXT[status] ? ` ${STATUS_TEXT[status]}` : ''}`
  let what: string
  if (text === undefined) what = 'a body that could not be read in full (connection closed early)'
  else if (text.trim() === '') what = 'an empty body'
  else if (isJson) what = `JSON that is not Clerk's error shape: ${snippet(text, redact)}`
  else if (/^\s*</.test(text)) what = `an HTML/XML body (${contentType}): ${snippet(text, redact)}`
  else
    what = `a body that is not JSON, possibly truncated (${contentType}): ${snippet(text, redact)}`
  return {
    code: 'unexpected_response',
    message,
    longMessage: `the API answered ${status} with ${what}`,
    meta: { contentType, bodyLength: text?.length ?? null },
  }
}

// Failures that happen before the request leaves: nothing reached the server, so even a
// non-idempotent call can be retried. Node/undici codes, plus Bun's names for the same.
const UNSENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'EAI_FAIL',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ConnectionRefused',
  'FailedToOpenSocket',
])

/**
 * The first `code` found along an error's `cause` chain (and inside AggregateErrors).
 *
 * @example
 * networkErrorCode(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } })) // 'ECONNREFUSED'
 */
export function networkErrorCode(error: unknown): string | undefined {
  const seen = new Set<unknown>()
  const queue: unknown[] = [error]
  while (queue.length > 0 && seen.size < 16) {
    const current = queue.shift()
    if (!isObjectLike(current) || seen.has(current)) continue
    seen.add(current)
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && code !== '') return code
    queue.push((current as { cause?: unknown }).cause)
    const inner = (current as { errors?: unknown }).errors
    if (Array.isArray(inner)) queue.push(...inner)
  }
  return undefined
}

function isObjectLike(value: unknown): value is object {
  return (typeof value === 'object' || typeof value === 'function') && value !== null
}

const unsentErrors = new WeakSet<M2MConnectionError>()

/**
 * Wraps a transport failure as `M2MConnectionError('connection_failed')`, the original as `cause`,
 * and remembers whether the request certainly never left.
 *
 * @example
 * throw connectionError('verifyToken', 'https://api.clerk.com', err)
 */
export function connectionError(
  operation: string,
  origin: string,
  cause: unknown,
  phase: 'request' | 'body' = 'request',
): M2MConnectionError {
  const code = networkErrorCode(cause)
  const detail = code ? ` (${code})` : ''
  const message =
    phase === 'body'
      ? `${operation}: the connection to ${origin} closed while reading the answer${detail}`
      : `${operation}: could not reach the Clerk API at ${origin}${detail}`
  const error = new M2MConnectionError('connection_failed', message, { cause })
  if (phase === 'request' && code !== undefined && UNSENT_CODES.has(code)) unsentErrors.add(error)
  return error
}

/**
 * Whether a connection error happened before anything was sent.
 *
 * @example
 * if (wasNeverSent(err)) retry()
 */
export function wasNeverSent(error: unknown): boolean {
  return error instanceof M2MConnectionError && unsentErrors.has(error)
}
