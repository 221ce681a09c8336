import { createServer, request as httpRequest, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export { startWorld, type World } from '../../../test/support/world.js'

/** Listens on 127.0.0.1, port 0; supertest uses the bound address of a listening server. */
export async function listen(handler: RequestListener): Promise<Server> {
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())))
}

/**
 * Sends raw header lines (so a header can be repeated, which supertest cannot do) and returns
 * status, headers and body.
 */
export function rawRequest(
  server: Server,
  path: string,
  headers: string[],
): Promise<{
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}> {
  const { port } = server.address() as AddressInfo
  return new Promise((resolve, reject) => {
    // With raw header lines Node adds no Host header, which HTTP/1.1 servers must refuse.
    const lines = ['Host', `127.0.0.1:${port}`, ...headers]
    const req = httpRequest({ host: '127.0.0.1', port, path, headers: lines }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}
