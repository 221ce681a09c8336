/**
 * The Workers example app. On Workers the keys live in bindings, not in `process.env`: the guard
 * reads CLERK_MACHINE_SECRET_KEY / CLERK_SECRET_KEY and CLERK_API_URL from `c.env`, and the
 * options function supplies this service's machine id from the MACHINE_ID var.
 */
import { requireM2M } from '@m2m-guard/hono'
import { Hono } from 'hono'

/** Bindings declared in wrangler.toml (vars) and set as secrets. */
export interface Env {
  CLERK_API_URL?: string
  CLERK_MACHINE_SECRET_KEY?: string
  CLERK_SECRET_KEY?: string
  MACHINE_ID?: string
}

/**
 * Builds the app; the verifier is built once per isolate, on the first guarded request.
 *
 * @example
 * export default createApp()
 */
export function createApp(): Hono<{ Bindings: Env }> {
  const app = new Hono<{ Bindings: Env }>()
  app.get('/health', (c) => c.json({ ok: true }))
  app.use(
    '/internal/*',
    requireM2M((c) => ({ machineId: c.env.MACHINE_ID || undefined })),
  )
  app.get('/internal/report', (c) => {
    const caller = c.get('m2m')
    return c.json({
      service: 'hono-workers',
      caller: caller.subject,
      tokenId: caller.id,
      scopes: caller.scopes,
      claims: caller.claims,
    })
  })
  return app
}
