/** Clerk's error body, and the one error type the handlers throw to produce it. */

export interface ClerkErrorEntry {
  message: string
  long_message: string
  code: string
  meta?: Record<string, unknown>
}

/**
 * Thrown by handlers; rendered as `{ errors: [...], clerk_trace_id }` with `status`.
 * `headers` lets 405 carry `Allow` and 429 `Retry-After`.
 */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly longMessage: string
  readonly meta: Record<string, unknown> | undefined
  readonly headers: Record<string, string>

  constructor(
    status: number,
    code: string,
    message: string,
    longMessage: string,
    options: { meta?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(message)
    this.status = status
    this.code = code
    this.longMessage = longMessage
    this.meta = options.meta
    this.headers = options.headers ?? {}
  }

  toBody(traceId: string): { errors: ClerkErrorEntry[]; clerk_trace_id: string } {
    const entry: ClerkErrorEntry = {
      message: this.message,
      long_message: this.longMessage,
      code: this.code,
    }
    if (this.meta) entry.meta = this.meta
    return { errors: [entry], clerk_trace_id: traceId }
  }
}

/** 400 for a request body or query parameter that breaks the spec; `meta.param_name` names it. */
export function invalidParam(
  param: string,
  longMessage: string,
  code = 'form_param_format_invalid',
): ApiError {
  return new ApiError(400, code, 'is invalid', longMessage, { meta: { param_name: param } })
}

export function missingParam(param: string): ApiError {
  return new ApiError(
    400,
    'form_param_missing',
    'missing required parameter',
    `${param} must be included.`,
    {
      meta: { param_name: param },
    },
  )
}

export function notFound(what = 'Resource'): ApiError {
  return new ApiError(404, 'resource_not_found', 'not found', `${what} not found.`)
}

export function unauthenticated(longMessage: string, code = 'authentication_invalid'): ApiError {
  return new ApiError(401, code, 'Invalid authentication', longMessage)
}

export function forbidden(longMessage: string): ApiError {
  return new ApiError(403, 'authorization_invalid', 'Unauthorized request', longMessage)
}
