/**
 * The test worker: the table's Hono app, run by workerd through Miniflare. Built once per
 * isolate, on the first request, because bindings only exist inside `fetch`.
 */
import type { ExecutionContext, Hono } from 'hono'
import { defineRoutes } from '../routes.js'
import { buildHonoApp } from '../targets/hono-app.js'

/** Bindings the Miniflare target passes in. */
export interface Bindings {
  CLERK_API_URL: string
  CLERK_SECRET_KEY: string
  RECEIVER_ID: string
  CALLER_ID: string
}

let app: Hono | undefined

export default {
  fetch(request: Request, env: Bindings, ctx: ExecutionContext): Response | Promise<Response> {
    app ??= buildHonoApp(
      defineRoutes(
        {
          apiUrl: env.CLERK_API_URL,
          instanceKey: env.CLERK_SECRET_KEY,
          receiverId: env.RECEIVER_ID,
          callerId: env.CALLER_ID,
        },
        { credentialsFromEnv: true },
      ),
    ).app
    return app.fetch(request, env, ctx)
  },
}
