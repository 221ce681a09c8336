/**
 * The behaviour table's targets (Express 5, Fastify 5, Hono on Node), with every verifier wired
 * to a LeakCapture: `onEvent` and `onError` on every route, every request's credentials recorded
 * as secrets, every answer recorded and checked. The routes are the table's own (defineRoutes,
 * buildHonoApp); only the hooks are added, which the table's targets have no way to take.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { createM2MVerifier } from '@m2m-guard/core'
import express from 'express5'
import fastify from 'fastify5'
import { type BehaviourEnv, type BehaviourRoutes, defineRoutes } from '../behaviour/routes.js'
import type { RunningTarget, Target } from '../behaviour/run.js'
import { closeServer, listenLocal, mountExpressRoutes } from '../behaviour/targets/express.js'
import { mountFastifyRoutes } from '../behaviour/targets/fastify.js'
import { buildHonoApp } from '../behaviour/targets/hono-app.js'
import { sendHttp, type TableRequest } from '../support/http.js'
import type { LeakCapture } from './capture.js'

/** The table's routes with capture hooks on every verifier and guard. */
function capturedRoutes(env: BehaviourEnv, capture: LeakCapture): BehaviourRoutes {
  const original = defineRoutes(env)
  // Every key a route is configured with is a secret too (the misconfigured route's included).
  for (const route of original.routes) {
    if (typeof route.options.secretKey === 'string') capture.addSecret(route.options.secretKey)
  }
  const onEvent = (event: unknown) => capture.record('event', event)
  const onError = (error: unknown) => capture.record('error', error)
  // The table's revocable verifier has no hooks; this one is the same but for them.
  const revocable = createM2MVerifier({
    apiUrl: env.apiUrl,
    secretKey: env.instanceKey,
    machineId: env.receiverId,
    onEvent,
  })
  return {
    routes: original.routes.map((route) => ({
      ...route,
      options:
        route.name === 'revocable'
          ? { verifier: revocable, onError }
          : { ...route.options, onEvent, onError },
    })),
    revocable,
    async close() {
      await original.close()
      await revocable.close()
    },
  }
}

function checked(base: string, capture: LeakCapture) {
  return async (req: TableRequest) => {
    capture.addAuthorization(
      req.headers.filter(([name]) => name.toLowerCase() === 'authorization').map(([, v]) => v),
    )
    const res = await sendHttp(base, req)
    capture.record('response', res)
    capture.assertClean()
    return res
  }
}

async function withChecks(
  base: string,
  capture: LeakCapture,
  close: () => Promise<void>,
): Promise<RunningTarget> {
  return {
    send: checked(base, capture),
    async close() {
      await close()
      // Late events (after the last answer) are checked too.
      capture.assertClean()
    },
  }
}

function express5Target(capture: LeakCapture): Target {
  return {
    name: 'express 5 (leak capture)',
    async start(env) {
      capture.addSecret(env.instanceKey)
      const app = express()
      const mounted = mountExpressRoutes(app, capturedRoutes(env, capture))
      const server = createServer(app)
      return withChecks(await listenLocal(server), capture, async () => {
        await closeServer(server)
        await mounted.close()
      })
    },
  }
}

function fastify5Target(capture: LeakCapture): Target {
  return {
    name: 'fastify 5 (leak capture)',
    async start(env) {
      capture.addSecret(env.instanceKey)
      const routes = capturedRoutes(env, capture)
      const app = fastify()
      await mountFastifyRoutes(app, routes)
      const base = await app.listen({ port: 0, host: '127.0.0.1' })
      return withChecks(base, capture, async () => {
        await app.close()
        await routes.close()
      })
    },
  }
}

function honoNodeTarget(capture: LeakCapture): Target {
  return {
    name: 'hono on node (leak capture)',
    async start(env) {
      capture.addSecret(env.instanceKey)
      const { app, close } = buildHonoApp(capturedRoutes(env, capture))
      const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
        const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s))
      })
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      return withChecks(base, capture, async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()))
        await close()
      })
    },
  }
}

/**
 * The three leak-capturing targets, all reporting into `capture`.
 *
 * @example
 * for (const target of leakTargets(capture)) runBehaviourTable(target)
 */
export function leakTargets(capture: LeakCapture): Target[] {
  return [express5Target(capture), fastify5Target(capture), honoNodeTarget(capture)]
}
