/**
 * A raw HTTP client for the behaviour table: it can send the same header twice, which fetch and
 * supertest cannot do faithfully, and it hands back every response header, lower-cased.
 */
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http'

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

/**
 * Sends a table request to a real server listening on `baseUrl`.
 *
 * @example
 * await sendHttp('http://127.0.0.1:3000', { method: 'GET', path: '/', headers: [] })
 */
export function sendHttp(baseUrl: string, req: TableRequest): Promise<TableResponse> {
  const url = new URL(req.path, baseUrl)
  const headers: OutgoingHttpHeaders = {}
  for (const [name, value] of req.headers) {
    const key = name.toLowerCase()
    const prev = headers[key]
    // An array value makes Node write one header line per element: a truly repeated header.
    headers[key] =
      prev === undefined ? value : [...(Array.isArray(prev) ? prev : [String(prev)]), value]
  }
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(url, { method: req.method, headers, agent: false }, (res) => {
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
          body: parseBody(Buffer.concat(chunks).toString('utf8')),
        })
      })
    })
    outgoing.on('error', reject)
    outgoing.end()
  })
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
