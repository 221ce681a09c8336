/** Boots the example against the real emulator: a scoped token gets 200, no token gets 401. */
import { smokeTestExample } from '../../../test/support/example-smoke.js'
import { start } from '../src/server.js'

smokeTestExample('fastify', start)
