/**
 * The behaviour table's targets (Express 5, also with `passErrors`; Fastify 5; Hono on Node), with
 * every verifier wired to a LeakCapture: `onEvent` and `onError` on every route, every request's
 * credentials recorded as secrets, every answer recorded and checked. The routes are the table's
 * own (defineRoutes, mountExpressRoutes, mountFastifyRoutes, buildHonoApp); only hooks and logging
 * are added. Each app logs the way a production app would, so the logs are searched too: Express
 * in `development` mode (its final handler prints every error it gets), a request log on stdout,
 * and, with `passErrors`, an error handler that prints the error before rendering it; Fastify
 * with its pino logger at `trace` into the capture; Hono with its `logger()` middleware and an
 * `onError` that prints the error. Every `onError` hook also logs the rejection (stderr, pino,
 * console), cause chain and all.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { inspect } from 'node:util'
import { serve } from '@hono/node-server'
import { createM2MVerifier, M2MAuthError, renderAuthError } from '@m2m-guard/core'
import express, { type NextFunction, type Request, type Response } from 'express5'
import fastify, { type FastifyRequest } from 'fastify5'
import { Hono } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { logger } from 'hono/logger'
import { type BehaviourEnv, type BehaviourRoutes, defineRoutes } from '../behaviour/routes.js'
import type { RunningTarget, Target } from '../behaviour/run.js'
import { closeServer, listenLocal, mountExpressRoutes } from '../behaviour/targets/express.js'
import { mountFastifyRoutes } from '../behaviour/targets/fastify.js'
import { buildHonoApp } from '../behaviour/targets/hono-app.js'
import { sendHttp, type TableRequest } from '../support/http.js'
import type { LeakCapture } from './capture.js'

/** What a framework variant adds to every route: its own logging of rejections, `passErrors`. */
interface RouteHooks {
  /** Called after the capture has recorded the error, with the framework's request. */
  logError?: (error: M2MAuthError, request: unknown) => void
  /** Express only: hand rejections to the app's error handler. */
  passErrors?: boolean
}

/** The table's routes with capture hooks on every verifier and guard. */
function capturedRoutes(
  env: BehaviourEnv,
  capture: LeakCapture,
  hooks: RouteHooks = {},
): BehaviourRoutes {
  const original = defineRoutes(env)
  // Every key a route is configured with is a secret too (the misconfigured route's included).
  for (const route of original.routes) {
    if (typeof route.options.secretKey === 'string') capture.addSecret(route.options.secretKey)
  }
  const onEvent = (event: unknown) => capture.record('event', event)
  const onError = (error: M2MAuthError, request: unknown) => {
    capture.record('error', error)
    hooks.logError?.(error, request)
  }
  const extra = hooks.passErrors ? { passErrors: true } : {}
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
          ? { verifier: revocable, onError, ...extra }
          : { ...route.options, onEvent, onError, ...extra },
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

/** A request log on stdout, as morgan would print it, with the identity the guard set. */
function expressRequestLog(req: Request, res: Response, next: NextFunction): void {
  const started = performance.now()
  res.on('finish', () => {
    const ms = (performance.now() - started).toFixed(1)
    const m2m = JSON.stringify(req.m2m ?? null)
    process.stdout.write(
      `[express] ${req.method} ${req.originalUrl} ${res.statusCode} ${ms} ms m2m=${m2m}\n`,
    )
  })
  next()
}

function express5Target(capture: LeakCapture, passErrors: boolean): Target {
  return {
    name: `express 5${passErrors ? ' with passErrors' : ''} (leak capture)`,
    async start(env) {
      capture.addSecret(env.instanceKey)
      const app = express()
      // Not `test` (NODE_ENV under vitest): Express's final handler then prints every error.
      app.set('env', 'development')
      app.use(expressRequestLog)
      const routes = capturedRoutes(env, capture, {
        passErrors,
        logError: (error, request) => {
          const req = request as Request
          process.stderr.write(
            `[express] m2m rejected ${req.method} ${req.originalUrl}: ${inspect(error, { depth: 10 })}\n`,
          )
        },
      })
      const mounted = mountExpressRoutes(app, routes)
      if (passErrors) {
        // The app's own error handler: print the error (as Express's default would), then answer
        // as the adapter does, so the table's exact answers still hold.
        app.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
          if (!(err instanceof M2MAuthError)) {
            next(err)
            return
          }
          console.error('[express] error handler: %s %s', req.method, req.originalUrl, err)
          const route = routes.routes.find(
            (r) => req.path === r.path || req.path.startsWith(`${r.path}/`),
          )
          const realm = route?.options.realm
          const rendered = renderAuthError(err, realm === undefined ? {} : { realm })
          res.statusCode = rendered.status
          for (const [name, value] of Object.entries(rendered.headers)) res.setHeader(name, value)
          res.end(rendered.bodyText)
        })
      }
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
      const routes = capturedRoutes(env, capture, {
        logError: (error, request) =>
          (request as FastifyRequest).log.warn({ err: error }, 'm2m rejected'),
      })
      // Fastify's own logger, at its most talkative, into the capture (not the terminal).
      const app = fastify({
        logger: {
          level: 'trace',
          stream: { write: (line: string) => capture.record('log', line) },
        },
      })
      app.addHook('onResponse', async (request, reply) => {
        request.log.info({ m2m: request.m2m ?? null, statusCode: reply.statusCode }, 'answered')
      })
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
      const { app: routesApp, close } = buildHonoApp(
        capturedRoutes(env, capture, {
          logError: (error) => console.warn('[hono] m2m rejected', error),
        }),
      )
      // Hono's request logger in front (console), and an onError that prints what it handles.
      const app = new Hono()
      app.use(logger())
      app.route('/', routesApp)
      app.onError((err, c) => {
        console.error('[hono] onError: %s %s', c.req.method, c.req.path, err)
        if (!(err instanceof HTTPException)) return c.text('Internal Server Error', 500)
        // As Hono's default handler answers an HTTPException.
        const res = err.getResponse()
        return c.newResponse(res.body, res)
      })
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
 * The leak-capturing targets, all reporting into `capture`.
 *
 * @example
 * for (const target of leakTargets(capture)) runBehaviourTable(target)
 */
export function leakTargets(capture: LeakCapture): Target[] {
  return [
    express5Target(capture, false),
    express5Target(capture, true),
    fastify5Target(capture),
    honoNodeTarget(capture),
  ]
}
