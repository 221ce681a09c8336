/**
 * The table's Hono app served by Bun itself (`Bun.serve`), for the `hono on bun` target. The main
 * routes take their key and API URL from `process.env`, as a deployed Bun service would.
 */
import { requiredEnv, serveOnBun } from '../../support/bun-serve.js'
import { defineRoutes } from '../routes.js'
import { buildHonoApp } from '../targets/hono-app.js'

const { app, close } = buildHonoApp(
  defineRoutes(
    {
      apiUrl: requiredEnv('CLERK_API_URL'),
      instanceKey: requiredEnv('CLERK_SECRET_KEY'),
      receiverId: requiredEnv('RECEIVER_ID'),
      callerId: requiredEnv('CALLER_ID'),
    },
    { credentialsFromEnv: true },
  ),
)

serveOnBun((request) => app.fetch(request), close)
