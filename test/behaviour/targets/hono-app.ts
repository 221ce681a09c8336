/**
 * The table's routes as a Hono app. The same function builds the app on Node and, bundled into
 * the test worker, inside workerd, so both Hono targets run identical code.
 */
import { type M2MMiddleware, requireM2M } from '@m2m-guard/hono'
import { Hono } from 'hono'
import { type BehaviourRoutes, OPTIONS_HANDLER_HEADERS } from '../routes.js'

/**
 * Mounts every guarded route (with a `GET` and a CORS-answering `OPTIONS` handler behind the
 * guard) and `POST /admin/revoke/:id`.
 *
 * @example
 * const { app, close } = buildHonoApp(defineRoutes(env))
 */
export function buildHonoApp(routes: BehaviourRoutes): { app: Hono; close(): Promise<void> } {
  const app = new Hono()
  const guards: M2MMiddleware[] = []
  app.post('/admin/revoke/:id', async (c) => {
    await routes.revocable.revoke(c.req.param('id'), 'test')
    return c.body(null, 204)
  })
  for (const route of routes.routes) {
    const guard = requireM2M(route.options)
    guards.push(guard)
    app.use(route.path, guard)
    app.options(route.path, (c) =>
      c.json({ m2m: c.get('m2m') ?? null }, 200, { ...OPTIONS_HANDLER_HEADERS }),
    )
    app.get(route.path, (c) => c.json({ m2m: c.get('m2m') ?? null }))
  }
  return {
    app,
    async close() {
      await Promise.all(guards.map((guard) => guard.close()))
      await routes.close()
    },
  }
}
