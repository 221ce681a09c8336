/**
 * One guarded route in each framework (Express 5, Fastify 5, Hono on @hono/node-server), on a
 * real socket, for the fault, fuzz, leak and soak suites. The behaviour table's targets
 * (test/behaviour/targets) open a new connection per request, which is right for 40 rows but
 * would exhaust ephemeral ports over the fuzz's 100 000+ cases; these apps keep connections alive
 * and take arbitrary verifier options (breaker, clock, onEvent) where the table's routes fix them.
 */
import { Agent, createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { createM2MVerifier, type M2MVerifier, type M2MVerifierOptions } from '@m2m-guard/core'
import { requireM2M as expressGuard } from '@m2m-guard/express'
import m2mGuard from '@m2m-guard/fastify'
import { requireM2M as honoGuard } from '@m2m-guard/hono'
import express from 'express5'
import fastify from 'fastify5'
import { Hono } from 'hono'
import { type RawResponse, sendRaw } from '../support/http.js'

/** The frameworks every suite here runs through. */
export const FRAMEWORKS = ['express', 'fastify', 'hono'] as const
export type Framework = (typeof FRAMEWORKS)[number]

/** What the adapters' `onError` hook receives, whatever the framework. */
export type RejectionHook = (error: unknown) => void

/** What came back, with lower-cased header names and the raw body text. */
export type AppResponse = RawResponse

/** A running app: `GET /guarded` answers `{ subject, id }` of the verified caller. */
export interface GuardedApp {
  framework: Framework
  base: string
  /** Sends `GET path`; a header listed twice goes out as two header lines. */
  send(headers: ReadonlyArray<readonly [string, string]>, path?: string): Promise<AppResponse>
  /** The verifier behind the guard (for `stats()` and `revoke()`). */
  verifier: M2MVerifier
  close(): Promise<void>
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    })
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/**
 * Starts `framework` with one guarded route, `GET /guarded`, over a verifier built from
 * `verifierOptions` (built here and handed to the adapter as a shared `verifier`, so the suite can
 * read its stats and the adapters' own option handling stays the same for all three).
 *
 * @example
 * const app = await startGuardedApp('hono', { apiUrl, secretKey, machineId })
 * const res = await app.send([['authorization', `Bearer ${token}`]])
 */
export async function startGuardedApp(
  framework: Framework,
  verifierOptions: M2MVerifierOptions,
  hooks: { onError?: RejectionHook } = {},
): Promise<GuardedApp> {
  const verifier = createM2MVerifier(verifierOptions)
  const guardOptions = hooks.onError ? { verifier, onError: hooks.onError } : { verifier }
  let server: Server
  let closeApp: () => Promise<void> = async () => {}
  let base: string
  switch (framework) {
    case 'express': {
      const app = express()
      app.get('/guarded', expressGuard(guardOptions), (req, res) => {
        res.json({ subject: req.m2m?.subject, id: req.m2m?.id })
      })
      server = createServer(app)
      base = await listen(server)
      break
    }
    case 'fastify': {
      const app = fastify()
      await app.register(async (scope) => {
        await scope.register(m2mGuard, guardOptions)
        scope.get('/guarded', async (request) => ({
          subject: request.m2m?.subject,
          id: request.m2m?.id,
        }))
      })
      base = await app.listen({ port: 0, host: '127.0.0.1' })
      server = app.server
      closeApp = () => app.close()
      break
    }
    case 'hono': {
      const app = new Hono()
      app.use('/guarded', honoGuard(guardOptions))
      app.get('/guarded', (c) => c.json({ subject: c.get('m2m')?.subject, id: c.get('m2m')?.id }))
      server = await new Promise<Server>((resolve) => {
        const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () =>
          resolve(started as Server),
        )
      })
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      break
    }
  }
  // Keep-alive, so a long fuzz run reuses a few sockets instead of one per request.
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  return {
    framework,
    base,
    verifier,
    send: (headers, path = '/guarded') => send(base, agent, headers, path),
    async close() {
      agent.destroy()
      await closeApp()
      await closeServer(server)
      await verifier.close()
    },
  }
}

async function send(
  base: string,
  agent: Agent,
  pairs: ReadonlyArray<readonly [string, string]>,
  path: string,
): Promise<AppResponse> {
  try {
    return await sendRaw(base, 'GET', path, pairs, agent)
  } catch (err) {
    // A kept-alive socket the server closed just as it was reused: no answer was given, so the
    // request is sent again once (Node's http docs prescribe this, keyed on `reusedSocket`).
    if ((err as { reusedSocket?: boolean }).reusedSocket) {
      return sendRaw(base, 'GET', path, pairs, agent)
    }
    throw err
  }
}
