/**
 * Verifier benchmarks. `npx tsx bench/verifier/index.ts` (add `--quick` for a short run, `--hits` or
 * `--miss` for only those figures).
 *
 * The workspace packages run as built (see lib/build.ts): this launcher builds what is stale, then
 * re-executes itself with --expose-gc (for the heap figure) to run run.ts.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ensureBuilt } from '../lib/build.js'

const here = fileURLToPath(new URL('.', import.meta.url))
ensureBuilt()
const child = spawn(
  process.execPath,
  ['--expose-gc', ...process.execArgv, `${here}run.ts`, ...process.argv.slice(2)],
  { stdio: 'inherit' },
)
child.on('exit', (code) => process.exit(code ?? 1))
