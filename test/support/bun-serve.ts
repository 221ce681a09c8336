/**
 * Runs inside a child `bun` process (see bun.ts): serves `fetch` with `Bun.serve` on 127.0.0.1,
 * prints `listening <port> <Bun version>`, and stops cleanly when the parent closes stdin.
 */

interface BunServer {
  port: number
  stop(closeActiveConnections?: boolean): void
}

declare const Bun: {
  serve(options: {
    port: number
    hostname: string
    fetch(request: Request): Response | Promise<Response>
  }): BunServer
}

/**
 * Serves `fetch` from this Bun process until stdin ends, then awaits `close` and exits.
 *
 * @example
 * serveOnBun((request) => app.fetch(request), close)
 */
export function serveOnBun(
  fetch: (request: Request) => Response | Promise<Response>,
  close: () => Promise<void> = async () => {},
): void {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch })
  process.stdout.write(`listening ${server.port} ${process.versions['bun'] ?? 'not-bun'}\n`)
  process.stdin.resume()
  process.stdin.on('end', () => {
    void close().finally(() => {
      server.stop(true)
      process.exit(0)
    })
  })
}

/**
 * A variable the parent must have passed; a clear error otherwise.
 *
 * @example
 * const apiUrl = requiredEnv('CLERK_API_URL')
 */
export function requiredEnv(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
