/**
 * The Fastify example app. The plugin guards every route by default; `/health` opts out with
 * `config: { m2m: false }`.
 */
import m2mGuard from '@m2m-guard/fastify'
import Fastify, { type FastifyInstance } from 'fastify'

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

/**
 * Builds the app; the plugin creates its verifier once and closes it with the app.
 *
 * @example
 * const app = await createApp({ machineId: 'mch_reports' })
 * await app.listen({ port: 3002 })
 */
export async function createApp(options: ExampleOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(m2mGuard, {
    apiUrl: options.apiUrl,
    secretKey: options.secretKey,
    machineId: options.machineId,
    cache: options.cacheTtlMs === undefined ? undefined : { ttlMs: options.cacheTtlMs },
  })
  app.get('/health', { config: { m2m: false } }, async () => ({ ok: true }))
  app.get('/internal/report', async (request) => {
    const caller = request.m2m!
    return {
      service: 'fastify',
      caller: caller.subject,
      tokenId: caller.id,
      scopes: caller.scopes,
      claims: caller.claims,
    }
  })
  return app
}
