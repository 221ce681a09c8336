/**
 * Serves the Fastify example. Run it with `npm start` (reads CLERK_* and MACHINE_ID), or call
 * `start()` from code, as the demo and the smoke test do.
 */
import { pathToFileURL } from 'node:url'
import { createApp, type ExampleOptions } from './app.js'

/** `createApp` options plus where to listen. */
export interface StartOptions extends ExampleOptions {
  /** 0 picks a free port. @defaultValue 3002 */
  port?: number
  /** @defaultValue '127.0.0.1' */
  host?: string
}

/** A listening example server. */
export interface RunningServer {
  /** e.g. `http://127.0.0.1:3002` */
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
  const { port = 3002, host = '127.0.0.1', ...appOptions } = options
  const app = await createApp(appOptions)
  const url = await app.listen({ port, host })
  return { url, close: () => app.close() }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  start({ port: Number(process.env['PORT'] ?? 3002), machineId: process.env['MACHINE_ID'] })
    .then((server) => console.log(`fastify example listening on ${server.url}`))
    .catch((err: unknown) => {
      console.error(`Could not start: ${err instanceof Error ? err.message : String(err)}`)
      process.exitCode = 1
    })
}
