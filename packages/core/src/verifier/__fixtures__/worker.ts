/**
 * Test worker for the workerd coalescing test. `/start` begins a verification and answers at
 * once without awaiting it, so its request (which owns the upstream fetch) ends while the call
 * is in flight; `/verify` is a later request for the same token, which joins that call. Also
 * served by Bun (bun-server.ts) for bun.test.ts.
 */

import { digestSync } from '../../cache/hash.js'
import type { M2MVerifier } from '../types.js'
import { createM2MVerifier } from '../verifier.js'

interface Env {
  API_URL: string
  SECRET_KEY: string
  MAX_UPSTREAM: string
}

let verifier: M2MVerifier | undefined

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    verifier ??= createM2MVerifier({
      apiUrl: env.API_URL,
      secretKey: env.SECRET_KEY,
      timeoutMs: 500,
      retry: false,
      maxConcurrentUpstream: Number(env.MAX_UPSTREAM),
    })
    const url = new URL(request.url)
    const token = url.searchParams.get('token') ?? ''
    if (url.pathname === '/start') {
      verifier.verify(token).catch(() => {})
      return new Response('started')
    }
    if (url.pathname === '/stats') return Response.json(verifier.stats())
    // Which hash the cache hit uses here: the synchronous one-shot, or awaited WebCrypto.
    if (url.pathname === '/hash') return Response.json({ sync: digestSync !== undefined })
    try {
      const auth = await verifier.verify(token)
      return Response.json({ id: auth.id })
    } catch (err) {
      return Response.json({ error: (err as { code?: string }).code ?? String(err) })
    }
  },
}
