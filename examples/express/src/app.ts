/**
 * The Express example app: `/health` is public, everything under `/internal` needs an M2M token
 * scoped to this service.
 */
import { getM2M, requireM2M } from '@m2m-guard/express'
import express, { type Express } from 'express'

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

/** An Express app plus a way to release the guard's verifier on shutdown. */
export interface ExampleApp {
  app: Express
  close(): Promise<void>
}

/**
 * Builds the app. The guard (and its verifier cache) is created here, once.
 *
 * @example
 * const { app } = createApp({ machineId: 'mch_reports' })
 * app.listen(3001)
 */
export function createApp(options: ExampleOptions = {}): ExampleApp {
  const app = express()
  const guard = requireM2M({
    apiUrl: options.apiUrl,
    secretKey: options.secretKey,
    machineId: options.machineId,
    cache: options.cacheTtlMs === undefined ? undefined : { ttlMs: options.cacheTtlMs },
  })
  app.get('/health', (_req, res) => {
    res.json({ ok: true })
  })
  app.use('/internal', guard)
  app.get('/internal/report', (req, res) => {
    const caller = getM2M(req)
    res.json({
      service: 'express',
      caller: caller.subject,
      tokenId: caller.id,
      scopes: caller.scopes,
      claims: caller.claims,
    })
  })
  return { app, close: () => guard.close() }
}
