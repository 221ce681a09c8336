/**
 * Serves the Express example. Run it with `npm start` (reads CLERK_* and MACHINE_ID), or call
 * `start()` from code, as the demo and the smoke test do.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import { createApp, type ExampleOptions } from './app.js'

/** `createApp` options plus where to listen. */
export interface StartOptions extends ExampleOptions {
  /** 0 picks a free port. @defaultValue 3001 */
  port?: number
  /** @defaultValue '127.0.0.1' */
  host?: string
}

/** A listening example server. */
export interface RunningServer {
  /** e.g. `http://127.0.0.1:3001` */
  url: string
  close(): Promise<void>
}

/**
 * Starts the server and resolves once it listens.
 *
 * @example
 * const server = await start({ port: 0, apiUrl: 'http://127.0.0.1:4010', machineId: 'mch_…' })
 * await server.close()
 */
export async function start(options: StartOptions = {}): Promise<RunningServer> {
  const { port = 3001, host = '127.0.0.1', ...appOptions } = options
  const example = createApp(appOptions)
  const server = createServer(example.app)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const address = server.address() as AddressInfo
  return {
    url: `http://${host}:${address.port}`,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await example.close()
    },
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  start({ port: Number(process.env['PORT'] ?? 3001), machineId: process.env['MACHINE_ID'] })
    .then((server) => console.log(`express example listening on ${server.url}`))
    .catch((err: unknown) => {
      console.error(`Could not start: ${err instanceof Error ? err.message : String(err)}`)
      process.exitCode = 1
    })
}
