/**
 * Fleet benchmark: upstream calls per 10 000 requests over 4 instances and 100 tokens, with and
 * without the Redis-shared tier. `npx tsx bench/fleet/index.ts` (needs redis-server on PATH).
 *
 * The workspace packages run as built (see lib/build.ts): this launcher builds what is stale, then
 * runs run.ts.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ensureBuilt } from '../lib/build.js'

const here = fileURLToPath(new URL('.', import.meta.url))
ensureBuilt()
const child = spawn(
  process.execPath,
  [...process.execArgv, `${here}run.ts`, ...process.argv.slice(2)],
  { stdio: 'inherit' },
)
child.on('exit', (code) => process.exit(code ?? 1))
