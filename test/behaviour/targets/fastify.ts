/**
 * Fastify 4 and Fastify 5 targets. Each guarded route lives in its own encapsulated context with
 * its own registration of the plugin, since the routes differ in verifier options, not only in
 * policy; the admin route sits outside every guard.
 */
import m2mGuard from '@m2m-guard/fastify'
import fastify4 from 'fastify4'
import fastify5, { type FastifyInstance } from 'fastify5'
import { sendHttp } from '../../support/http.js'
import { type BehaviourRoutes, defineRoutes, OPTIONS_HANDLER_HEADERS } from '../routes.js'
import type { Target } from '../run.js'

/**
 * Mounts `POST /admin/revoke/:id` and every guarded route, each in its own encapsulated context
 * with its own plugin registration: shared with the leak suite.
 *
 * @example
 * await mountFastifyRoutes(fastify(), defineRoutes(env))
 */
export async function mountFastifyRoutes(
  app: FastifyInstance,
  routes: BehaviourRoutes,
): Promise<void> {
  app.post<{ Params: { id: string } }>('/admin/revoke/:id', async (request, reply) => {
    await routes.revocable.revoke(request.params.id, 'test')
    return reply.code(204).send()
  })
  for (const route of routes.routes) {
    await app.register(async (scope) => {
      await scope.register(m2mGuard, route.options)
      scope.options(route.path, async (request, reply) =>
        reply.headers({ ...OPTIONS_HANDLER_HEADERS }).send({ m2m: request.m2m }),
      )
      scope.get(route.path, async (request) => ({ m2m: request.m2m }))
    })
  }
}

function fastifyTarget(major: 4 | 5, createApp: () => FastifyInstance): Target {
  return {
    name: `fastify ${major}`,
    async start(env) {
      const routes = defineRoutes(env)
      const app = createApp()
      // The aliases must really be two majors, or half of this suite proves nothing.
      if (!app.version.startsWith(`${major}.`)) {
        throw new Error(`expected Fastify ${major}, got ${app.version}`)
      }
      await mountFastifyRoutes(app, routes)
      const base = await app.listen({ port: 0, host: '127.0.0.1' })
      return {
        send: (req) => sendHttp(base, req),
        async close() {
          await app.close()
          await routes.close()
        },
      }
    },
  }
}

/** Fastify 5. */
export const fastify5Target: Target = fastifyTarget(5, () => fastify5())

/**
 * Fastify 4. Its types are its own package's; the calls used here have the same shape in both
 * majors, which is what this target proves at run time.
 */
export const fastify4Target: Target = fastifyTarget(
  4,
  () => fastify4() as unknown as FastifyInstance,
)
