/**
 * Validates requests and responses against Clerk's OpenAPI spec (spec/clerk-bapi-m2m.yml), so the
 * client, the emulator and the adapters are held to the wire contract, additionalProperties included.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Ajv, type ValidateFunction } from 'ajv'
import { parse } from 'yaml'

const SPEC_PATH = fileURLToPath(new URL('../../spec/clerk-bapi-m2m.yml', import.meta.url))

type Json = Record<string, unknown>

interface Operation {
  operationId: string
  method: string
  path: string
  requestBody?: Json
  responses: Record<string, Json>
  parameters?: Json[]
}

// OpenAPI 3.0 schemas are almost JSON Schema draft-07: convert the boolean exclusiveMinimum/Maximum
// and drop annotation keywords Ajv's strict mode rejects.
function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema)
  if (!node || typeof node !== 'object') return node
  const src = node as Json
  const out: Json = {}
  for (const [key, value] of Object.entries(src)) {
    if (key === 'example' || key === 'readOnly' || key === 'x-speakeasy-name-override') continue
    if (key === '$ref' && typeof value === 'string') {
      out.$ref = `spec${value}`
      continue
    }
    out[key] = toJsonSchema(value)
  }
  if (src.exclusiveMinimum === true && typeof src.minimum === 'number') {
    out.exclusiveMinimum = src.minimum
    delete out.minimum
  } else if (src.exclusiveMinimum === false) delete out.exclusiveMinimum
  if (src.exclusiveMaximum === true && typeof src.maximum === 'number') {
    out.exclusiveMaximum = src.maximum
    delete out.maximum
  } else if (src.exclusiveMaximum === false) delete out.exclusiveMaximum
  // `nullable` without `type` (as `claims` has) means "any JSON value, or null": nothing to check.
  if (src.nullable === true && src.type === undefined) delete out.nullable
  return out
}

const raw = parse(readFileSync(SPEC_PATH, 'utf8')) as {
  paths: Record<string, Record<string, Json>>
  components: Json
}

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false })
ajv.addSchema({ $id: 'spec', components: toJsonSchema(raw.components) } as Json)

/** Every operation in the spec, by operationId. */
export const operations: Map<string, Operation> = new Map()
for (const [path, methods] of Object.entries(raw.paths)) {
  for (const [method, op] of Object.entries(methods)) {
    const operationId = op.operationId as string
    operations.set(operationId, {
      operationId,
      method: method.toUpperCase(),
      path,
      requestBody: op.requestBody as Json | undefined,
      responses: op.responses as Record<string, Json>,
      parameters: op.parameters as Json[] | undefined,
    })
  }
}

const compiled = new Map<string, ValidateFunction>()
function compile(cacheKey: string, schema: unknown): ValidateFunction {
  let fn = compiled.get(cacheKey)
  if (!fn) {
    fn = ajv.compile(toJsonSchema(schema) as Json)
    compiled.set(cacheKey, fn)
  }
  return fn
}

function resolveRef(node: Json): Json {
  const ref = node.$ref
  if (typeof ref !== 'string') return node
  const parts = ref.replace(/^#\//, '').split('/')
  let cur: unknown = raw
  for (const part of parts) cur = (cur as Json)[part]
  return resolveRef(cur as Json)
}

function getOperation(operationId: string): Operation {
  const op = operations.get(operationId)
  if (!op) throw new Error(`Unknown operationId ${operationId}`)
  return op
}

function fail(what: string, fn: ValidateFunction, body: unknown): never {
  throw new Error(
    `${what} does not match the spec: ${ajv.errorsText(fn.errors)}\n${JSON.stringify(body)}`,
  )
}

/**
 * Throws unless `body` matches the spec's response schema for `operationId` and `status`.
 *
 * @example
 * assertResponseMatchesSpec('verifyM2MToken', 200, await res.json())
 */
export function assertResponseMatchesSpec(
  operationId: string,
  status: number,
  body: unknown,
): void {
  const op = getOperation(operationId)
  const response = op.responses[String(status)]
  if (!response) throw new Error(`${operationId} documents no ${status} response`)
  const schema = (resolveRef(response).content as Json | undefined)?.['application/json'] as
    | Json
    | undefined
  if (!schema) throw new Error(`${operationId} ${status} has no JSON schema`)
  const fn = compile(`res:${operationId}:${status}`, schema.schema)
  if (!fn(body)) fail(`${operationId} ${status} response`, fn, body)
}

/**
 * Throws unless `body` matches the spec's request body schema for `operationId`.
 *
 * @example
 * assertRequestMatchesSpec('createM2MToken', { seconds_until_expiration: 60 })
 */
export function assertRequestMatchesSpec(operationId: string, body: unknown): void {
  const op = getOperation(operationId)
  const schema = (
    (op.requestBody?.content as Json | undefined)?.['application/json'] as Json | undefined
  )?.schema
  if (!schema) throw new Error(`${operationId} takes no JSON body`)
  const fn = compile(`req:${operationId}`, schema)
  if (!fn(body)) fail(`${operationId} request`, fn, body)
}

/**
 * Throws unless a Clerk error body (`{ errors: [...] }`) matches the spec's ClerkErrors schema.
 *
 * @example
 * assertClerkErrors(await res.json())
 */
export function assertClerkErrors(body: unknown): void {
  const fn = compile('ClerkErrors', { $ref: '#/components/schemas/ClerkErrors' })
  if (!fn(body)) fail('Clerk error body', fn, body)
}
