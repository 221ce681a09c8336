/**
 * Verifier benchmarks. `npx tsx bench/verifier/index.ts` (add `--quick` for a short run, `--hits` or
 * `--miss` for only those figures).
 *
 * The workspace packages are run from source: this launcher re-executes itself with the
 * `@m2m-guard/source` export condition (and --expose-gc for the heap figure), then runs run.ts.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const child = spawn(
  process.execPath,
  [
    '--conditions=@m2m-guard/source',
    '--expose-gc',
    ...process.execArgv,
    `${here}run.ts`,
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
)
child.on('exit', (code) => process.exit(code ?? 1))
