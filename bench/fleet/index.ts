/**
 * Fleet benchmark: upstream calls per 10 000 requests over 4 instances and 100 tokens, with and
 * without the Redis-shared tier. `npx tsx bench/fleet/index.ts` (needs redis-server on PATH).
 *
 * The workspace packages run from source: this launcher re-executes itself with the
 * `@m2m-guard/source` export condition, then runs run.ts.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const child = spawn(
  process.execPath,
  [
    '--conditions=@m2m-guard/source',
    ...process.execArgv,
    `${here}run.ts`,
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
)
child.on('exit', (code) => process.exit(code ?? 1))
