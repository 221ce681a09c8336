/**
 * The server under test, in a child process so its CPU time (process.cpuUsage) is its own and not
 * the load generator's. One app per framework with the same trivial handler on every route:
 *
 *   GET /bare      no auth at all
 *   GET /bare-auth no auth, but reads the Authorization header (what any auth costs the framework)
 *   GET /guarded   m2m-guard (cache hits once warm)
 *   GET /jose      jose jwtVerify of a JWT-format token on every request
 *   GET /clerk     Clerk's own middleware (@clerk/express, @clerk/fastify), M2M tokens accepted
 *   GET /__cpu     process.cpuUsage() in µs;  GET /__stats  the verifier's stats()
 *
 * Config is one JSON argument; prints `{"port":…}` when listening; exits when stdin closes.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { clerkMiddleware, getAuth } from '@clerk/express'
import { clerkPlugin, getAuth as getFastifyAuth } from '@clerk/fastify'
import { serve } from '@hono/node-server'
import { createM2MVerifier } from '@m2m-guard/core'
import { requireM2M as expressGuard } from '@m2m-guard/express'
import m2mGuard from '@m2m-guard/fastify'
import { requireM2M as honoGuard } from '@m2m-guard/hono'
import express from 'express5'
import fastify from 'fastify5'
import { Hono } from 'hono'
import { importSPKI, jwtVerify } from 'jose'

export interface ServerConfig {
  framework: 'express' | 'fastify' | 'hono'
  apiUrl: string
  secretKey: string
  receiverId: string
  jwtPublicKey: string
  /** A syntactically valid publishable key; Clerk's SDK requires one even for M2M tokens. */
  publishableKey: string
}

const config = JSON.parse(process.argv[2] ?? '{}') as ServerConfig
const verifier = createM2MVerifier({
  apiUrl: config.apiUrl,
  secretKey: config.secretKey,
  machineId: config.receiverId,
})
const joseKey = await importSPKI(config.jwtPublicKey, 'RS256')
const clerkOptions = {
  secretKey: config.secretKey,
  publishableKey: config.publishableKey,
  apiUrl: config.apiUrl,
}

function bearer(header: string | undefined): string {
  return header?.startsWith('Bearer ') ? header.slice(7) : ''
}

/** jose on every request: what a service verifying JWT-format M2M tokens locally would do. */
async function joseSubject(header: string | undefined): Promise<string | undefined> {
  try {
    const { payload } = await jwtVerify(bearer(header), joseKey, { algorithms: ['RS256'] })
    return payload.sub
  } catch {
    return undefined
  }
}

function cpu(): { user: number; system: number } {
  return process.cpuUsage()
}

let port = 0
let close: () => Promise<void>
switch (config.framework) {
  case 'express': {
    const app = express()
    app.get('/bare', (_req, res) => {
      res.json({ subject: 'anonymous' })
    })
    app.get('/bare-auth', (req, res) => {
      res.json({ subject: req.headers.authorization ? 'anonymous' : 'none' })
    })
    app.get('/guarded', expressGuard({ verifier }), (req, res) => {
      res.json({ subject: req.m2m?.subject })
    })
    app.get('/jose', async (req, res) => {
      const subject = await joseSubject(req.headers.authorization)
      if (subject === undefined) res.status(401).json({ error: 'invalid_token' })
      else res.json({ subject })
    })
    app.get('/clerk', clerkMiddleware(clerkOptions), (req, res) => {
      const auth = getAuth(req, { acceptsToken: 'm2m_token' })
      if (!auth.isAuthenticated) res.status(401).json({ error: 'invalid_token' })
      else res.json({ subject: auth.subject })
    })
    app.get('/__cpu', (_req, res) => {
      res.json(cpu())
    })
    app.get('/__stats', (_req, res) => {
      res.json(verifier.stats())
    })
    const server = createServer(app)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
    close = async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
    break
  }
  case 'fastify': {
    const app = fastify()
    app.get('/bare', async () => ({ subject: 'anonymous' }))
    app.get('/bare-auth', async (request) => ({
      subject: request.headers.authorization ? 'anonymous' : 'none',
    }))
    app.get('/jose', async (request, reply) => {
      const subject = await joseSubject(request.headers.authorization)
      return subject === undefined ? reply.code(401).send({ error: 'invalid_token' }) : { subject }
    })
    app.get('/__cpu', async () => cpu())
    app.get('/__stats', async () => verifier.stats())
    await app.register(async (scope) => {
      await scope.register(m2mGuard, { verifier })
      scope.get('/guarded', async (request) => ({ subject: request.m2m?.subject }))
    })
    await app.register(async (scope) => {
      await scope.register(clerkPlugin, clerkOptions)
      scope.get('/clerk', async (request, reply) => {
        const auth = getFastifyAuth(request, { acceptsToken: 'm2m_token' })
        return auth.isAuthenticated
          ? { subject: auth.subject }
          : reply.code(401).send({ error: 'invalid_token' })
      })
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    port = (app.server.address() as AddressInfo).port
    close = () => app.close()
    break
  }
  case 'hono': {
    const app = new Hono()
    app.get('/bare', (c) => c.json({ subject: 'anonymous' }))
    // On @hono/node-server, reading any header builds the web Request: the cost of any auth.
    app.get('/bare-auth', (c) =>
      c.json({ subject: c.req.header('authorization') ? 'anonymous' : 'none' }),
    )
    app.use('/guarded', honoGuard({ verifier }))
    app.get('/guarded', (c) => c.json({ subject: c.get('m2m')?.subject }))
    app.get('/jose', async (c) => {
      const subject = await joseSubject(c.req.header('authorization'))
      return subject === undefined ? c.json({ error: 'invalid_token' }, 401) : c.json({ subject })
    })
    app.get('/__cpu', (c) => c.json(cpu()))
    app.get('/__stats', (c) => c.json(verifier.stats()))
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s))
    })
    port = (server.address() as AddressInfo).port
    close = async () => {
      await new Promise((resolve) => server.close(resolve))
    }
    break
  }
}

process.stdout.write(`${JSON.stringify({ port })}\n`)
process.stdin.resume()
process.stdin.on('end', () => {
  void close().then(() => verifier.close())
})
