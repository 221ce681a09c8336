/**
 * Hono targets: on Node behind @hono/node-server (a real socket, so repeated headers are real),
 * and inside workerd through Miniflare 3, with the app bundled by esbuild for the worker
 * conditions.
 */
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { serve } from '@hono/node-server'
import { Miniflare } from 'miniflare'
import { bundleWorker } from '../../support/bundle-worker.js'
import { parseBody, sendHttp } from '../../support/http.js'
import { defineRoutes } from '../routes.js'
import type { Target } from '../run.js'
import { buildHonoApp } from './hono-app.js'

/** Hono on Node, served by @hono/node-server on 127.0.0.1. */
export const honoNodeTarget: Target = {
  name: 'hono on node',
  async start(env) {
    const { app, close } = buildHonoApp(defineRoutes(env))
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s))
    })
    const { port } = server.address() as AddressInfo
    const base = `http://127.0.0.1:${port}`
    return {
      send: (req) => sendHttp(base, req),
      async close() {
        await new Promise<void>((resolve) => server.close(() => resolve()))
        await close()
      },
    }
  },
}

const ENTRY = fileURLToPath(new URL('../worker/entry.ts', import.meta.url))

/**
 * Bundles the test worker the way wrangler would for workerd: ESM, the worker export conditions
 * first, and `@m2m-guard/source` so it runs the packages' source like every other target.
 *
 * @example
 * const script = await bundleTestWorker()
 */
export async function bundleTestWorker(): Promise<string> {
  return bundleWorker(ENTRY)
}

/** Hono inside workerd (Miniflare 3), reaching the emulator on the host over real HTTP. */
export const honoWorkerdTarget: Target = {
  name: 'hono in workerd',
  lacks: {
    // Other empty headers do arrive; this one is removed before the worker runs, through
    // dispatchFetch and through Miniflare's real HTTP socket alike.
    emptyAuthorization: 'Miniflare drops an empty Authorization header before the worker runs',
  },
  async start(env) {
    const mf = new Miniflare({
      modules: true,
      script: await bundleTestWorker(),
      compatibilityDate: '2024-09-23',
      bindings: {
        CLERK_API_URL: env.apiUrl,
        CLERK_SECRET_KEY: env.instanceKey,
        RECEIVER_ID: env.receiverId,
        CALLER_ID: env.callerId,
      },
    })
    await mf.ready
    return {
      async send(req) {
        const headers = new Headers()
        // Headers joins a repeated header with ", ", which is what a Worker sees for one.
        for (const [name, value] of req.headers) headers.append(name, value)
        const res = await mf.dispatchFetch(`http://worker.test${req.path}`, {
          method: req.method,
          headers,
        })
        const out: Record<string, string> = {}
        res.headers.forEach((value, name) => {
          out[name] = value
        })
        return { status: res.status, headers: out, body: parseBody(await res.text()) }
      },
      close: () => mf.dispose(),
    }
  },
}
