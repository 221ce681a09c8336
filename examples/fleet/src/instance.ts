/**
 * One instance of the fleet's service: a Hono API on Node whose verifier shares a Redis cache
 * tier and a revocation bus with every other instance. Run several (`npm run instance` with a
 * different PORT each), or let `npm start` (src/demo.ts) run three for you.
 *
 * Env: REDIS_URL, CLERK_API_URL, CLERK_SECRET_KEY (or CLERK_MACHINE_SECRET_KEY), MACHINE_ID
 * (this service, `mch_…`), ADMIN_MACHINE_ID (who may call the revoke route), PORT, INSTANCE.
 */
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import { serve } from '@hono/node-server'
import { createM2MVerifier, type M2MEvent } from '@m2m-guard/core'
import { requireM2M } from '@m2m-guard/hono'
import { redisCacheStore, redisRevocationBus } from '@m2m-guard/redis'
import { Hono } from 'hono'

/** What an instance needs to know. Unset Clerk values fall back to the CLERK_* variables. */
export interface InstanceOptions {
  /** A name shown in answers, so you can tell instances apart. */
  name: string
  redisUrl: string
  apiUrl?: string | undefined
  secretKey?: string | undefined
  /** This service's machine id: callers' tokens must list it in their scopes. */
  machineId: string
  /** The only machine allowed to call `POST /internal/revoke/:id`. */
  adminMachineId: string
  /** 0 picks a free port. @defaultValue 3010 */
  port?: number
  onEvent?: (event: M2MEvent) => void
}

/** A listening instance. */
export interface RunningInstance {
  url: string
  close(): Promise<void>
}

/**
 * Starts one instance and resolves once it listens and its bus is subscribed.
 *
 * @example
 * const instance = await startInstance({
 *   name: 'a', redisUrl: 'redis://127.0.0.1:6379', machineId: 'mch_…', adminMachineId: 'mch_…',
 * })
 * await instance.close()
 */
export async function startInstance(options: InstanceOptions): Promise<RunningInstance> {
  // One bus and one store per process, shared by everything in it.
  const bus = redisRevocationBus({ url: options.redisUrl })
  const store = redisCacheStore({ url: options.redisUrl, revocationBus: bus })
  const verifier = createM2MVerifier({
    apiUrl: options.apiUrl,
    secretKey: options.secretKey,
    machineId: options.machineId,
    cache: { ttlMs: 30_000, store },
    revocationBus: bus,
    onEvent: options.onEvent,
  })

  const app = new Hono()
  app.use('/internal/*', requireM2M({ verifier }))
  app.get('/internal/report', (c) =>
    c.json({ instance: options.name, caller: c.get('m2m').subject }),
  )
  // Revocation is an admin action: only the admin machine's tokens pass this guard.
  app.post(
    '/internal/revoke/:id',
    requireM2M({ verifier, allowedSubjects: [options.adminMachineId] }),
    async (c) => {
      await verifier.revoke(c.req.param('id'))
      return c.json({ instance: options.name, revoked: c.req.param('id') })
    },
  )

  // Wait briefly for the bus, but never block startup on Redis: without it the instance still
  // answers correctly, through Clerk.
  await Promise.race([bus.ready(), new Promise((resolve) => setTimeout(resolve, 2_000).unref())])
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: options.port ?? 3010, hostname: '127.0.0.1' }, () =>
      resolve(s),
    )
    s.once('error', reject)
  })
  const address = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${address.port}`,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        if ('closeAllConnections' in server) server.closeAllConnections()
      })
      await verifier.close()
      await Promise.all([store.close(), bus.close()])
    },
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const env = (name: string): string => {
    const value = process.env[name]
    if (!value) {
      console.error(`${name} is required (see the top of src/instance.ts)`)
      process.exit(1)
    }
    return value
  }
  const name = process.env['INSTANCE'] ?? 'instance'
  startInstance({
    name,
    redisUrl: env('REDIS_URL'),
    machineId: env('MACHINE_ID'),
    adminMachineId: env('ADMIN_MACHINE_ID'),
    port: Number(process.env['PORT'] ?? 3010),
    // Upstream calls, so a reader can see which instance asked Clerk and which used Redis.
    onEvent: (event) => {
      if (event.type === 'verified' || event.type === 'store_error' || event.type === 'bus_error') {
        console.log(JSON.stringify({ instance: name, ...event }))
      }
    },
  })
    .then((instance) => {
      console.log(JSON.stringify({ instance: name, listening: instance.url }))
      const stop = () => void instance.close().then(() => process.exit(0))
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
    .catch((err: unknown) => {
      console.error(`Could not start: ${err instanceof Error ? err.message : String(err)}`)
      process.exitCode = 1
    })
}
