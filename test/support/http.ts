/**
 * A raw HTTP client for the behaviour table: it can send the same header twice, which fetch and
 * supertest cannot do faithfully, and it hands back every response header, lower-cased.
 */
import { type Agent, request as httpRequest, type OutgoingHttpHeaders } from 'node:http'

/** A request of the behaviour table, independent of any framework. */
export interface TableRequest {
  method: 'GET' | 'POST' | 'OPTIONS'
  path: string
  /** Ordered `[name, value]` pairs; a name listed twice is sent as two header lines. */
  headers: ReadonlyArray<readonly [string, string]>
}

/** What came back, normalised the same way for every target. */
export interface TableResponse {
  status: number
  /** Lower-cased names; repeated headers joined with `, `. */
  headers: Record<string, string>
  /** Parsed JSON, or the raw text when the body is not JSON, or `null` when empty. */
  body: unknown
}

/** A response as it came off the wire: lower-cased names, repeated headers joined, raw text. */
export interface RawResponse {
  status: number
  headers: Record<string, string>
  bodyText: string
}

/**
 * Sends one request and collects the whole response. A name listed twice in `headers` goes out
 * as two header lines. On a kept-alive `agent`, a reset of a reused socket rejects with
 * `reusedSocket: true` so the caller may send again (no answer was given).
 *
 * @example
 * await sendRaw('http://127.0.0.1:3000', 'GET', '/', [['authorization', 'Bearer mt_…']], false)
 */
export function sendRaw(
  baseUrl: string,
  method: string,
  path: string,
  pairs: ReadonlyArray<readonly [string, string]>,
  agent: Agent | false,
): Promise<RawResponse> {
  const headers: OutgoingHttpHeaders = {}
  for (const [name, value] of pairs) {
    const key = name.toLowerCase()
    const prev = headers[key]
    // An array value makes Node write one header line per element: a truly repeated header.
    headers[key] =
      prev === undefined ? value : [...(Array.isArray(prev) ? prev : [String(prev)]), value]
  }
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(new URL(path, baseUrl), { method, headers, agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', reject)
      res.on('end', () => {
        const out: Record<string, string> = {}
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value
        }
        resolve({
          status: res.statusCode ?? 0,
          headers: out,
          bodyText: Buffer.concat(chunks).toString('utf8'),
        })
      })
    })
    outgoing.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code
      reject(
        outgoing.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE')
          ? Object.assign(err, { reusedSocket: true })
          : err,
      )
    })
    outgoing.end()
  })
}

/**
 * Sends a table request to a real server listening on `baseUrl`, on a fresh connection.
 *
 * @example
 * await sendHttp('http://127.0.0.1:3000', { method: 'GET', path: '/', headers: [] })
 */
export async function sendHttp(baseUrl: string, req: TableRequest): Promise<TableResponse> {
  const { status, headers, bodyText } = await sendRaw(
    baseUrl,
    req.method,
    req.path,
    req.headers,
    false,
  )
  return { status, headers, body: parseBody(bodyText) }
}

/**
 * Parses a response body the way the table compares it.
 *
 * @example
 * parseBody('{"a":1}') // { a: 1 }
 */
export function parseBody(text: string): unknown {
  if (text === '') return null
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}
