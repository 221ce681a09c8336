/**
 * A small, scriptable stand-in for Clerk's M2M endpoints on 127.0.0.1: a real HTTP server that
 * records every request and answers with the spec's example bodies, or with scripted replies
 * (any status, raw bodies, hangs, resets, truncated bodies). Every request body it receives and
 * every JSON body it sends is checked against the spec; mismatches land in `violations`.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import {
  assertClerkErrors,
  assertRequestMatchesSpec,
  assertResponseMatchesSpec,
  operations,
} from '../../../../test/support/spec.js'

type Json = Record<string, unknown>

/** One request as the server saw it. */
export interface RecordedRequest {
  method: string
  /** Path without the query. */
  path: string
  query: Record<string, string>
  /** The raw query string, without `?`. */
  rawQuery: string
  headers: IncomingHttpHeaders
  rawBody: string
  /** The parsed JSON body, or `undefined`. */
  body: unknown
  /** The spec operation the route maps to, if any. */
  operationId: string | undefined
  /** Index of the TCP connection it arrived on (0-based), to observe keep-alive reuse. */
  connection: number
}

/** An answer with a status and a body. */
export interface BodyReply {
  status: number
  /** A JSON body; checked against the spec unless `offSpec`. */
  json?: unknown
  /** A raw body (HTML, empty, garbage); never spec-checked. */
  text?: string
  headers?: Record<string, string>
  /** Set when a test sends a deliberately wrong JSON body. */
  offSpec?: true
}

/** What to answer. */
export type Reply =
  | BodyReply
  | { hang: true }
  | { reset: true }
  /** Sends the headers and part of the body, then drops the connection. */
  | { truncate: true; status: number; text: string; declaredLength: number }

/** Scripts an answer from the request; `undefined` falls through to the default answers. */
export type Handler = (request: RecordedRequest) => Reply | undefined

/** A running fake. */
export interface FakeClerk {
  /** `http://127.0.0.1:PORT` (no `/v1`). */
  url: string
  requests: RecordedRequest[]
  /** Spec mismatches in what the client sent or the fake answered. Tests assert it stays empty. */
  violations: string[]
  /** TCP connections accepted so far. */
  readonly connections: number
  /** Queues replies, used one per request before the handler and the defaults. */
  enqueue(...replies: Reply[]): void
  /** Replaces the handler consulted after the queue. */
  handle(handler: Handler | undefined): void
  close(): Promise<void>
}

function exampleOf(schema: Json | undefined): unknown {
  if (!schema) return null
  if ('example' in schema) return structuredClone(schema.example)
  if (Array.isArray(schema.enum)) return schema.enum[0]
  if (schema.type === 'object' || schema.properties) {
    const out: Json = {}
    for (const [key, sub] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
      out[key] = exampleOf(sub)
    }
    return out
  }
  if (schema.type === 'array') return [exampleOf(schema.items as Json)]
  if (schema.default !== undefined) return schema.default
  if (schema.type === 'number' || schema.type === 'integer') return 0
  if (schema.type === 'boolean') return false
  return ''
}

/**
 * The body the spec's examples describe for an operation's status.
 *
 * @example
 * exampleBody('verifyM2MToken', 200) // { object: 'machine_to_machine_token', id: 'mt_f7f0…', … }
 */
export function exampleBody(operationId: string, status: number): Json {
  const response = operations.get(operationId)?.responses[String(status)] as Json | undefined
  const content = response?.content as Record<string, Json> | undefined
  const schema = content?.['application/json']?.schema as Json | undefined
  if (!schema) throw new Error(`no example for ${operationId} ${status}`)
  return exampleOf(schema) as Json
}

/**
 * A Clerk error body.
 *
 * @example
 * clerkErrors('resource_not_found', 'not found')
 */
export function clerkErrors(
  code: string,
  message: string,
  extra: { longMessage?: string; meta?: Json; traceId?: string } = {},
): Json {
  const entry: Json = { code, message, long_message: extra.longMessage ?? message }
  if (extra.meta) entry.meta = extra.meta
  const body: Json = { errors: [entry] }
  if (extra.traceId) body.clerk_trace_id = extra.traceId
  return body
}

/** The spec example of a token with another id, for paging tests. */
export function exampleToken(index: number): Json {
  const token = exampleBody('getM2MTokens', 200).m2m_tokens as Json[]
  return { ...token[0], id: `mt_${index.toString(16).padStart(32, '0')}` }
}

function routeOf(method: string, path: string): string | undefined {
  if (path === '/v1/m2m_tokens') {
    if (method === 'POST') return 'createM2MToken'
    if (method === 'GET') return 'getM2MTokens'
  }
  if (method === 'POST' && path === '/v1/m2m_tokens/verify') return 'verifyM2MToken'
  if (method === 'POST' && /^\/v1\/m2m_tokens\/[^/]+\/revoke$/.test(path)) return 'revokeM2MToken'
  return undefined
}

// The spec's query parameters of getM2MTokens, checked by hand (spec.ts validates bodies only).
function checkListQuery(query: URLSearchParams): string[] {
  const problems: string[] = []
  const params = (operations.get('getM2MTokens')?.parameters ?? []) as Json[]
  const known = new Map(params.map((p) => [p.name as string, p]))
  for (const name of query.keys()) {
    if (!known.has(name)) problems.push(`unknown query parameter ${name}`)
  }
  for (const [name, param] of known) {
    const schema = param.schema as Json
    const value = query.get(name)
    if (value === null) {
      if (param.required) problems.push(`missing required query parameter ${name}`)
      continue
    }
    if (query.getAll(name).length > 1) problems.push(`repeated query parameter ${name}`)
    if (schema.type === 'boolean' && value !== 'true' && value !== 'false') {
      problems.push(`${name}=${value} is not a boolean`)
    }
    if (schema.type === 'number') {
      const n = Number(value)
      if (value === '' || !Number.isFinite(n)) problems.push(`${name}=${value} is not a number`)
      if (typeof schema.minimum === 'number' && n < schema.minimum) problems.push(`${name} < min`)
      if (typeof schema.maximum === 'number' && n > schema.maximum) problems.push(`${name} > max`)
    }
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(value)) {
      problems.push(`${name} does not match ${schema.pattern}`)
    }
  }
  return problems
}

function defaultReply(request: RecordedRequest): Reply {
  const body = request.body as Json | undefined
  switch (request.operationId) {
    case 'createM2MToken':
      return { status: 201, json: exampleBody('createM2MToken', 201) }
    case 'getM2MTokens':
      return { status: 200, json: { ...exampleBody('getM2MTokens', 200), total_count: 1 } }
    case 'revokeM2MToken': {
      const id = request.path.split('/')[3]
      const reason = body?.revocation_reason ?? null
      return {
        status: 200,
        json: {
          ...exampleBody('revokeM2MToken', 200),
          id,
          revoked: true,
          revocation_reason: reason,
        },
      }
    }
    case 'verifyM2MToken':
      return { status: 200, json: exampleBody('verifyM2MToken', 200) }
    default:
      return { status: 404, json: clerkErrors('resource_not_found', 'not found') }
  }
}

/**
 * Starts a fake on 127.0.0.1 with an ephemeral port.
 *
 * @example
 * const fake = await startFakeClerk()
 * const client = createM2MClient({ secretKey: 'sk_test_x', apiUrl: fake.url })
 */
export async function startFakeClerk(): Promise<FakeClerk> {
  const requests: RecordedRequest[] = []
  const violations: string[] = []
  const queue: Reply[] = []
  const sockets = new Set<Socket>()
  let handler: Handler | undefined
  let connections = 0

  function check(what: string, fn: () => void) {
    try {
      fn()
    } catch (error) {
      violations.push(`${what}: ${(error as Error).message}`)
    }
  }

  function sendJson(res: ServerResponse, reply: BodyReply, op?: string) {
    const json = reply.json
    if (!reply.offSpec) {
      const documented = op && operations.get(op)?.responses[String(reply.status)]
      if (documented)
        check(`${op} ${reply.status} reply`, () =>
          assertResponseMatchesSpec(op, reply.status, json),
        )
      else if (reply.status >= 400)
        check(`${reply.status} error reply`, () => assertClerkErrors(json))
    }
    res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers })
    res.end(JSON.stringify(json))
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake')
      const rawBody = Buffer.concat(chunks).toString('utf8')
      let body: unknown
      if (rawBody !== '') {
        try {
          body = JSON.parse(rawBody)
        } catch {
          violations.push(`request body is not JSON: ${rawBody.slice(0, 100)}`)
        }
      }
      const operationId = routeOf(req.method ?? '', url.pathname)
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        rawQuery: url.search.replace(/^\?/, ''),
        headers: req.headers,
        rawBody,
        body,
        operationId,
        connection: (req.socket as Socket & { fakeIndex: number }).fakeIndex,
      }
      requests.push(recorded)
      if (operationId === 'getM2MTokens') {
        if (rawBody !== '') violations.push('GET /m2m_tokens sent a body')
        for (const problem of checkListQuery(url.searchParams)) violations.push(problem)
      } else if (operationId) {
        if (req.headers['content-type'] !== 'application/json') {
          violations.push(`${operationId} content-type is ${req.headers['content-type']}`)
        }
        check(`${operationId} request`, () => assertRequestMatchesSpec(operationId, body))
      }

      const reply = queue.shift() ?? handler?.(recorded) ?? defaultReply(recorded)
      if ('hang' in reply) return
      if ('reset' in reply) {
        req.socket.destroy()
        return
      }
      if ('truncate' in reply) {
        res.writeHead(reply.status, {
          'content-type': 'application/json',
          'content-length': String(reply.declaredLength),
        })
        res.write(reply.text, () => req.socket.destroy())
        return
      }
      if (reply.text !== undefined) {
        res.writeHead(reply.status, reply.headers)
        res.end(reply.text)
        return
      }
      sendJson(res, reply, operationId)
    })
  })
  server.on('connection', (socket: Socket) => {
    ;(socket as Socket & { fakeIndex: number }).fakeIndex = connections++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    violations,
    get connections() {
      return connections
    },
    enqueue: (...replies) => {
      queue.push(...replies)
    },
    handle: (next) => {
      handler = next
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

/**
 * A port nothing listens on (bound, then released), for connection-refused tests.
 *
 * @example
 * const apiUrl = `http://127.0.0.1:${await closedPort()}`
 */
export async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
