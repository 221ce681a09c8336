/**
 * The Hono example app: `/health` is public, everything under `/internal/` needs an M2M token
 * scoped to this service.
 */
import { requireM2M } from '@m2m-guard/hono'
import { Hono } from 'hono'

/** Where to verify tokens and who this service is. Unset values fall back to CLERK_* variables. */
export interface ExampleOptions {
  /** Clerk's API origin; the emulator's URL when running locally. Default: CLERK_API_URL. */
  apiUrl?: string | undefined
  /** `ak_…` or `sk_…`. Default: CLERK_MACHINE_SECRET_KEY, then CLERK_SECRET_KEY. */
  secretKey?: string | undefined
  /** This service's machine id (`mch_…`): callers' tokens must list it in their scopes. */
  machineId?: string | undefined
  /**
   * How long a verified token is served from memory, in ms: also how long a token revoked at
   * Clerk can still be accepted here. @defaultValue 30000
   */
  cacheTtlMs?: number | undefined
}

/** A Hono app plus a way to release the guard's verifier on shutdown. */
export interface ExampleApp {
  app: Hono
  close(): Promise<void>
}

/**
 * Builds the app. The guard (and its verifier cache) is created here, once.
 *
 * @example
 * const { app } = createApp({ machineId: 'mch_reports' })
 * const res = await app.request('/internal/report', { headers: { authorization: 'Bearer mt_…' } })
 */
export function createApp(options: ExampleOptions = {}): ExampleApp {
  const app = new Hono()
  const guard = requireM2M({
    apiUrl: options.apiUrl,
    secretKey: options.secretKey,
    machineId: options.machineId,
    cache: options.cacheTtlMs === undefined ? undefined : { ttlMs: options.cacheTtlMs },
  })
  app.get('/health', (c) => c.json({ ok: true }))
  app.use('/internal/*', guard)
  app.get('/internal/report', (c) => {
    const caller = c.get('m2m')
    return c.json({
      service: 'hono-node',
      caller: caller.subject,
      tokenId: caller.id,
      scopes: caller.scopes,
      claims: caller.claims,
    })
  })
  return { app, close: () => guard.close() }
}
