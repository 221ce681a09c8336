/** Hand-written checks for the spec's request schemas; every failure is a Clerk 400. */
import { ApiError, invalidParam, missingParam } from './errors.js'

export type JsonObject = Record<string, unknown>

/** The body must be a JSON object whose keys are all in `allowed` (the spec's additionalProperties: false). */
export function expectObject(body: unknown, allowed: readonly string[]): JsonObject {
  if (body === undefined) return {}
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(
      400,
      'malformed_request_body',
      'malformed request body',
      'The request body must be a JSON object.',
    )
  }
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) {
      throw invalidParam(key, `${key} is not a recognized parameter.`, 'form_param_unknown')
    }
  }
  return body as JsonObject
}

interface NumberRule {
  min?: number
  max?: number
  /** `min` itself is rejected (the spec's exclusiveMinimum). */
  exclusiveMin?: boolean
  integer?: boolean
}

function checkNumber(name: string, value: unknown, rule: NumberRule): number {
  const kind = rule.integer ? 'an integer' : 'a number'
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    (rule.integer && !Number.isInteger(value))
  ) {
    throw invalidParam(name, `${name} must be ${kind}.`)
  }
  if (rule.min !== undefined && (rule.exclusiveMin ? value <= rule.min : value < rule.min)) {
    throw invalidParam(
      name,
      `${name} must be ${rule.exclusiveMin ? 'greater than' : 'at least'} ${rule.min}.`,
      'form_param_value_invalid',
    )
  }
  if (rule.max !== undefined && value > rule.max) {
    throw invalidParam(name, `${name} must be at most ${rule.max}.`, 'form_param_value_invalid')
  }
  return value
}

export function optionalNumber(
  body: JsonObject,
  name: string,
  rule: NumberRule,
): number | undefined {
  const value = body[name]
  return value === undefined ? undefined : checkNumber(name, value, rule)
}

export function requiredNumber(body: JsonObject, name: string, rule: NumberRule): number {
  const value = body[name]
  if (value === undefined || value === null) throw missingParam(name)
  return checkNumber(name, value, rule)
}

/** `undefined` when absent, `null` when explicitly null. */
export function nullableNumber(
  body: JsonObject,
  name: string,
  rule: NumberRule,
): number | null | undefined {
  const value = body[name]
  if (value === null) return null
  return value === undefined ? undefined : checkNumber(name, value, rule)
}

interface StringRule {
  minLength?: number
  maxLength?: number
  pattern?: RegExp
  enum?: readonly string[]
}

function checkString(name: string, value: unknown, rule: StringRule): string {
  if (typeof value !== 'string') throw invalidParam(name, `${name} must be a string.`)
  if (rule.minLength !== undefined && value.length < rule.minLength) {
    throw invalidParam(
      name,
      `${name} must be at least ${rule.minLength} characters long.`,
      'form_param_value_invalid',
    )
  }
  if (rule.maxLength !== undefined && value.length > rule.maxLength) {
    throw invalidParam(
      name,
      `${name} must be at most ${rule.maxLength} characters long.`,
      'form_param_value_invalid',
    )
  }
  if (rule.pattern && !rule.pattern.test(value)) {
    throw invalidParam(name, `${name} must match ${rule.pattern.source}.`)
  }
  if (rule.enum && !rule.enum.includes(value)) {
    throw invalidParam(
      name,
      `${name} must be one of: ${rule.enum.join(', ')}.`,
      'form_param_value_invalid',
    )
  }
  return value
}

export function optionalString(
  body: JsonObject,
  name: string,
  rule: StringRule = {},
): string | undefined {
  const value = body[name]
  return value === undefined ? undefined : checkString(name, value, rule)
}

export function requiredString(body: JsonObject, name: string, rule: StringRule = {}): string {
  const value = body[name]
  if (value === undefined || value === null) throw missingParam(name)
  return checkString(name, value, rule)
}

export function nullableString(
  body: JsonObject,
  name: string,
  rule: StringRule = {},
): string | null | undefined {
  const value = body[name]
  if (value === null) return null
  return value === undefined ? undefined : checkString(name, value, rule)
}

export function optionalStringArray(
  body: JsonObject,
  name: string,
  rule: { maxItems?: number; item?: StringRule } = {},
): string[] | undefined {
  const value = body[name]
  if (value === undefined) return undefined
  if (!Array.isArray(value)) throw invalidParam(name, `${name} must be an array of strings.`)
  if (rule.maxItems !== undefined && value.length > rule.maxItems) {
    throw invalidParam(
      name,
      `${name} can hold at most ${rule.maxItems} items.`,
      'form_param_value_invalid',
    )
  }
  return value.map((item, i) => checkString(`${name}[${i}]`, item, rule.item ?? {}))
}

// ---- query strings ----------------------------------------------------------------------------

/** One value per parameter: a repeated parameter is ambiguous, so it is rejected. */
export function queryValue(query: URLSearchParams, name: string): string | undefined {
  const all = query.getAll(name)
  if (all.length > 1) throw invalidQuery(name, `${name} was given more than once.`)
  return all[0]
}

export function invalidQuery(name: string, longMessage: string): ApiError {
  return new ApiError(400, 'query_param_invalid', 'is invalid', longMessage, {
    meta: { param_name: name },
  })
}

/** Booleans as Clerk's SDKs send them; empty and `null` mean the default. */
export function queryBoolean(query: URLSearchParams, name: string, fallback: boolean): boolean {
  const raw = queryValue(query, name)
  if (raw === undefined || raw === '' || raw === 'null') return fallback
  if (raw === 'true' || raw === '1') return true
  if (raw === 'false' || raw === '0') return false
  throw invalidQuery(name, `${name} must be true or false.`)
}

/** Integers; `10.0` is accepted because some of Clerk's SDKs send integral floats. */
export function queryInteger(
  query: URLSearchParams,
  name: string,
  rule: { min: number; max?: number; fallback: number },
): number {
  const raw = queryValue(query, name)
  if (raw === undefined || raw === '' || raw === 'null') return rule.fallback
  const value = /^\s*[+-]?\d+(\.0*)?\s*$/.test(raw) ? Number(raw) : Number.NaN
  if (!Number.isSafeInteger(value)) throw invalidQuery(name, `${name} must be an integer.`)
  if (value < rule.min || (rule.max !== undefined && value > rule.max)) {
    throw invalidQuery(
      name,
      `${name} must be between ${rule.min} and ${rule.max ?? Number.MAX_SAFE_INTEGER}.`,
    )
  }
  return value
}
