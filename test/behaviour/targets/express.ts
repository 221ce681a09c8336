/**
 * Express 4 and Express 5 targets: the same app built with each major (npm aliases), served on a
 * real socket so repeated `Authorization` headers reach Node as sent.
 */
import { createServer, type Server } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { requireM2M } from '@m2m-guard/express'
import express4 from 'express4'
import express5, { type Express } from 'express5'
import { sendHttp } from '../../support/http.js'
import { type BehaviourRoutes, defineRoutes, OPTIONS_HANDLER_HEADERS } from '../routes.js'
import type { Target } from '../run.js'

/** Listens on 127.0.0.1:0 and resolves once bound. */
export function listenLocal(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      resolve(`http://127.0.0.1:${port}`)
    })
  })
}

/** Closes a server, dropping idle keep-alive sockets so the test process can exit. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()))
    server.closeAllConnections()
  })
}

const require = createRequire(import.meta.url)

/**
 * Mounts every guarded route (with a `GET` and a CORS-answering `OPTIONS` handler behind the
 * guard) and `POST /admin/revoke/:id` on an Express app: the Express twin of buildHonoApp, shared
 * with the leak suite.
 *
 * @example
 * const { close } = mountExpressRoutes(express(), defineRoutes(env))
 */
export function mountExpressRoutes(
  app: Express,
  routes: BehaviourRoutes,
): { close(): Promise<void> } {
  app.post('/admin/revoke/:id', (req, res, next) => {
    routes.revocable
      .revoke(String(req.params['id']), 'test')
      .then(() => res.status(204).end(), next)
  })
  const guards = routes.routes.map((route) => requireM2M(route.options))
  routes.routes.forEach((route, i) => {
    app.use(route.path, guards[i]!)
    app.options(route.path, (req, res) => {
      res.set(OPTIONS_HANDLER_HEADERS).json({ m2m: req.m2m ?? null })
    })
    app.get(route.path, (req, res) => {
      res.json({ m2m: req.m2m ?? null })
    })
  })
  return {
    async close() {
      // The guards built their verifiers; closing them releases timers and connection pools.
      await Promise.all(guards.map((guard) => guard.close()))
      await routes.close()
    },
  }
}

function expressTarget(major: 4 | 5, createApp: () => Express): Target {
  return {
    name: `express ${major}`,
    async start(env) {
      // The aliases must really be two majors, or half of this suite proves nothing.
      const { version } = require(`express${major}/package.json`) as { version: string }
      if (!version.startsWith(`${major}.`))
        throw new Error(`expected Express ${major}, got ${version}`)
      const app = createApp()
      const mounted = mountExpressRoutes(app, defineRoutes(env))
      const server = createServer(app)
      const base = await listenLocal(server)
      return {
        send: (req) => sendHttp(base, req),
        async close() {
          await closeServer(server)
          await mounted.close()
        },
      }
    },
  }
}

/** Express 5. */
export const express5Target: Target = expressTarget(5, () => express5())

/**
 * Express 4. Its types come from @types/express@4 while the adapter is typed against Express 5;
 * every call used here has the same shape in both majors, which is what this target proves.
 */
export const express4Target: Target = expressTarget(4, () => express4() as unknown as Express)
