/**
 * Hono served by Bun: `bun/server.ts` in a child `bun` process. Bun resolves the core's `bun`
 * export condition, so this target runs the fetch transport rather than undici.
 */
import { fileURLToPath } from 'node:url'
import { startBunServer } from '../../support/bun.js'
import { sendHttp } from '../../support/http.js'
import type { Target } from '../run.js'

const SERVER = fileURLToPath(new URL('../bun/server.ts', import.meta.url))

/** Hono on Bun (`Bun.serve`), reaching the emulator over real HTTP, keys from `process.env`. */
export const honoBunTarget: Target = {
  name: 'hono on bun',
  async start(env) {
    const server = await startBunServer(SERVER, {
      CLERK_API_URL: env.apiUrl,
      CLERK_SECRET_KEY: env.instanceKey,
      RECEIVER_ID: env.receiverId,
      CALLER_ID: env.callerId,
    })
    return { send: (req) => sendHttp(server.url, req), close: () => server.close() }
  },
}
